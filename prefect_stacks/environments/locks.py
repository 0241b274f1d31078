"""Striped, leased locks for ledger entries: Prefect global concurrency limits of limit 1
(``prefect-stacks-ledger-00`` .. ``-15``), each slot leased for ``LOCK_LEASE_SECONDS``
and renewed while held, so a killed holder frees its stripe."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists

from prefect_stacks.exceptions import ConfigurationError, LimitBusy

LOCK_PREFIX = "prefect-stacks-ledger-"
LOCK_STRIPES = 16
LOCK_LEASE_SECONDS = 60  # the server minimum
# A holder that was killed frees its slot only when the lease expires AND the server's
# lease-revocation loop (every 15 s) has run: up to ~75 s. A waiter must outlast that,
# or it fails with LedgerError exactly when the lease was meant to rescue it. 120 s was
# not enough in the 50-environment soak on SQLite: a killed holder (~75 s), then the
# stripe's queue, with the server answering 503 under load (each answer retried with
# backoff by Prefect's client), kept one writer out for 120 s (seen twice in CI).
LOCK_TIMEOUT_SECONDS = 180
# Waiters poll the stripe themselves, every 0.05 s at first and at most every
# LOCK_POLL_MAX_SECONDS. Prefect's own retry sleeps for the server's Retry-After, which
# grows with the limit's average occupancy and its denied tries (up to 30 s + 30 %
# jitter): after a killed holder, queued waiters slept through most of the time the
# stripe was free, and one ran out its timeout behind three others (bench/ledger_lock.py).
LOCK_POLL_FIRST_SECONDS = 0.05
LOCK_POLL_MAX_SECONDS = 1.0
LOCK_RENEW_SECONDS = LOCK_LEASE_SECONDS / 2  # a held stripe's lease is renewed this often
_LOGGER = logging.getLogger("prefect_stacks.environments")


_READY: set[str] = set()


def ensure_limit(client: SyncPrefectClient, limit: str, guards: str) -> None:
    """Create the global concurrency limit ``limit`` (limit 1, active) if it is missing,
    and refuse one that someone changed; ``guards`` says what it protects, for that
    error. Checked once per server and process."""
    key = f"{client.api_url}|{limit}"
    if key in _READY:
        return
    try:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=limit, limit=1, active=True)
        )
    except (ObjectAlreadyExists, httpx.HTTPStatusError) as exc:
        if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code != 409:
            raise
    found = client.read_global_concurrency_limit_by_name(limit)
    if found.limit != 1 or not found.active:
        raise ConfigurationError(
            f"global concurrency limit {limit!r} must be active with limit 1 (it guards "
            f"{guards}); it is limit={found.limit}, active={found.active}. Fix it "
            f"with: prefect gcl update {limit} --limit 1 --enable"
        )
    _READY.add(key)


def lock_name(name: str) -> str:
    """The stripe (global concurrency limit) guarding entry ``name``."""
    stripe = int(hashlib.sha1(name.lower().encode()).hexdigest(), 16) % LOCK_STRIPES
    return f"{LOCK_PREFIX}{stripe:02d}"


@contextmanager
def hold_limit(limit: str, timeout_seconds: float) -> Iterator[None]:
    """Hold one slot of the global concurrency limit ``limit``, leased for
    ``LOCK_LEASE_SECONDS`` and renewed while held, so a killed holder frees it.

    Prefect's ``concurrency()`` waits by sleeping the server's Retry-After (up to 39 s),
    and with ``max_retries=0`` it logs every refusal as an ERROR; so this speaks the same
    lease API itself: one ``increment-with-lease`` per try, polled with a short capped
    backoff, so a waiter takes the slot within ``LOCK_POLL_MAX_SECONDS`` of it being
    freed. Raises :class:`LimitBusy` after ``timeout_seconds``."""
    with get_client(sync_client=True) as client:
        lease_id = acquire_lease(client, limit, timeout_seconds)
        stop = threading.Event()
        # in this thread's context: Prefect's settings (API URL, a test harness's
        # temporary settings) are context variables, which a new thread does not see
        renewer = threading.Thread(
            target=contextvars.copy_context().run,
            args=(_renew_lease, lease_id, limit, stop),
            name=f"lease-{limit}",
            daemon=True,
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                client.release_concurrency_slots_with_lease(lease_id)
            except (httpx.HTTPError, OSError) as exc:
                # the lease frees the slot anyway, LOCK_LEASE_SECONDS from now
                _LOGGER.warning("could not release %s (%s); its lease will", limit, exc)


def acquire_lease(client: SyncPrefectClient, limit: str, timeout_seconds: float) -> UUID:
    """Take one slot of ``limit`` with a lease, polling until ``timeout_seconds``; returns
    the lease id. Raises :class:`LimitBusy` when it stayed full."""
    holder = _lease_holder()
    deadline = time.monotonic() + timeout_seconds
    wait = LOCK_POLL_FIRST_SECONDS
    trouble = ""  # the last server or network error, for the timeout's message
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[limit],
                slots=1,
                mode="concurrency",
                lease_duration=LOCK_LEASE_SECONDS,
                holder=holder,
            )
        except httpx.HTTPStatusError as exc:
            # 423: the slot is taken. 5xx: the server could not answer (SQLite busy under
            # load answers 503 even after the client's own retries); nothing was taken,
            # so try again until the deadline like a busy slot.
            if exc.response.status_code != 423 and exc.response.status_code < 500:
                raise
            if exc.response.status_code >= 500:
                trouble = f"; the server last answered HTTP {exc.response.status_code}"
                _LOGGER.warning("taking %s: HTTP %s; retrying", limit, exc.response.status_code)
        except httpx.TransportError as exc:
            trouble = f"; last error: {type(exc).__name__}: {exc}"
            _LOGGER.warning("taking %s: %s; retrying", limit, exc)
        else:
            body = response.json()
            if not body.get("limits"):
                raise ConfigurationError(
                    f"global concurrency limit {limit!r} does not exist or is inactive; "
                    f"create it with: prefect gcl create {limit} --limit 1"
                )
            return UUID(body["lease_id"])
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LimitBusy(f"{limit!r} stayed busy for {timeout_seconds}s{trouble}")
        time.sleep(min(remaining, random.uniform(wait / 2, wait)))
        wait = min(wait * 2, LOCK_POLL_MAX_SECONDS)


def _renew_lease(lease_id: UUID, limit: str, stop: threading.Event) -> None:
    """Renew every LOCK_RENEW_SECONDS while held; a failed renewal is retried at the
    next beat (the lease has time left). A lease the server no longer knows (410) is
    said loudly: another writer may be in the stripe. Most holds end long before the
    first beat, so the client is only made then."""
    client: SyncPrefectClient | None = None
    with ExitStack() as cleanup:
        while not stop.wait(LOCK_RENEW_SECONDS):
            try:
                if client is None:
                    client = cleanup.enter_context(get_client(sync_client=True))
                client.renew_concurrency_lease(lease_id=lease_id, lease_duration=LOCK_LEASE_SECONDS)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 410:
                    _LOGGER.error(
                        "the lease on %s lapsed while held (no renewal reached the "
                        "server for %ss): another ledger writer may be in this stripe",
                        limit,
                        LOCK_LEASE_SECONDS,
                    )
                    return
                _LOGGER.warning("could not renew the lease on %s: %s", limit, exc)
            except (httpx.HTTPError, OSError) as exc:
                _LOGGER.warning("could not renew the lease on %s: %s", limit, exc)


def _lease_holder() -> ConcurrencyLeaseHolder | None:
    """The flow or task run holding the slot, so `prefect gcl inspect` can name it."""
    task = TaskRunContext.get()
    if task is not None and task.task_run is not None:
        return ConcurrencyLeaseHolder(type="task_run", id=task.task_run.id)
    flow = FlowRunContext.get()
    if flow is not None and flow.flow_run is not None:
        return ConcurrencyLeaseHolder(type="flow_run", id=flow.flow_run.id)
    return None
