"""The environment ledger on a real Prefect server: round trips, two writers at once,
hundreds of entries, partial listings, and bad input."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from prefect_stacks.environments import (
    Environment,
    EnvironmentLedger,
    EnvironmentState,
    format_duration,
    parse_duration,
    utcnow,
    validate_ttl,
    variable_name,
)
from prefect_stacks.exceptions import ConfigurationError, EnvironmentNotFound, LedgerError

pytestmark = pytest.mark.integration


def _name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _env(name: str, **kw) -> Environment:
    return Environment(name=name, kind="demo", stack="s", workspace=name, **kw)


def test_create_get_update_round_trip(prefect_harness):
    ledger = EnvironmentLedger()
    name = "PR_" + uuid.uuid4().hex[:6]
    created = ledger.create(_env(name, owner="alice", expires_at=utcnow() + timedelta(hours=1)))
    assert created.revision == 1
    got = ledger.get(name)
    assert got.name == name and got.owner == "alice" and got.state == EnvironmentState.provisioning
    # names are case-insensitive keys but keep their case
    assert ledger.get(name.lower()).name == name
    updated = ledger.update(name, lambda e: setattr(e, "state", EnvironmentState.ready))
    assert updated.revision == 2 and ledger.get(name).state == EnvironmentState.ready
    with pytest.raises(ConfigurationError, match="already exists"):
        ledger.create(_env(name))


def test_two_writers_at_once_lose_no_update(prefect_harness):
    ledger = EnvironmentLedger()
    name = _name("race")
    ledger.create(_env(name))
    writers, per_writer = 4, 5
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(per_writer):
                ledger.update(
                    name,
                    lambda e, k=f"w{i}-{j}": e.objects.variables.append(k),
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    env = ledger.get(name)
    # every append survived: without the lock, concurrent read-modify-writes lose some
    assert len(env.objects.variables) == writers * per_writer
    assert env.revision == 1 + writers * per_writer


def test_listing_pages_past_hundreds_and_filters_destroyed(prefect_harness):
    ledger = EnvironmentLedger()
    tag = uuid.uuid4().hex[:4]
    names = [f"bulk-{tag}-{i:03d}" for i in range(230)]  # > one 200-entry page
    for n in names:
        ledger.create(_env(n))
    ledger.update(names[0], lambda e: setattr(e, "state", EnvironmentState.destroyed))
    everything = {e.name for e in ledger.list(include_destroyed=True)}
    live = {e.name for e in ledger.list()}
    assert set(names) <= everything
    assert names[0] not in live and set(names[1:]) <= live


def test_partial_listing_is_an_error(prefect_harness, monkeypatch):
    ledger = EnvironmentLedger()
    ledger.create(_env(_name("p")))
    import prefect_stacks._internal.variables as variables

    monkeypatch.setattr(variables, "PAGE", 1)
    real = ledger._session

    from contextlib import contextmanager

    @contextmanager
    def short_pages():
        with real() as client:
            original = client.request

            def request(method, path, **kw):
                if path == "/variables/filter" and kw["json"]["offset"] >= 1:
                    kw["json"]["offset"] = 10**6  # the server "loses" the later pages
                return original(method, path, **kw)

            client.request = request
            try:
                yield client
            finally:
                client.request = original

    monkeypatch.setattr(ledger, "_session", short_pages)
    with pytest.raises(LedgerError, match="partial"):
        ledger.list()


def test_remove_refuses_a_live_entry(prefect_harness):
    ledger = EnvironmentLedger()
    name = _name("keep")
    ledger.create(_env(name))
    with pytest.raises(LedgerError, match="refusing to remove"):
        ledger.remove(name)
    assert ledger.find(name) is not None
    ledger.update(name, lambda e: setattr(e, "state", EnvironmentState.destroyed))
    assert ledger.remove(name) is True
    assert ledger.find(name) is None


def test_unknown_environment_is_a_clear_error(prefect_harness):
    with pytest.raises(EnvironmentNotFound, match="no environment named 'nope-123'"):
        EnvironmentLedger().get("nope-123")


@pytest.mark.parametrize("bad", ["", "a b", "x;rm -rf /", "-x", "a" * 64, "ümlaut"])
def test_bad_names_are_refused(bad):
    with pytest.raises(ConfigurationError, match="not a valid environment name"):
        variable_name(bad)


@pytest.mark.parametrize("bad", [-5, 0, "10", 10**9])
def test_bad_ttls_are_refused(bad):
    with pytest.raises(ConfigurationError):
        validate_ttl(bad)


def test_durations():
    assert parse_duration("90") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    with pytest.raises(ConfigurationError):
        parse_duration("soon")
    assert format_duration(timedelta(seconds=75)) == "1m15s"
    assert format_duration(timedelta(seconds=-30)) == "-30s"
    assert format_duration(None) == "never"


def test_a_busy_lock_is_a_clear_error_and_changes_nothing(prefect_harness, monkeypatch):
    from prefect_stacks.environments import locks

    ledger = EnvironmentLedger()
    name = _name("busy")
    ledger.create(_env(name))
    monkeypatch.setattr(locks, "LOCK_TIMEOUT_SECONDS", 1.5)
    with ledger.lock(name):  # another writer holds the stripe
        with pytest.raises(LedgerError, match=r"within 1.5s .*prefect-stacks-ledger-\d\d"):
            ledger.update(name, lambda e: setattr(e, "owner", "mallory"))
    got = ledger.get(name)
    assert got.owner is None and got.revision == 1
    # and the stripe is free again once its holder left
    assert ledger.update(name, lambda e: setattr(e, "owner", "alice")).owner == "alice"


def test_a_waiter_gets_the_lock_right_after_the_holder(prefect_harness):
    ledger = EnvironmentLedger()
    name = _name("handoff")
    ledger.create(_env(name))
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with ledger.lock(name):
            holding.set()
            release.wait(10)
            order.append("holder out")

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(30)
    waiter = threading.Thread(
        target=lambda: ledger.update(name, lambda e: order.append("waiter in"))
    )
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive(), "the waiter got in while the stripe was held"
    release.set()
    thread.join(30)
    waiter.join(30)
    assert order == ["holder out", "waiter in"]


def test_a_held_lock_renews_its_lease_and_releases_it(prefect_harness, monkeypatch):
    import httpx
    from prefect import get_client
    from prefect.client.orchestration import SyncPrefectClient

    from prefect_stacks.environments import locks

    monkeypatch.setattr(locks, "LOCK_RENEW_SECONDS", 0.3)
    leases: list = []
    renew = SyncPrefectClient.renew_concurrency_lease

    def recording_renew(self, lease_id, lease_duration):
        response = renew(self, lease_id=lease_id, lease_duration=lease_duration)
        leases.append((lease_id, str(self.api_url)))  # only accepted renewals (204)
        return response

    monkeypatch.setattr(SyncPrefectClient, "renew_concurrency_lease", recording_renew)
    ledger = EnvironmentLedger()
    name = _name("lease")
    with ledger.lock(name):
        threading.Event().wait(1.5)
    # renewed, by the server this test talks to (the renewer thread sees the caller's
    # Prefect settings, not a fresh ephemeral server's)
    assert len(leases) >= 2 and len({lease for lease, _ in leases}) == 1
    with get_client(sync_client=True) as client:
        assert {url for _, url in leases} == {str(client.api_url)}
    # released: the server no longer knows the lease
    with get_client(sync_client=True) as client, pytest.raises(httpx.HTTPStatusError) as err:
        client.renew_concurrency_lease(lease_id=leases[0][0], lease_duration=60)
    assert err.value.response.status_code == 410


def test_a_deleted_lock_limit_is_a_clear_error(prefect_harness):
    from prefect import get_client

    from prefect_stacks.environments import locks
    from prefect_stacks.environments.locks import lock_name

    ledger = EnvironmentLedger()
    name = _name("gone")
    ledger.create(_env(name))  # the stripe's limit now exists (and is remembered)
    lock = lock_name(name)
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(lock)
    try:
        with pytest.raises(ConfigurationError, match=f"prefect gcl create {lock} --limit 1"):
            ledger.update(name, lambda e: setattr(e, "owner", "x"))
        assert ledger.get(name).revision == 1
    finally:
        locks._READY.clear()  # the next write re-creates it
    assert ledger.update(name, lambda e: setattr(e, "owner", "x")).owner == "x"
