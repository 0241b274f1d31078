"""The Slack block, the environment message layout and task, against the Slack contract fake.

No mocks: slack-sdk's real clients talk HTTP to ``tests.fakes.slack.FakeSlack``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError
from slack_sdk import WebClient
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState

from prefect_stacks.blocks.slack import (
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_RETRY_AFTER_SECONDS,
    MAX_SECTION_TEXT,
    SlackChannel,
    SlackRetry,
    clip,
)
from prefect_stacks.environments.messages import environment_message, notify_environment
from prefect_stacks.exceptions import ConfigurationError, NotificationError, PrefectStacksError
from tests.conftest import free_port
from tests.fakes.slack import FakeSlack, check_blocks

TOKEN = "xoxb-1111-2222-SeCrEtBoTtOkEn"
REVOKED = "xoxb-1111-3333-RevokedToken"
HOOK = "/services/T000/B000/WebhookSecret42"
REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(
        tokens=[TOKEN],
        revoked_tokens=[REVOKED],
        channels=["platform", "alerts"],
        not_member=["private-ops"],
        webhooks=[HOOK],
    ) as server:
        yield server


def bot(fake: FakeSlack, **kwargs) -> SlackChannel:
    values = {"bot_token": TOKEN, "channel": "#platform", "api_url": fake.api_url}
    values.update(kwargs)
    return SlackChannel(**values)


def hook(fake: FakeSlack, path: str = HOOK, **kwargs) -> SlackChannel:
    return SlackChannel(webhook_url=fake.webhook_url(path), **kwargs)


def assert_no_secret(text: str, fake: FakeSlack) -> None:
    for secret in (TOKEN, REVOKED, "WebhookSecret42", fake.webhook_url(HOOK)):
        assert secret not in text


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- posting


def test_bot_token_post_is_recorded_with_text_and_blocks(fake: FakeSlack):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*deployed* v1.2"}}]
    ts = bot(fake, username="prefect-stacks", icon_emoji=":robot_face:").post("deployed", blocks)

    [message] = fake.messages
    assert ts == message.ts and ts
    assert message.kind == "api"
    assert message.channel == fake.channel_id("platform")
    assert message.text == "deployed"
    assert message.blocks == blocks
    assert message.payload["username"] == "prefect-stacks"
    assert message.payload["icon_emoji"] == ":robot_face:"
    assert message.headers["Content-Type"].startswith("application/json")
    assert "Authorization" not in message.headers  # the fake never keeps the token
    assert fake.find("*deployed*") == [message]


def test_post_by_channel_id(fake: FakeSlack):
    bot(fake, channel=fake.channel_id("alerts")).post("by id")
    assert fake.find("by id")[0].channel_name == "alerts"


def test_webhook_post_is_recorded(fake: FakeSlack):
    blocks = [{"type": "divider"}]
    assert hook(fake).post("from a webhook", blocks) is None  # Slack gives no ts
    [message] = fake.messages
    assert (message.kind, message.text, message.blocks) == ("webhook", "from a webhook", blocks)


async def test_notify_is_the_async_notification_api(fake: FakeSlack):
    await bot(fake).notify("Flow run failed: a < b & c", subject="Prefect automation")
    [message] = fake.messages
    assert message.text == "*Prefect automation*\nFlow run failed: a &lt; b &amp; c"


async def test_notify_through_a_webhook(fake: FakeSlack):
    await hook(fake).notify("body only")
    assert fake.messages[0].text == "body only"


async def test_apost_returns_the_ts(fake: FakeSlack):
    ts = await bot(fake).apost("async post")
    assert ts == fake.find("async post")[0].ts


def test_sync_post_works_inside_a_running_event_loop(fake: FakeSlack):
    # the sync twin uses slack-sdk's sync client, not the async one in a loop
    import asyncio

    async def inside() -> str | None:
        return bot(fake).post("sync from async code")

    assert asyncio.run(inside())
    assert fake.find("sync from async code")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("make", "error", "field", "hint"),
    [
        (lambda f: bot(f, bot_token="xoxb-unknown"), "invalid_auth", "bot_token", "`bot_token`"),
        (lambda f: bot(f, bot_token=REVOKED), "token_revoked", "bot_token", "`bot_token`"),
        (lambda f: bot(f, channel="#nowhere"), "channel_not_found", "channel", "invite the app"),
        (lambda f: bot(f, channel="private-ops"), "not_in_channel", "channel", "invite the app"),
        (lambda f: hook(f, "/services/T000/B000/wrong"), "invalid_token", "webhook_url", None),
        (lambda f: hook(f, "/services/T9/B9/gone"), "no_service", "webhook_url", None),
    ],
)
def test_slack_errors_name_the_field_to_fix(fake: FakeSlack, make, error, field, hint):
    with pytest.raises(NotificationError) as info:
        make(fake).post("hello")
    exc = info.value
    assert (exc.error, exc.field) == (error, field)
    assert error in str(exc) and f"`{field}`" in str(exc)
    if hint:
        assert hint in str(exc)
    assert isinstance(exc, PrefectStacksError)
    assert exc.log == str(exc)  # what a Prefect automation's notification action records
    assert_no_secret(str(exc), fake)
    assert not fake.messages


@pytest.mark.parametrize(
    ("error", "field"), [("not_authed", "bot_token"), ("missing_scope", "bot_token")]
)
def test_other_token_errors(fake: FakeSlack, error: str, field: str):
    fake.api_error(error)
    with pytest.raises(NotificationError) as info:
        bot(fake).post("hello")
    assert (info.value.error, info.value.field) == (error, field)
    if error == "missing_scope":
        assert "chat:write" in str(info.value)


def test_the_fake_answers_not_authed_without_a_token(fake: FakeSlack):
    body = json.dumps({"channel": "#platform", "text": "x", "token": TOKEN}).encode()
    request = urllib.request.Request(
        fake.api_url + "chat.postMessage",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback fake
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        # as on Slack, a token in a JSON body is not a credential
        assert json.load(response) == {"ok": False, "error": "not_authed"}


def test_the_fake_takes_a_form_encoded_token_and_blocks(fake: FakeSlack):
    from urllib.parse import urlencode

    body = urlencode(
        {
            "token": TOKEN,
            "channel": "alerts",
            "text": "form",
            "blocks": json.dumps([{"type": "divider"}]),
        }
    ).encode()
    with urllib.request.urlopen(fake.api_url + "chat.postMessage", data=body) as response:  # noqa: S310
        answer = json.load(response)
    assert answer["ok"] and answer["channel"] == fake.channel_id("alerts")
    assert fake.find("form")[0].blocks == [{"type": "divider"}]


def test_auth_test_through_slack_sdk(fake: FakeSlack):
    answer = WebClient(token=TOKEN, base_url=fake.api_url).auth_test()
    assert answer["team_id"] == "T000" and answer["user_id"].startswith("U")


def test_invalid_blocks_are_a_message_error_with_slacks_reasons(fake: FakeSlack):
    too_long = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    with pytest.raises(NotificationError) as info:
        bot(fake).post("hello", too_long)
    assert info.value.error == "invalid_blocks" and info.value.field is None
    assert "must be less than 151 characters [json-pointer:/blocks/0/text/text]" in str(info.value)


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_no_text_is_a_message_error(fake: FakeSlack):
    with pytest.raises(NotificationError, match="no_text"):
        bot(fake).post("")
    with pytest.raises(NotificationError, match="no_text"):
        hook(fake).post("")


def test_webhook_rejects_bad_json(fake: FakeSlack):
    request = urllib.request.Request(fake.webhook_url(HOOK), data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)  # noqa: S310 - loopback fake
    assert (info.value.code, info.value.read()) == (400, b"invalid_payload")


def test_server_error_is_not_retried_and_says_outage(fake: FakeSlack):
    fake.fail(1, status=500)
    with pytest.raises(NotificationError, match="HTTP 500") as info:
        bot(fake).post("hello")
    assert info.value.status == 500
    assert len(fake.requests_to("chat.postMessage")) == 1


# --------------------------------------------------------------------------- retries


def test_429_is_retried_after_retry_after(fake: FakeSlack):
    fake.rate_limit(1, retry_after=1)
    started = time.monotonic()
    ts = bot(fake).post("after a rate limit")
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in fake.requests_to("chat.postMessage")] == [429, 200]
    assert fake.find("after a rate limit")[0].ts == ts


def test_webhook_429_is_retried(fake: FakeSlack):
    fake.rate_limit(1, retry_after=0)
    hook(fake).post("webhook after a rate limit")
    assert [r.status for r in fake.requests_to(HOOK)] == [429, 200]
    assert fake.find("webhook after a rate limit")


@pytest.mark.parametrize("make", [bot, hook], ids=["bot", "webhook"])
def test_too_many_429s_fail_clearly(fake: FakeSlack, make):
    fake.rate_limit(10, retry_after=0)
    with pytest.raises(NotificationError, match="rate-limited after 2 retries") as info:
        make(fake, max_retries=2).post("hello")
    assert info.value.status == 429 and info.value.field == "max_retries"
    assert len(fake.requests) == 3  # the first try and two retries
    assert_no_secret(str(info.value), fake)


def test_a_long_retry_after_is_not_waited_for(fake: FakeSlack):
    fake.rate_limit(1, retry_after=3600)
    started = time.monotonic()
    with pytest.raises(NotificationError, match="rate-limited"):
        bot(fake).post("hello")
    assert time.monotonic() - started < 5
    assert len(fake.requests) == 1


@pytest.mark.parametrize("make", [bot, hook], ids=["bot", "webhook"])
def test_a_dropped_connection_is_retried(fake: FakeSlack, make):
    fake.drop(1)
    make(fake).post("after a dropped connection")
    assert [r.status for r in fake.requests] == [None, 200]
    assert fake.find("after a dropped connection")


def test_unreachable_slack_fails_after_bounded_retries_without_leaking(fake: FakeSlack):
    port = free_port()  # nothing listens there
    webhook = f"http://127.0.0.1:{port}{HOOK}"
    with pytest.raises(NotificationError) as info:
        SlackChannel(webhook_url=webhook, max_retries=1).post("hello")
    message = str(info.value)
    assert f"could not reach Slack at http://127.0.0.1:{port} " in message
    assert "after 1 retries" in message and "Connection refused" in message
    assert "WebhookSecret42" not in message and "/services/" not in message

    with pytest.raises(NotificationError, match="could not reach Slack"):
        bot(fake, api_url=f"http://127.0.0.1:{port}/api/", max_retries=0).post("hello")


@pytest.mark.parametrize("make", [bot, hook], ids=["bot", "webhook"])
def test_proxy_variables_and_no_proxy_are_honoured(fake: FakeSlack, make, monkeypatch):
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    # slack-sdk reads HTTPS_PROXY itself; urllib's ProxyHandler still honours NO_PROXY
    make(fake).post("not through the proxy")
    assert fake.find("not through the proxy")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name)
    with pytest.raises(NotificationError, match="could not reach Slack"):
        make(fake, max_retries=0).post("through the dead proxy")


def test_429s_and_dropped_connections_share_one_retry_budget(fake: FakeSlack):
    fake.rate_limit(1, retry_after=0)
    fake.drop(1)
    with pytest.raises(NotificationError, match="could not reach Slack"):
        bot(fake, max_retries=1).post("one retry in all")
    assert [r.status for r in fake.requests] == [429, None]
    fake.reset()
    fake.rate_limit(1, retry_after=0)
    fake.drop(1)
    bot(fake, max_retries=2).post("two retries in all")
    assert [r.status for r in fake.requests] == [429, None, 200]


@pytest.mark.parametrize(
    ("status", "headers", "error", "retried"),
    [
        (429, {"Retry-After": ["0"]}, None, True),
        (429, {"retry-after": [str(MAX_RETRY_AFTER_SECONDS)]}, None, True),
        (429, {}, None, True),  # no Retry-After: 1 s, as slack-sdk assumes
        (429, {"Retry-After": [str(MAX_RETRY_AFTER_SECONDS + 1)]}, None, False),
        (429, {"Retry-After": ["Wed, 21 Oct 2015 07:28:00 GMT"]}, None, False),
        (500, {}, None, False),
        (200, {}, None, False),
        (None, {}, ConnectionResetError(104, "Connection reset by peer"), True),
        (None, {}, ValueError("not a connection error"), False),
    ],
)
def test_slack_retry_decides_like_the_two_cases_it_covers(status, headers, error, retried):
    handler = SlackRetry(max_retry_count=2, log=logging.getLogger(__name__))
    request = HttpRequest(method="POST", url="https://slack.com/api/chat.postMessage", headers={})
    response = None if status is None else HttpResponse(status_code=status, headers=headers)
    state = RetryState()
    assert (
        handler.can_retry(state=state, request=request, response=response, error=error) is retried
    )
    state.current_attempt = 2  # the budget is spent
    assert not handler.can_retry(state=state, request=request, response=response, error=error)


def test_secrets_never_reach_logs(fake: FakeSlack, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    fake.rate_limit(1, retry_after=0)
    fake.drop(1)
    hook(fake).post("retried twice")
    fake.drop(1)
    bot(fake).post("retried once")
    for make in (lambda: bot(fake, bot_token="xoxb-unknown"), lambda: hook(fake, "/x/y")):
        with pytest.raises(NotificationError):
            make().post("fails")
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3  # each retry is logged ...
    assert_no_secret(caplog.text, fake)  # ... and nothing logs the token or webhook URL


# --------------------------------------------------------------------------- validation


def test_needs_a_token_or_a_webhook():
    with pytest.raises(ValidationError, match="set one of the fields `bot_token`"):
        SlackChannel()


def test_token_and_webhook_are_exclusive_and_not_echoed():
    with pytest.raises(ValidationError, match="not both") as info:
        SlackChannel(bot_token=TOKEN, channel="#x", webhook_url="https://hooks.slack.com" + HOOK)
    assert TOKEN not in str(info.value) and "WebhookSecret42" not in str(info.value)


def test_token_needs_a_channel():
    with pytest.raises(ValidationError, match="`channel` is required with `bot_token`"):
        SlackChannel(bot_token=TOKEN, channel="  ")


def test_webhook_must_be_a_url():
    with pytest.raises(ValidationError, match="`webhook_url` must be an https:// URL") as info:
        SlackChannel(webhook_url="T000/B000/WebhookSecret42")
    assert "WebhookSecret42" not in str(info.value)


def test_an_unvalidated_block_fails_at_use_with_a_configuration_error():
    # Block.load(validate=False) builds the block without running validators
    block = SlackChannel.model_construct(bot_token=None, webhook_url=None)
    with pytest.raises(ConfigurationError, match="`bot_token`"):
        block.post("hello")


def test_block_round_trips_through_its_schema_fields():
    block = SlackChannel(bot_token=TOKEN, channel="#platform")
    assert block.api_url == "https://slack.com/api/"
    assert block.max_retries == 3 and block.timeout == 30
    assert TOKEN not in repr(block)
    assert set(SlackChannel.model_json_schema()["secret_fields"]) == {"bot_token", "webhook_url"}


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    ("event", "emoji"),
    [
        ("created", ":white_check_mark:"),
        ("expiring", ":hourglass_flowing_sand:"),
        ("destroyed", ":wastebasket:"),
        ("teardown-failed", ":rotating_light:"),
        ("extended", ":information_source:"),
    ],
)
def test_environment_message_for_each_event(fake: FakeSlack, event: str, emoji: str):
    text, blocks = environment_message(
        event,
        name="demo-7f3a",
        url="https://demo-7f3a.example.com",
        owner="alice",
        expires_at=NOW + timedelta(minutes=42),
        ttl_seconds=7200,
        run_url="http://127.0.0.1:4200/runs/flow-run/abc",
        detail="terraform destroy: error" if event == "teardown-failed" else None,
        now=NOW,
    )
    assert text.startswith(emoji) and "demo-7f3a" in text
    header = blocks[0]
    assert header["type"] == "header" and header["text"]["text"].startswith(emoji)
    assert "demo-7f3a" in header["text"]["text"]
    if event == "extended":
        assert "Environment extended" in header["text"]["text"]
    alert = event == "teardown-failed"
    assert any("Action needed" in json.dumps(b) for b in blocks) is alert
    assert check_blocks(blocks) == []
    bot(fake).post(text, blocks)
    assert fake.find("demo-7f3a")


def test_environment_message_fields_and_run_link():
    _, blocks = environment_message(
        "created",
        name="PR_42",
        url="https://pr-42.example.com/?a=1&b=2",
        owner="alice",
        expires_at=datetime(2025, 1, 1, 14, 5),  # naive: taken as UTC
        ttl_seconds=7500,
        run_url="https://prefect.example.com/runs/flow-run/abc",
        now=NOW,
    )
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields == [
        "*Environment*\nPR_42",
        "*URL*\n<https://pr-42.example.com/?a=1&amp;b=2|https://pr-42.example.com/?a=1&amp;b=2>",
        "*Expires*\n2025-01-01 14:05 UTC (in 2 h 5 min)",
        "*TTL*\n2 h 5 min",
        "*Owner*\nalice",
    ]
    assert blocks[-1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": ":link: <https://prefect.example.com/runs/flow-run/abc|"
                "View the Prefect flow run>",
            }
        ],
    }


def test_expiry_in_minutes_and_in_the_past():
    soon = environment_message(
        "expiring", name="e", expires_at=NOW + timedelta(minutes=42), now=NOW
    )
    assert "(in 42 min)" in soon[1][1]["fields"][1]["text"]
    past = environment_message("destroyed", name="e", expires_at=NOW - timedelta(hours=3), now=NOW)
    assert past[1][1]["fields"][1]["text"] == "*Expired*\n2025-01-01 09:00 UTC (3 h ago)"


def test_user_values_are_escaped_for_mrkdwn():
    text, blocks = environment_message(
        "created", name="a<b>&c", owner="<!channel>", url="javascript:alert(1)|x", now=NOW
    )
    dumped = json.dumps(blocks)
    assert "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped
    assert "a&lt;b&gt;&amp;c" in text
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*URL*\njavascript:alert(1)|x" in fields  # not made a link
    assert blocks[0]["text"]["text"].endswith("a<b>&c")  # plain_text needs no escaping


@pytest.mark.parametrize("event", ["created", "teardown-failed", "anything"])
def test_huge_values_stay_within_slacks_limits(fake: FakeSlack, event: str):
    tail = "LAST LINE OF STDERR"
    text, blocks = environment_message(
        event,
        name="n" * 300,
        url="https://example.com/" + "p" * 5000,
        owner="o&" * 3000,
        ttl_seconds=10**9,
        run_url="https://prefect.example.com/" + "r" * 5000,
        detail=("x&<>" * 2500) + tail,
        now=NOW,
    )
    assert len(blocks) <= 50
    assert units(blocks[0]["text"]["text"]) <= MAX_HEADER_TEXT
    for block in blocks[1:]:
        if "text" in block:
            assert units(block["text"]["text"]) <= MAX_SECTION_TEXT
        for field in block.get("fields", []):
            assert units(field["text"]) <= MAX_FIELD_TEXT
    detail = blocks[-2]["text"]["text"]
    if event == "teardown-failed":  # an error output keeps its end
        assert detail.startswith("```…") and detail.endswith(tail + "```")
    assert "&am…" not in json.dumps(blocks)  # never half an escape
    assert check_blocks(blocks) == []
    bot(fake).post(text, blocks)
    hook(fake).post(text, blocks)
    assert len(fake.messages) == 2


def test_header_counts_characters_as_slack_does():
    _, blocks = environment_message("created", name="\N{ROCKET}" * 300, now=NOW)
    assert units(blocks[0]["text"]["text"]) <= MAX_HEADER_TEXT


def test_clip():
    assert clip("short", 10) == "short"
    assert clip("abcdefghij", 5) == "abcd…"
    assert clip("abc&amp;def", 6) == "abc…"
    assert clip("abc&amp;def", 4, keep="tail") == "…def"


# --------------------------------------------------------------------------- task


def test_notify_environment_posts(fake: FakeSlack):
    assert notify_environment.fn(bot(fake), "created", name="demo-1", owner="bob") is True
    assert fake.find("demo-1")[0].blocks[0]["type"] == "header"


def test_notify_environment_without_slack_only_logs(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    assert notify_environment.fn(None, "destroyed", name="demo-1") is False
    assert "not posting 'destroyed' for environment 'demo-1'" in caplog.text


def test_notify_environment_survives_a_failing_slack(fake: FakeSlack, caplog):
    caplog.set_level(logging.INFO)
    broken = bot(fake, bot_token="xoxb-unknown")
    assert notify_environment.fn(broken, "teardown-failed", name="demo-1", detail="boom") is False
    assert "Could not post 'teardown-failed'" in caplog.text and "invalid_auth" in caplog.text
    with pytest.raises(NotificationError, match="invalid_auth"):
        notify_environment.fn(broken, "teardown-failed", name="demo-1", raise_on_error=True)


def test_notify_environment_survives_an_unreachable_slack():
    down = SlackChannel(webhook_url=f"http://127.0.0.1:{free_port()}{HOOK}", max_retries=0)
    assert notify_environment.fn(down, "destroyed", name="demo-1") is False


# --------------------------------------------------------------------------- other process


def test_a_flow_in_another_process_can_post_to_the_fake(fake: FakeSlack):
    code = textwrap.dedent(
        f"""
        from prefect_stacks.blocks.slack import SlackChannel
        SlackChannel(webhook_url={fake.webhook_url(HOOK)!r}).post("from a subprocess")
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=120)
    assert fake.wait_for("from a subprocess", timeout=5).kind == "webhook"
