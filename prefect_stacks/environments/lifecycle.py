"""The lifecycle protocol of a ledger entry, apart from the teardown itself
(:mod:`.teardown`): its scheduled teardown run (schedule, record, cancel; extend, keep,
destroy), the deploy claim (:func:`start_deploy` / :func:`finish_deploy`), and the tests
every teardown makes before it acts (another teardown or an apply still running).

Every decision is taken inside :meth:`EnvironmentLedger.update`, under the entry's lock,
and handed back as that change's result."""

from __future__ import annotations

import time
from datetime import datetime
from uuid import UUID

import httpx
from prefect import get_client, get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.states import Scheduled

from prefect_stacks._internal import prefect_api
from prefect_stacks._internal.process import default_logger
from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.messages import refresh_environment_table
from prefect_stacks.environments.models import (
    Environment,
    EnvironmentState,
    utcnow,
    validate_ttl,
)
from prefect_stacks.exceptions import ConfigurationError

TEARDOWN_DEPLOYMENT = "environment-teardown/default"
# How long schedule_teardown keeps asking a server that answers 5xx to create the run: as
# long as a ledger writer waits for its lock. A busy SQLite server answers 503 to a create
# after the client's own retries (up to ~60 s of them), so one round is not enough; the
# idempotency key makes every further ask safe.
TEARDOWN_CREATE_SECONDS = 180
DEFAULT_STALE_AFTER = 900


# ------------------------------------------------------------ the scheduled teardown


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
                default_logger().warning(
                    "scheduling the teardown of %s: the server answered %s; asking again",
                    name,
                    exc.response.status_code,
                )
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

    def record(env: Environment) -> list[str]:
        if env.teardown_run_id and env.teardown_run_id != run_id and not _is_scheduled(run_id):
            if run_id not in env.objects.flow_runs:
                env.objects.flow_runs.append(run_id)
            return []
        replaced = []
        if env.teardown_run_id and env.teardown_run_id != run_id:
            replaced.append(env.teardown_run_id)
        env.teardown_run_id = run_id
        runs = [r for r in env.objects.flow_runs if r not in replaced and r != run_id]
        env.objects.flow_runs = [*runs, run_id]
        return replaced

    replaced = ledger.update(name, record)
    for old in replaced:
        cancel_scheduled_run(old)
    return replaced


def _is_scheduled(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        run = prefect_api.read_flow_run(client, flow_run_id)
    return run is not None and run.state is not None and run.state.is_scheduled()


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

    def change(e: Environment) -> tuple[Environment, str | None]:
        cancelled = e.teardown_run_id
        e.expires_at = None
        e.warned_at = None
        if cancelled:
            e.objects.flow_runs = [r for r in e.objects.flow_runs if r != cancelled]
            e.teardown_run_id = None
        return e, cancelled

    env, cancelled = ledger.update(name, change)
    if cancelled:
        cancel_scheduled_run(cancelled)
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


# ------------------------------------------------------------------ the deploy claim


def start_deploy(name: str, ledger: EnvironmentLedger) -> Environment:
    """Record that this flow run is applying ``name``: teardowns wait for it."""

    def change(e: Environment) -> None:
        e.provisioning_run_id = prefect_api.current_flow_run_id()
        e.provisioning_started_at = utcnow()

    return ledger.update(name, change)


def finish_deploy(
    name: str,
    ledger: EnvironmentLedger,
    teardown_deployment: str = TEARDOWN_DEPLOYMENT,
    *,
    url: str | None = None,
    version: str | None = None,
    exc: BaseException | None = None,
) -> Environment:
    """Record the end of an apply: ready (with its URL and version), or the error —
    failed if it was the first provisioning; a failed redeploy of a ready environment
    keeps it ready (the previous version still runs) with the error recorded.

    Teardowns wait for the deploying run, unless they judged it dead (it ran longer
    than their ``stale_after``). Then a destroy may have run before the apply finished,
    and what the apply built would leak: the entry is reopened (failed) and a teardown
    scheduled now."""

    def change(e: Environment) -> tuple[Environment, str | None]:
        """The entry, and the state a teardown left it in while we applied (or None)."""
        e.provisioning_run_id = None
        e.provisioning_started_at = None
        torn_down = e.state in (EnvironmentState.destroying, EnvironmentState.destroyed) or (
            e.state == EnvironmentState.failed and e.teardown_started_at is not None
        )
        if not torn_down:
            _record_deploy_end(e, url=url, version=version, exc=exc)
            return e, None
        overtaken = e.state.value
        e.state = EnvironmentState.failed
        e.destroyed_at = None
        e.error = (
            f"a teardown ran ({overtaken}) while the stack was being applied: what the "
            "apply built may remain; destroying again"
        )
        return e, overtaken

    env, overtaken = ledger.update(name, change)
    if overtaken:
        get_run_logger().warning(
            "%s was %s while it was being applied; scheduling a teardown now", name, overtaken
        )
        schedule_teardown(
            name, utcnow(), deployment=teardown_deployment, reason="requested", ledger=ledger
        )
    refresh_environment_table(ledger)
    return env


def _record_deploy_end(
    e: Environment, *, url: str | None, version: str | None, exc: BaseException | None
) -> None:
    if exc is None:
        e.state, e.error = EnvironmentState.ready, None
        e.url = url or e.url
        e.deployed_version = version or e.deployed_version
    elif e.state == EnvironmentState.provisioning:
        mark_failed(e, exc)
    else:
        e.error = f"deploy of {version or 'a new version'} failed: {exc}"[:1500]


def mark_failed(env: Environment, exc: BaseException, count_attempt: bool = False) -> None:
    env.state = EnvironmentState.failed
    env.error = f"{type(exc).__name__}: {exc}"[:1500]
    if count_attempt:
        env.teardown_attempts += 1


# ------------------------------------------------------------ before a teardown acts


def retry_delay(attempts: int) -> int:
    """Backoff between teardown attempts: 30 s, 2 min, 8 min, 32 min, then hourly."""
    return min(30 * 4 ** max(attempts - 1, 0), 3600)


def postpone_delay(env: Environment, now: datetime) -> int:
    """How long a teardown waits for provisioning: 10 s for two minutes, then 60 s."""
    started = env.provisioning_started_at or env.created_at
    return 10 if (now - started).total_seconds() < 120 else 60


def _run_finished(run_id: str | None) -> bool:
    """The flow run is over (or unknown to the server): it will not write again."""
    if not run_id:
        return True
    with get_client(sync_client=True) as client:
        run = prefect_api.read_flow_run(client, run_id)
    return run is None or (run.state is not None and run.state.is_final())


def teardown_in_progress(
    env: Environment, now: datetime, stale_after: float, by_run: str | None
) -> bool:
    """Another teardown claimed ``env`` recently and has not finished or crashed."""
    if env.state != EnvironmentState.destroying or env.teardown_started_at is None:
        return False
    if by_run and env.teardown_run_id == by_run:
        return False  # our own claim (e.g. a retry of this run)
    if (now - env.teardown_started_at).total_seconds() > stale_after:
        return False  # a killed worker never finishes: take over
    return not _run_finished(env.teardown_run_id)


def provisioning_in_progress(env: Environment, now: datetime, stale_after: float) -> bool:
    """A run applying ``env`` (its first provisioning, or a later deploy of a new
    version) is still going: destroying now would race its apply, which would then build
    into a workspace already torn down. A run older than ``stale_after`` is presumed dead
    (a killed worker leaves its run Running)."""
    if not env.provisioning_run_id or env.state == EnvironmentState.destroyed:
        return False
    started = env.provisioning_started_at or env.created_at
    if (now - started).total_seconds() > stale_after:
        return False
    return not _run_finished(env.provisioning_run_id)
