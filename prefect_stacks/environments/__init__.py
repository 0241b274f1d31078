"""The environment ledger and its lifecycle: create, get, list, extend, keep, destroy.

Every environment (``demo-7f3a``, ``PR_42``, ``staging`` ...) is one ledger entry, stored
on the Prefect server as one Prefect Variable (``stacks-env-<name>``, tagged
``prefect-stacks:environment``), so:

* nothing lives on a worker's disk;
* there is no size cliff: one entry is ~1 KB of a Variable's 5,000 characters, and a
  listing pages through the variables API (and checks the count, so a partial listing is an
  error, never "fewer environments");
* two writers are safe: every read-modify-write of an entry holds one of 16 striped
  Prefect global concurrency limits (limit 1, leased, so a killed holder frees it within
  ``LOCK_LEASE_SECONDS``).

Teardown itself (terraform destroy, Prefect objects, Slack) is in
:mod:`prefect_stacks.flows.environments`; this module only records and schedules.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    VariableCreate,
    VariableUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import (
    BaseModel,
    Field,
    WithJsonSchema,
)

from prefect_stacks._internal import prefect_api
from prefect_stacks._internal.variables import PartialListing, tagged_variable_values
from prefect_stacks.exceptions import (
    ConfigurationError,
    EnvironmentNotFound,
    LedgerError,
)

VARIABLE_PREFIX = "stacks-env-"
LEDGER_TAG = "prefect-stacks:environment"
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
# How long schedule_teardown keeps asking a server that answers 5xx to create the run.
TEARDOWN_CREATE_SECONDS = 60
# Waiters poll the stripe themselves, every 0.05 s at first and at most every
# LOCK_POLL_MAX_SECONDS. Prefect's own retry sleeps for the server's Retry-After, which
# grows with the limit's average occupancy and its denied tries (up to 30 s + 30 %
# jitter): after a killed holder, queued waiters slept through most of the time the
# stripe was free, and one ran out its timeout behind three others (bench/ledger_lock.py).
LOCK_POLL_FIRST_SECONDS = 0.05
LOCK_POLL_MAX_SECONDS = 1.0
LOCK_RENEW_SECONDS = LOCK_LEASE_SECONDS / 2  # a held stripe's lease is renewed this often
TEARDOWN_DEPLOYMENT = "environment-teardown/default"
_LOGGER = logging.getLogger("prefect_stacks.environments")
MAX_TTL = timedelta(days=90)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EnvironmentState(str, Enum):
    provisioning = "provisioning"
    ready = "ready"
    destroying = "destroying"
    destroyed = "destroyed"
    failed = "failed"


LIVE_STATES = frozenset(
    {
        EnvironmentState.provisioning,
        EnvironmentState.ready,
        EnvironmentState.destroying,
        EnvironmentState.failed,
    }
)


class PrefectObjects(BaseModel):
    """Prefect objects made for an environment; teardown deletes every one."""

    deployments: list[str] = Field(default_factory=list, description="Deployment ids.")
    flow_runs: list[str] = Field(
        default_factory=list, description="Scheduled flow run ids (e.g. the teardown)."
    )
    variables: list[str] = Field(default_factory=list, description="Variable names.")


class Environment(BaseModel):
    """One ledger entry."""

    name: str
    kind: str = "static"
    owner: str | None = None
    stack: str = Field(description="Name of the TerraformStack block.")
    workspace: str
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Non-secret stack variables used to apply it."
    )
    created_at: datetime = Field(default_factory=utcnow)
    last_activity_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    state: EnvironmentState = EnvironmentState.provisioning
    url: str | None = None
    slack_block: str | None = None
    objects: PrefectObjects = Field(default_factory=PrefectObjects)
    desired_version: str | None = Field(
        default=None,
        description="The version (e.g. a pull request's head commit) it should run.",
    )
    deployed_version: str | None = Field(
        default=None, description="The version its last successful deploy put in place."
    )
    provisioning_run_id: str | None = Field(
        default=None,
        description="The flow run applying the stack; teardowns wait for it to finish.",
    )
    provisioning_started_at: datetime | None = None
    teardown_run_id: str | None = Field(
        default=None, description="The scheduled (or running) teardown flow run."
    )
    teardown_started_at: datetime | None = None
    teardown_attempts: int = 0
    warned_at: datetime | None = None
    destroyed_at: datetime | None = None
    error: str | None = None
    revision: int = 0

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def expires_in(self, now: datetime | None = None) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - (now or utcnow())


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigurationError(
            f"{name!r} is not a valid environment name: 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit (e.g. demo-7f3a, PR_42)."
        )
    return name


KEEP_HINT = "`prefect-stacks env keep <name>` makes an environment never expire"
DURATION_EXAMPLES = "3600 (seconds), 90m, 2h, 1d or 1h30m"


def validate_ttl(ttl_seconds: float, given: Any = None) -> timedelta:
    """``ttl_seconds`` as a TTL; errors show ``given`` (what the user wrote) if set."""
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, (int, float))
        or not ttl_seconds > 0
    ):
        raise ConfigurationError(
            f"TTL must be a positive number of seconds or a duration such as "
            f"{DURATION_EXAMPLES}; got {ttl_seconds if given is None else given!r}. "
            f"({KEEP_HINT}.)"
        )
    if ttl_seconds > MAX_TTL.total_seconds():
        raise ConfigurationError(
            f"TTL {format_duration(timedelta(seconds=ttl_seconds))} is longer than the "
            f"{MAX_TTL.days}-day maximum; {KEEP_HINT}."
        )
    return timedelta(seconds=ttl_seconds)


def parse_ttl(value: float | str) -> timedelta:
    """A TTL as a flow parameter or `env extend` takes it: seconds (a number, or digits)
    or a duration (``90m``, ``2h``, ``1d``, ``1h30m``)."""
    if isinstance(value, str):
        return validate_ttl(parse_duration(value), given=value)
    return validate_ttl(value)


# ------------------------------------------------------------- flow parameters
# Types for flow parameters that read well in the Prefect UI's run form and are checked
# by the server when a run is created (a deployment enforces its parameter schema).

# The server checks a string against this before the run exists; parse_duration is the
# authority (it also refuses 0 and more than MAX_TTL, with a message).
_DURATION_PATTERN = r"^\s*([0-9]+(\.[0-9]+)?|([0-9]+[smhdSMHD])+)\s*$"
TTL_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "title": "duration",
            "type": "string",
            "pattern": _DURATION_PATTERN,
            "examples": ["90m", "2h", "1d"],
        },
        {
            "title": "seconds",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_TTL.total_seconds(),
        },
    ]
}
TTL = Annotated[int | float | str, WithJsonSchema(TTL_SCHEMA)]


def variable_name(name: str) -> str:
    """Prefect variable names are lowercase; environment names keep their case in the
    entry, and two names differing only by case are the same environment."""
    return VARIABLE_PREFIX + validate_name(name).lower()


class LimitBusy(TimeoutError):
    """A global concurrency limit stayed full for the whole wait."""


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
        lease_id = _acquire_lease(client, limit, timeout_seconds)
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


def _acquire_lease(client: SyncPrefectClient, limit: str, timeout_seconds: float) -> UUID:
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


def _lock_name(name: str) -> str:
    stripe = int(hashlib.sha1(name.lower().encode()).hexdigest(), 16) % LOCK_STRIPES
    return f"{LOCK_PREFIX}{stripe:02d}"


class EnvironmentLedger:
    """Read and write ledger entries on the Prefect server (the one in
    ``PREFECT_API_URL``). Safe to use from several processes at once."""

    _locks_ready: set[str] = set()

    def __init__(self, client: SyncPrefectClient | None = None) -> None:
        self._client = client

    @contextmanager
    def _session(self) -> Iterator[SyncPrefectClient]:
        if self._client is not None:
            yield self._client
            return
        with get_client(sync_client=True) as client:
            yield client

    # ------------------------------------------------------------------ locking
    def _ensure_lock(self, client: SyncPrefectClient, lock: str) -> None:
        key = f"{client.api_url}|{lock}"
        if key in self._locks_ready:
            return
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=lock, limit=1, active=True)
            )
        except (ObjectAlreadyExists, httpx.HTTPStatusError) as exc:
            if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code != 409:
                raise
        limit = client.read_global_concurrency_limit_by_name(lock)
        if limit.limit != 1 or not limit.active:
            raise LedgerError(
                f"global concurrency limit {lock!r} must be active with limit 1 (it guards "
                f"ledger writes); it is limit={limit.limit}, active={limit.active}. Fix it "
                f"with: prefect gcl update {lock} --limit 1 --enable"
            )
        self._locks_ready.add(key)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the ledger lock of ``name`` (shared with 1/16 of all names)."""
        lock = _lock_name(name)
        with self._session() as client:
            self._ensure_lock(client, lock)
        try:
            with hold_limit(lock, LOCK_TIMEOUT_SECONDS):
                yield
        except LimitBusy as exc:
            raise LedgerError(
                f"could not lock the ledger entry of {name!r} within "
                f"{LOCK_TIMEOUT_SECONDS}s (global concurrency limit {lock!r} is busy; "
                f"`prefect gcl inspect {lock}` shows its slots)"
            ) from exc

    # ------------------------------------------------------------------ reading
    def find(self, name: str) -> Environment | None:
        key = variable_name(name)  # bad input fails before any server call
        with self._session() as client:
            variable = client.read_variable_by_name(key)
        if variable is None:
            return None
        return Environment.model_validate(variable.value)

    def get(self, name: str) -> Environment:
        env = self.find(name)
        if env is None:
            raise EnvironmentNotFound(
                f"no environment named {name!r} in the ledger; "
                "`prefect-stacks env list --all` shows every known environment."
            )
        return env

    def list(self, include_destroyed: bool = False) -> list[Environment]:
        """Every entry, paged; raises LedgerError when the listing fails or comes back
        shorter than the server's count (a partial listing must never look like fewer
        environments)."""
        try:
            with self._session() as client:
                values = tagged_variable_values(client, LEDGER_TAG)
            entries = [Environment.model_validate(v) for v in values]
        except PartialListing as exc:
            raise LedgerError(
                f"the environment ledger listing is partial: {exc}; not acting on it"
            ) from exc
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise LedgerError(f"listing the environment ledger failed: {exc}") from exc
        if not include_destroyed:
            entries = [e for e in entries if e.is_live]
        return entries

    # ------------------------------------------------------------------ writing
    def _write(self, client: SyncPrefectClient, env: Environment, create: bool) -> None:
        value = env.model_dump(mode="json")
        name = variable_name(env.name)
        if create:
            client.create_variable(VariableCreate(name=name, value=value, tags=[LEDGER_TAG]))
        else:
            client.update_variable(VariableUpdate(name=name, value=value, tags=[LEDGER_TAG]))

    def create(self, env: Environment) -> Environment:
        """Record a new environment; an entry of the same name that is destroyed is
        replaced (the name is reused), a live one is an error."""
        validate_name(env.name)
        with self.lock(env.name), self._session() as client:
            existing = client.read_variable_by_name(variable_name(env.name))
            if existing is not None:
                old = Environment.model_validate(existing.value)
                if old.is_live:
                    raise ConfigurationError(
                        f"environment {env.name!r} already exists ({old.state.value}); "
                        "destroy it first or choose another name."
                    )
                client.delete_variable_by_name(variable_name(env.name))
            env.revision = 1
            self._write(client, env, create=True)
        return env

    def update(self, name: str, change: Callable[[Environment], Any]) -> Environment:
        """Read-modify-write ``name`` under its lock; ``change`` edits the entry."""
        with self.lock(name), self._session() as client:
            variable = client.read_variable_by_name(variable_name(name))
            if variable is None:
                raise EnvironmentNotFound(f"no environment named {name!r} in the ledger")
            env = Environment.model_validate(variable.value)
            change(env)
            env.revision += 1
            env.last_activity_at = utcnow()
            self._write(client, env, create=False)
        return env

    def remove(self, name: str) -> bool:
        """Delete a *destroyed* entry (retention pruning). A live entry is never removed:
        infrastructure may remain."""
        with self.lock(name), self._session() as client:
            variable = client.read_variable_by_name(variable_name(name))
            if variable is None:
                return False
            env = Environment.model_validate(variable.value)
            if env.state != EnvironmentState.destroyed:
                raise LedgerError(
                    f"refusing to remove {name!r}: it is {env.state.value}, not destroyed"
                )
            client.delete_variable_by_name(variable_name(name))
        return True


# ---------------------------------------------------------------------- lifecycle


def _deployment_id(client: SyncPrefectClient, deployment: str) -> UUID:
    found = prefect_api.deployment_id(client, deployment)
    if found is None:
        raise ConfigurationError(
            f"deployment {deployment!r} does not exist on {client.api_url}; apply "
            "deployments/prefect.yaml (`prefect-stacks up` does) before creating environments."
        )
    return found


def check_teardown_deployment(deployment: str = TEARDOWN_DEPLOYMENT) -> UUID:
    with get_client(sync_client=True) as client:
        return _deployment_id(client, deployment)


def schedule_teardown(
    name: str,
    at: datetime,
    *,
    deployment: str = TEARDOWN_DEPLOYMENT,
    reason: str = "expired",
    ledger: EnvironmentLedger | None = None,
) -> str:
    """Create a one-off run of the teardown deployment at ``at``, then record it in the
    entry and delete the run it replaces (in that order: there is never a moment without
    a scheduled teardown)."""
    ledger = ledger or EnvironmentLedger()
    with get_client(sync_client=True) as client:
        deployment_id = _deployment_id(client, deployment)
        from prefect.states import Scheduled

        deadline = time.monotonic() + TEARDOWN_CREATE_SECONDS
        while True:
            try:
                run = client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters={"name": name, "reason": reason},
                    state=Scheduled(scheduled_time=at),
                    tags=[f"env:{name}"],
                    idempotency_key=f"teardown-{name.lower()}-{at.isoformat()}-{reason}",
                )
                break
            except httpx.HTTPStatusError as exc:
                # A server that cannot answer (SQLite busy: 503 after the client's own
                # retries) is asked again: the idempotency key makes a second create
                # return the run a first one may have made.
                if exc.response.status_code < 500 or time.monotonic() > deadline:
                    raise
                _LOGGER.warning("scheduling the teardown of %s: %s; retrying", name, exc)
                time.sleep(2)
    new_id = str(run.id)
    record_teardown(name, new_id, ledger)
    return new_id


def record_teardown(name: str, run_id: str, ledger: EnvironmentLedger) -> list[str]:
    """Make ``run_id`` the entry's scheduled teardown and delete the one it replaces;
    returns the replaced run ids.

    A run due at once may already have been picked up before it is recorded here (a TTL
    of seconds); if it then found the entry still provisioning, it rescheduled itself,
    and that newer run must not be replaced by this older one, which has started. So a
    run that is no longer scheduled never replaces another (checked under the lock the
    reschedule also takes)."""
    replaced: list[str] = []

    def record(env: Environment) -> None:
        if env.teardown_run_id and env.teardown_run_id != run_id and not _is_scheduled(run_id):
            if run_id not in env.objects.flow_runs:
                env.objects.flow_runs.append(run_id)
            return
        if env.teardown_run_id and env.teardown_run_id != run_id:
            replaced.append(env.teardown_run_id)
        env.teardown_run_id = run_id
        runs = [r for r in env.objects.flow_runs if r not in replaced and r != run_id]
        env.objects.flow_runs = [*runs, run_id]

    ledger.update(name, record)
    for old in replaced:
        cancel_scheduled_run(old)
    return replaced


def _is_scheduled(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return False
    return run.state is not None and run.state.is_scheduled()


def cancel_scheduled_run(flow_run_id: str) -> bool:
    """Delete a flow run if it has not started; True when deleted or already gone."""
    with get_client(sync_client=True) as client:
        # a run that started (or finished) is left: it checks the entry itself
        return prefect_api.delete_if_scheduled(client, flow_run_id) != prefect_api.STARTED


def extend(
    name: str,
    seconds: float,
    *,
    deployment: str = TEARDOWN_DEPLOYMENT,
    ledger: EnvironmentLedger | None = None,
) -> Environment:
    """Push the expiry to now + ``seconds`` and reschedule the teardown."""
    ledger = ledger or EnvironmentLedger()
    ttl = validate_ttl(seconds)
    env = ledger.get(name)
    _require_live(env)
    expires = utcnow() + ttl

    def change(e: Environment) -> None:
        e.expires_at = expires
        e.warned_at = None

    ledger.update(name, change)
    schedule_teardown(name, expires, deployment=deployment, ledger=ledger)
    return ledger.get(name)


def keep(name: str, *, ledger: EnvironmentLedger | None = None) -> Environment:
    """No expiry: cancel the scheduled teardown."""
    ledger = ledger or EnvironmentLedger()
    env = ledger.get(name)
    _require_live(env)
    cancelled: list[str] = []

    def change(e: Environment) -> None:
        e.expires_at = None
        e.warned_at = None
        if e.teardown_run_id:
            cancelled.append(e.teardown_run_id)
            e.objects.flow_runs = [r for r in e.objects.flow_runs if r != e.teardown_run_id]
            e.teardown_run_id = None

    env = ledger.update(name, change)
    for run_id in cancelled:
        cancel_scheduled_run(run_id)
    return env


def destroy(
    name: str,
    *,
    deployment: str = TEARDOWN_DEPLOYMENT,
    ledger: EnvironmentLedger | None = None,
) -> str:
    """Run the teardown now (a flow run of the teardown deployment); returns its id."""
    ledger = ledger or EnvironmentLedger()
    env = ledger.get(name)
    if env.state == EnvironmentState.destroyed:
        raise ConfigurationError(f"environment {name!r} is already destroyed")
    return schedule_teardown(
        name, utcnow(), deployment=deployment, reason="requested", ledger=ledger
    )


def _require_live(env: Environment) -> None:
    if not env.is_live:
        raise ConfigurationError(f"environment {env.name!r} is {env.state.value}")
    if env.state == EnvironmentState.destroying:
        raise ConfigurationError(f"environment {env.name!r} is being destroyed")


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "never"
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{seconds}s"
    elif seconds < 3600:
        text = f"{seconds // 60}m{seconds % 60:02d}s"
    elif seconds < 86400:
        text = f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    else:
        text = f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"
    return sign + text


def expiry_text(env: Environment, now: datetime | None = None) -> str:
    """The "expires in" of a listing: a destroyed or destroying environment has no
    expiry left (its TTL no longer means anything)."""
    now = now or utcnow()
    if env.state == EnvironmentState.destroyed:
        if env.destroyed_at is None:
            return "—"
        return f"destroyed {format_duration(now - env.destroyed_at)} ago"
    if env.state == EnvironmentState.destroying:
        return "— (being destroyed)"
    return format_duration(env.expires_in(now))


def parse_duration(text: str) -> float:
    """``90`` (seconds), ``30s``, ``15m``, ``2h``, ``1d``, ``1h30m``."""
    text = str(text).strip().lower()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigurationError(f"{text!r} is not a duration; use e.g. 3600, 30m, 2h, 1d or 1h30m")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(sum(int(n) * unit[u] for n, u in parts))
