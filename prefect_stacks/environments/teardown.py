"""The teardown of one environment, as a claim protocol on its ledger entry:

1. claim it (state ``destroying``, ``teardown_started_at`` = our claim), unless another
   teardown holds a fresh claim, or an apply is still running (then reschedule);
2. terraform destroy, delete the workspace, delete every Prefect object made for it;
3. mark it destroyed, but only if the claim is still ours: a late apply reopens the
   entry, and a teardown judged dead is taken over; either way the new owner finishes.

A failure marks the entry failed, alerts, and schedules a new teardown with backoff.
"Already gone" is success; the entry is never removed while infrastructure may remain."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound

from prefect_stacks._internal.prefect_api import STARTED, current_flow_run_id, delete_if_scheduled
from prefect_stacks.blocks.terraform import (
    load_stack,
    terraform_delete_workspace,
    terraform_destroy,
    terraform_init,
)
from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.lifecycle import (
    DEFAULT_STALE_AFTER,
    TEARDOWN_DEPLOYMENT,
    mark_failed,
    postpone_delay,
    provisioning_in_progress,
    retry_delay,
    schedule_teardown,
    teardown_in_progress,
)
from prefect_stacks.environments.messages import refresh_environment_table, say
from prefect_stacks.environments.models import Environment, EnvironmentState, utcnow

CLAIMED = "claimed"
WAITING = "waiting for provisioning"


def teardown(
    name: str,
    reason: str,
    *,
    stale_after: float = DEFAULT_STALE_AFTER,
    ledger: EnvironmentLedger | None = None,
    reschedule: bool = True,
    teardown_deployment: str = TEARDOWN_DEPLOYMENT,
) -> str:
    """Destroy one environment; returns what happened: "destroyed", "already
    destroyed", "not expired", "in progress" (another teardown has it), "waiting for
    provisioning" (rescheduled when ``reschedule``) or "superseded" (another teardown
    took over meanwhile). Raises (after marking the entry failed) when infrastructure
    may remain."""
    logger = get_run_logger()
    ledger = ledger or EnvironmentLedger()
    run_id = current_flow_run_id()
    env = ledger.get(name)  # unknown environment: a clear error, nothing changes
    if env.state == EnvironmentState.destroyed:
        logger.info("%s is already destroyed", name)
        return "already destroyed"
    if reason == "expired" and not env.is_expired():
        logger.info(
            "%s does not expire until %s (extended or kept): nothing to do", name, env.expires_at
        )
        return "not expired"
    now = utcnow()
    env, outcome = ledger.update(name, lambda e: claim(e, now, stale_after, run_id))
    if outcome == WAITING:
        if reschedule:
            postpone(env, now, reason, ledger, teardown_deployment)
        else:
            logger.info("%s is still being provisioned by %s", name, env.provisioning_run_id)
        return outcome
    if outcome != CLAIMED:
        logger.info("%s: %s (%s)", name, outcome, env.teardown_run_id)
        return outcome
    logger.info(
        "tearing down %s (%s): stack %s, workspace %s", name, reason, env.stack, env.workspace
    )
    try:
        deleted = destroy_everything(env, keep_run=run_id)
    except BaseException as exc:
        record_failure(name, now, exc, reason, ledger, teardown_deployment)
        raise
    return record_destroyed(name, now, reason, deleted, ledger)


def claim(
    e: Environment, now: datetime, stale_after: float, run_id: str | None
) -> tuple[Environment, str]:
    """Under the entry's lock: take it for this teardown (``claimed``, with
    ``teardown_started_at = now`` as the claim), or say why not."""
    if teardown_in_progress(e, now, stale_after, run_id):
        return e, "in progress"
    if provisioning_in_progress(e, now, stale_after):
        return e, WAITING
    if e.state == EnvironmentState.destroyed:
        return e, "already destroyed"
    e.state = EnvironmentState.destroying
    e.teardown_started_at = now  # the claim: whoever overwrites it took over
    if run_id:
        e.teardown_run_id = run_id
    return e, CLAIMED


def still_ours(e: Environment, claimed_at: datetime) -> bool:
    """Nobody reopened or took over the entry since our claim at ``claimed_at``."""
    return e.state == EnvironmentState.destroying and e.teardown_started_at == claimed_at


def postpone(
    env: Environment, now: datetime, reason: str, ledger: EnvironmentLedger, deployment: str
) -> None:
    """An apply is still running: schedule this teardown again a little later."""
    retry_at = utcnow() + timedelta(seconds=postpone_delay(env, now))
    schedule_teardown(env.name, retry_at, deployment=deployment, reason=reason, ledger=ledger)
    get_run_logger().info(
        "%s is still being provisioned by flow run %s; teardown rescheduled at %s",
        env.name,
        env.provisioning_run_id,
        f"{retry_at:%H:%M:%S} UTC",
    )


def destroy_everything(env: Environment, keep_run: str | None) -> list[str]:
    """terraform destroy, delete the workspace, then the Prefect objects made for
    ``env`` (but not ``keep_run``, the teardown's own run); returns what was deleted."""
    block = load_stack(env.stack, env.variables)
    with terraform_init(block, env.workspace, create_workspace=False) as workdir:
        terraform_destroy(workdir)
        terraform_delete_workspace(workdir)
    return delete_prefect_objects(env, keep_run=keep_run)


def record_failure(
    name: str,
    claimed_at: datetime,
    exc: BaseException,
    reason: str,
    ledger: EnvironmentLedger,
    deployment: str,
) -> None:
    """The teardown failed: if the entry is still ours, mark it failed, schedule the
    next attempt with backoff, refresh the table and alert. The caller re-raises."""
    logger = get_run_logger()

    def failed(e: Environment) -> tuple[Environment, bool]:
        if not still_ours(e, claimed_at):
            return e, False
        mark_failed(e, exc, count_attempt=True)
        return e, True

    env, ours = ledger.update(name, failed)
    if not ours:
        logger.error("teardown of %s failed, and another run has taken it over", name)
        return
    retry_at = utcnow() + timedelta(seconds=retry_delay(env.teardown_attempts))
    try:
        schedule_teardown(name, retry_at, deployment=deployment, reason=reason, ledger=ledger)
        retry = f"retrying at {retry_at:%H:%M:%S} UTC (attempt {env.teardown_attempts + 1})"
    except Exception as schedule_exc:  # no teardown deployment: the janitor retries
        retry = f"not rescheduled ({schedule_exc}); the janitor will retry"
    logger.error("teardown of %s failed; %s", name, retry)
    refresh_environment_table(ledger)
    say(env, "teardown-failed", detail=f"{env.error}\n{retry}")


def record_destroyed(
    name: str, claimed_at: datetime, reason: str, deleted: list[str], ledger: EnvironmentLedger
) -> str:
    """Mark the entry destroyed if the claim is still ours ("destroyed"); else leave it
    to the run that took over ("superseded")."""
    logger = get_run_logger()

    def destroyed(e: Environment) -> tuple[Environment, bool]:
        if not still_ours(e, claimed_at):
            return e, False
        e.state = EnvironmentState.destroyed
        e.destroyed_at = utcnow()
        e.error = None
        e.teardown_run_id = None
        return e, True

    env, done = ledger.update(name, destroyed)
    if not done:
        # Reopened (a late apply) or taken over: the entry's new owner finishes the job.
        logger.warning("%s is now %s: leaving it to the run that took over", name, env.state.value)
        return "superseded"
    logger.info("%s destroyed (%s)", name, ", ".join(deleted) or "no Prefect objects")
    refresh_environment_table(ledger)
    say(env, "destroyed", detail=f"reason: {reason}")
    return "destroyed"


@task(cache_policy=NO_CACHE)
def delete_prefect_objects(env: Environment, keep_run: str | None = None) -> list[str]:
    """Delete the deployments, not-yet-started runs and variables made for ``env``;
    anything already gone counts as deleted. Runs that started stay: they are history.
    Returns what was deleted."""
    deleted: list[str] = []
    with get_client(sync_client=True) as client:
        for deployment_id in env.objects.deployments:
            try:
                client.delete_deployment(UUID(deployment_id))
            except ObjectNotFound:
                pass
            deleted.append(f"deployment {deployment_id}")
        for run_id in env.objects.flow_runs:
            if run_id != keep_run and delete_if_scheduled(client, run_id) != STARTED:
                deleted.append(f"flow run {run_id}")
        for variable in env.objects.variables:
            try:
                client.delete_variable_by_name(variable)
            except ObjectNotFound:
                pass
            deleted.append(f"variable {variable}")
    return deleted
