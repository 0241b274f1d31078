"""monitoring-silence against a real Alertmanager (Debian's prometheus-alertmanager): the
silence exists with its matchers, author and comment, silences a firing alert, a rerun
extends it instead of adding another, and it is gone (expired) after, twice over without
error; Alertmanager down or refusing a matcher is a clear error."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from prefect_stacks.blocks.alertmanager import Alertmanager
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.exceptions import AlertmanagerError, ConfigurationError
from prefect_stacks.flows.day2.silences import monitoring_silence
from tests.conftest import free_port
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.integration

SLACK_TOKEN = "xoxb-silences"


@pytest.fixture
def block(prefect_harness, alertmanager) -> str:
    name = "am-" + uuid.uuid4().hex[:6]
    Alertmanager(url=alertmanager).save(name)
    return name


def fire(url: str, **labels: str) -> None:
    now = datetime.now(timezone.utc)
    alert = {
        "labels": {"alertname": "Http5xx", **labels},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }
    httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()


def alert_state(url: str, service: str) -> str:
    alerts = httpx.get(
        f"{url}/api/v2/alerts", params={"filter": f'service="{service}"'}, timeout=5
    ).json()
    return alerts[0]["status"]["state"] if alerts else "none"


def test_create_extend_and_expire_against_alertmanager(block, alertmanager):
    service = "shop-" + uuid.uuid4().hex[:4]
    fire(alertmanager, service=service)
    labels = [f'service="{service}"', 'alertname=~"Http5xx|Latency"']
    with FakeSlack(tokens=[SLACK_TOKEN], channels=["ops"]) as slack:
        SlackChannel(bot_token=SLACK_TOKEN, channel="#ops", api_url=slack.api_url).save(block)
        made = monitoring_silence(
            action="create",
            matchers=labels,
            duration_minutes=30,
            comment="deploy of shop 1.4",
            author="alice",
            alertmanager=block,
            slack=block,
        )
        (told,) = [m.text for m in slack.messages]
    silence = httpx.get(f"{alertmanager}/api/v2/silence/{made['silence_id']}", timeout=5).json()
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "alice" and silence["comment"] == "deploy of shop 1.4"
    assert sorted((m["name"], m["value"], m["isRegex"]) for m in silence["matchers"]) == [
        ("alertname", "Http5xx|Latency", True),
        ("service", service, False),
    ]
    ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=29) < ends - datetime.now(timezone.utc) <= timedelta(minutes=30)
    assert made["silence_id"] in told and "alice" in told and "deploy of shop 1.4" in told
    # the firing alert is now silenced (Alertmanager re-evaluates within a moment)
    from tests.conftest import wait_for

    wait_for(
        "the alert to be silenced", lambda: alert_state(alertmanager, service) == "suppressed", 15
    )

    again = monitoring_silence(
        action="create",
        matchers=labels,
        duration_minutes=60,
        comment="still deploying",
        author="alice",
        alertmanager=block,
    )
    assert again["silence_id"] == made["silence_id"]  # extended, not doubled
    listed = httpx.get(
        f"{alertmanager}/api/v2/silences", params={"filter": f'service="{service}"'}, timeout=5
    ).json()
    assert [s["id"] for s in listed if s["status"]["state"] == "active"] == [made["silence_id"]]

    gone = monitoring_silence(action="expire", silence_id=made["silence_id"], alertmanager=block)
    assert gone["expired"] == [made["silence_id"]]
    state = httpx.get(f"{alertmanager}/api/v2/silence/{made['silence_id']}", timeout=5).json()
    assert state["status"]["state"] == "expired"
    # idempotent: expiring again, by id or by matchers, or an unknown id, is success
    assert (
        monitoring_silence(action="expire", silence_id=made["silence_id"], alertmanager=block)[
            "expired"
        ]
        == []
    )
    assert monitoring_silence(action="expire", matchers=labels, alertmanager=block)["asked"] == []
    unknown = str(uuid.uuid4())
    assert (
        monitoring_silence(action="expire", silence_id=unknown, alertmanager=block)["expired"] == []
    )


def test_expire_by_matchers_expires_only_exact_matches(block, alertmanager):
    service = "cart-" + uuid.uuid4().hex[:4]
    exact = monitoring_silence(
        action="create", matchers={"service": service}, comment="c", alertmanager=block
    )
    wider = monitoring_silence(
        action="create",
        matchers={"service": service, "env": "prod"},
        comment="c",
        alertmanager=block,
    )
    done = monitoring_silence(action="expire", matchers={"service": service}, alertmanager=block)
    assert done["expired"] == [exact["silence_id"]]
    still = httpx.get(f"{alertmanager}/api/v2/silence/{wider['silence_id']}", timeout=5).json()
    assert still["status"]["state"] == "active"
    assert exact["silence_id"] != wider["silence_id"]
    assert exact["url"].endswith(f"/#/silences/{exact['silence_id']}")


def test_bad_matchers_a_missing_comment_and_alertmanager_down_are_clear(block, prefect_harness):
    with pytest.raises(ConfigurationError, match="not an Alertmanager matcher"):
        monitoring_silence(
            action="create", matchers=["service=shop"], comment="x", alertmanager=block
        )
    with pytest.raises(ConfigurationError, match="needs a comment"):
        monitoring_silence(action="create", matchers={"service": "shop"}, alertmanager=block)
    with pytest.raises(AlertmanagerError, match="check the matchers"):
        monitoring_silence(
            action="create", matchers=['service=~"("'], comment="x", alertmanager=block
        )
    down = "am-down-" + uuid.uuid4().hex[:6]
    Alertmanager(url=f"http://127.0.0.1:{free_port()}", timeout=2).save(down)
    with pytest.raises(AlertmanagerError, match="127.0.0.1"):
        monitoring_silence(
            action="create", matchers={"service": "shop"}, comment="x", alertmanager=down
        )
    with pytest.raises(ConfigurationError, match="expire needs the silence_id"):
        monitoring_silence(action="expire", alertmanager=block)
