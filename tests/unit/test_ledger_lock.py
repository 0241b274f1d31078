"""Taking a ledger lock slot: a busy slot (423) and a server that cannot answer (5xx, a
dropped connection) are waited out until the deadline; any other refusal is raised."""

from __future__ import annotations

import httpx
import pytest

from prefect_stacks.environments import locks
from prefect_stacks.environments.locks import LimitBusy, acquire_lease

LEASE = "7f0c3f9e-3b4a-4a53-9d0e-2f8a5e6f1b2c"


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://prefect/api/v2/concurrency_limits/increment-with-lease")
    return httpx.HTTPStatusError(
        f"HTTP {code}", request=request, response=httpx.Response(code, request=request)
    )


class Client:
    """Answers increment-with-lease from a script: exceptions to raise, then a lease."""

    def __init__(self, script: list[Exception]) -> None:
        self.script = list(script)
        self.calls = 0

    def increment_concurrency_slots_with_lease(self, **kwargs):
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return httpx.Response(200, json={"limits": [{"name": "x"}], "lease_id": LEASE})


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(locks, "LOCK_POLL_FIRST_SECONDS", 0.01)
    monkeypatch.setattr(locks, "LOCK_POLL_MAX_SECONDS", 0.02)
    monkeypatch.setattr(locks, "_lease_holder", lambda: None)


def test_busy_and_unavailable_answers_are_waited_out():
    client = Client([_status(423), _status(503), httpx.ConnectError("refused"), _status(500)])
    assert str(acquire_lease(client, "stripe-01", timeout_seconds=10)) == LEASE
    assert client.calls == 5


def test_other_refusals_are_raised_at_once():
    client = Client([_status(404)])
    with pytest.raises(httpx.HTTPStatusError):
        acquire_lease(client, "stripe-01", timeout_seconds=10)
    assert client.calls == 1


def test_a_server_that_never_answers_is_busy_with_the_reason():
    client = Client([_status(503)] * 10_000)
    with pytest.raises(LimitBusy, match="last answered HTTP 503"):
        acquire_lease(client, "stripe-01", timeout_seconds=0.3)
