"""Environments with a lifecycle: demo environments that destroy themselves after a TTL,
their teardown, and a janitor that never leaks one.

* ``demo-environment``: record the entry, schedule its teardown *first*, then apply the
  stack into workspace ``demo-<id>``, then say so (Slack, link artifact).
* ``environment-teardown``: terraform destroy, delete the workspace, delete every Prefect
  object made for it, mark the entry destroyed. "Already gone" is success; a failure marks
  the entry failed, alerts, and the run retries with backoff. The entry is never removed
  while infrastructure may remain.
* ``environment-janitor`` (every 5 minutes): tears down expired entries whose teardown did
  not happen (a missed run, a killed worker, a server that was down), warns before expiry,
  refreshes the table of live environments, and acts on nothing when the listing failed.
"""

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from prefect import flow, get_client, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound
from pydantic import Field

from prefect_stacks import events
from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.parameters import NO_TEXT, NO_VARIABLES, Text, Variables
from prefect_stacks._internal.prefect_api import (
    STARTED,
    current_flow_run_id,
    current_flow_run_url,
    delete_if_scheduled,
)
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import (
    artifact_key,
    load_stack,
    terraform_apply,
    terraform_delete_workspace,
    terraform_destroy,
    terraform_init,
    terraform_outputs,
    terraform_plan,
)
from prefect_stacks.environments import (
    TEARDOWN_DEPLOYMENT,
    TTL,
    Environment,
    EnvironmentLedger,
    EnvironmentState,
    check_teardown_deployment,
    expiry_text,
    format_duration,
    parse_ttl,
    schedule_teardown,
    utcnow,
    validate_name,
)
from prefect_stacks.environments.messages import notify_environment
from prefect_stacks.exceptions import (
    ConfigurationError,
    EnvironmentNotFound,
    LedgerError,
    UnknownEnvironment,
)

DEFAULT_STALE_AFTER = 900


def _slack(name: str | None) -> SlackChannel | None:
    if not name:
        return None
    return load_block(
        SlackChannel, name, create="create it (Blocks > Slack Channel) or leave slack_block empty"
    )


def _say(env: Environment, event: str, **extra: Any) -> None:
    """Tell about an environment event: a ``stacks.environment.<event>`` Prefect event
    (for automations) and a Slack message. Neither outage fails the run."""
    try:
        events.emit(
            [
                events.environment_event(
                    event,
                    name=env.name,
                    kind=env.kind,
                    state=env.state.value,
                    url=env.url,
                    owner=env.owner,
                    expires_at=env.expires_at,
                    version=str(env.revision),
                    flow_run_id=current_flow_run_id(),
                )
            ]
        )
    except Exception as exc:  # noqa: BLE001 - best effort, like Slack
        get_run_logger().warning("could not emit stacks.environment.%s: %s", event, exc)
    slack = None
    try:
        slack = _slack(env.slack_block)
    except ConfigurationError as exc:
        get_run_logger().warning("%s", exc)
    ttl = None
    if env.expires_at is not None:
        ttl = int((env.expires_at - env.created_at).total_seconds())
    notify_environment(
        slack,
        event,
        name=env.name,
        url=env.url,
        owner=env.owner,
        expires_at=env.expires_at,
        ttl_seconds=ttl,
        run_url=current_flow_run_url(),
        **extra,
    )


# --------------------------------------------------------------------------- demo


@flow(name="demo-environment", flow_run_name="demo-{stack}")
@fails_cleanly
def demo_environment(
    stack: str = "local-webapp",
    ttl_seconds: TTL = "1h",
    name: Text = NO_TEXT,
    owner: Text = NO_TEXT,
    variables: Variables = NO_VARIABLES,
    slack_block: Text = NO_TEXT,
) -> dict[str, Any]:
    """Stand a stack up as a demo environment that destroys itself after a TTL.

    Args:
        stack: Name of the TerraformStack block to apply (Blocks > Terraform Stack).
        ttl_seconds: Time to live: a duration such as 90m, 2h or 1d, or seconds (3600).
            Later, `prefect-stacks env extend <name> 2h` or `env keep <name>`.
        name: Environment (and workspace) name; empty: demo-<6 hex>.
        owner: Who the environment is for; shown in the ledger and on Slack.
        variables: Stack variables for this environment, merged over the block's.
        slack_block: Name of a SlackChannel block to tell about it; empty: no Slack. A
            block name (not a picker), as the REST API and `prefect-stacks trigger` pass it.
    """
    logger = get_run_logger()
    # Every check before the first change: bad input changes nothing.
    ttl = parse_ttl(ttl_seconds)
    name = validate_name(name or f"demo-{secrets.token_hex(3)}")
    variables = dict(variables or {})
    block = load_stack(stack, variables)
    _slack(slack_block)
    teardown_deployment = TEARDOWN_DEPLOYMENT  # read here: tests point it elsewhere
    check_teardown_deployment(teardown_deployment)

    ledger = EnvironmentLedger()
    now = utcnow()
    env = ledger.create(
        Environment(
            name=name,
            kind="demo",
            owner=owner or None,
            stack=stack,
            workspace=name,
            variables=variables,
            created_at=now,
            expires_at=now + ttl,
            slack_block=slack_block or None,
            provisioning_run_id=current_flow_run_id(),
            provisioning_started_at=now,
        )
    )
    # The teardown is scheduled before anything is built: whatever happens next, the
    # environment is destroyed at expiry (and the janitor covers a missed run).
    schedule_teardown(name, env.expires_at, deployment=teardown_deployment, ledger=ledger)
    logger.info("environment %s recorded; teardown scheduled at %s", name, env.expires_at)

    try:
        with terraform_init(block, name) as workdir:
            plan = terraform_plan(workdir)
            terraform_apply(workdir, plan)
            outputs = terraform_outputs(workdir)
    except BaseException as exc:
        try:
            finish_deploy(name, ledger, teardown_deployment, exc=exc)
        except Exception as record_exc:  # the apply's error matters more
            logger.error("could not record the failure of %s: %s", name, record_exc)
        raise
    url = outputs.values.get("url")
    env = finish_deploy(
        name, ledger, teardown_deployment, url=url if isinstance(url, str) else None
    )
    if env.state != EnvironmentState.ready:
        return {"name": name, "url": env.url, "state": env.state.value}
    if env.url:
        create_link_artifact(
            key=artifact_key("env", name),
            link=env.url,
            link_text=name,
            description=f"{name}: expires {env.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    _say(env, "created")
    logger.info("%s is ready at %s; expires in %s", name, env.url, format_duration(ttl))
    return {"name": name, "url": env.url, "expires_at": env.expires_at.isoformat()}


def start_deploy(name: str, ledger: EnvironmentLedger) -> Environment:
    """Record that this flow run is applying ``name``: teardowns wait for it."""

    def change(e: Environment) -> None:
        e.provisioning_run_id = current_flow_run_id()
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
    overtaken: list[str] = []

    def change(e: Environment) -> None:
        e.provisioning_run_id = None
        e.provisioning_started_at = None
        torn_down = e.state in (EnvironmentState.destroying, EnvironmentState.destroyed) or (
            e.state == EnvironmentState.failed and e.teardown_started_at is not None
        )
        if not torn_down:
            if exc is None:
                e.state, e.error = EnvironmentState.ready, None
                e.url = url or e.url
                e.deployed_version = version or e.deployed_version
            elif e.state == EnvironmentState.provisioning:
                _mark_failed(e, exc)
            else:
                e.error = f"deploy of {version or 'a new version'} failed: {exc}"[:1500]
            return
        overtaken.append(e.state.value)
        e.state = EnvironmentState.failed
        e.destroyed_at = None
        e.error = (
            f"a teardown ran ({overtaken[0]}) while the stack was being applied: what the "
            "apply built may remain; destroying again"
        )

    env = ledger.update(name, change)
    if overtaken:
        get_run_logger().warning(
            "%s was %s while it was being applied; scheduling a teardown now",
            name,
            overtaken[0],
        )
        schedule_teardown(
            name, utcnow(), deployment=teardown_deployment, reason="requested", ledger=ledger
        )
    refresh_environment_table(ledger)
    return env


def _mark_failed(env: Environment, exc: BaseException, count_attempt: bool = False) -> None:
    env.state = EnvironmentState.failed
    env.error = f"{type(exc).__name__}: {exc}"[:1500]
    if count_attempt:
        env.teardown_attempts += 1


def retry_delay(attempts: int) -> int:
    """Backoff between teardown attempts: 30 s, 2 min, 8 min, 32 min, then hourly."""
    return min(30 * 4 ** max(attempts - 1, 0), 3600)


# --------------------------------------------------------------------------- teardown


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


def _run_finished(run_id: str | None) -> bool:
    """The flow run is over (or unknown to the server): it will not write again."""
    if not run_id:
        return True
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
    except (ObjectNotFound, ValueError):
        return True
    return run.state is not None and run.state.is_final()


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


def postpone_delay(env: Environment, now: datetime) -> int:
    """How long a teardown waits for provisioning: 10 s for two minutes, then 60 s."""
    started = env.provisioning_started_at or env.created_at
    return 10 if (now - started).total_seconds() < 120 else 60


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
    outcome: list[str] = []

    def claim(e: Environment) -> None:
        if teardown_in_progress(e, now, stale_after, run_id):
            outcome.append("in progress")
        elif provisioning_in_progress(e, now, stale_after):
            outcome.append("waiting for provisioning")
        elif e.state == EnvironmentState.destroyed:
            outcome.append("already destroyed")
        else:
            e.state = EnvironmentState.destroying
            e.teardown_started_at = now  # the claim: whoever overwrites it took over
            if run_id:
                e.teardown_run_id = run_id
            outcome.append("claimed")

    env = ledger.update(name, claim)
    if outcome[0] == "waiting for provisioning":
        if not reschedule:
            logger.info("%s is still being provisioned by %s", name, env.provisioning_run_id)
            return outcome[0]
        retry_at = utcnow() + timedelta(seconds=postpone_delay(env, now))
        schedule_teardown(
            name, retry_at, deployment=teardown_deployment, reason=reason, ledger=ledger
        )
        logger.info(
            "%s is still being provisioned by flow run %s; teardown rescheduled at %s",
            name,
            env.provisioning_run_id,
            f"{retry_at:%H:%M:%S} UTC",
        )
        return outcome[0]
    if outcome[0] != "claimed":
        logger.info("%s: %s (%s)", name, outcome[0], env.teardown_run_id)
        return outcome[0]

    def still_ours(e: Environment) -> bool:
        return e.state == EnvironmentState.destroying and e.teardown_started_at == now

    logger.info(
        "tearing down %s (%s): stack %s, workspace %s", name, reason, env.stack, env.workspace
    )
    try:
        block = load_stack(env.stack, env.variables)
        with terraform_init(block, env.workspace, create_workspace=False) as workdir:
            terraform_destroy(workdir)
            terraform_delete_workspace(workdir)
        deleted = delete_prefect_objects(env, keep_run=run_id)
    except BaseException as exc:
        ours: list[bool] = []
        error = exc

        def failed(e: Environment) -> None:
            if still_ours(e):
                ours.append(True)
                _mark_failed(e, error, count_attempt=True)

        env = ledger.update(name, failed)
        if not ours:
            logger.error("teardown of %s failed, and another run has taken it over", name)
            raise
        delay = retry_delay(env.teardown_attempts)
        retry_at = utcnow() + timedelta(seconds=delay)
        try:
            schedule_teardown(
                name, retry_at, deployment=teardown_deployment, reason=reason, ledger=ledger
            )
            retry = f"retrying at {retry_at:%H:%M:%S} UTC (attempt {env.teardown_attempts + 1})"
        except Exception as schedule_exc:  # no teardown deployment: the janitor retries
            retry = f"not rescheduled ({schedule_exc}); the janitor will retry"
        logger.error("teardown of %s failed; %s", name, retry)
        refresh_environment_table(ledger)
        _say(env, "teardown-failed", detail=f"{env.error}\n{retry}")
        raise
    done: list[bool] = []

    def destroyed(e: Environment) -> None:
        if still_ours(e):
            done.append(True)
            e.state = EnvironmentState.destroyed
            e.destroyed_at = utcnow()
            e.error = None
            e.teardown_run_id = None

    env = ledger.update(name, destroyed)
    if not done:
        # Reopened (a late apply) or taken over: the entry's new owner finishes the job.
        logger.warning("%s is now %s: leaving it to the run that took over", name, env.state.value)
        return "superseded"
    logger.info("%s destroyed (%s)", name, ", ".join(deleted) or "no Prefect objects")
    refresh_environment_table(ledger)
    _say(env, "destroyed", detail=f"reason: {reason}")
    return "destroyed"


Seconds = Annotated[int, Field(ge=0)]


@flow(name="environment-teardown", flow_run_name="teardown-{name}")
@fails_cleanly
def environment_teardown(
    name: str,
    reason: Literal["expired", "requested"] = "expired",
    stale_after_seconds: Seconds = DEFAULT_STALE_AFTER,
) -> str:
    """Destroy an environment: its Terraform workspace, the Prefect objects made for it,
    then mark it destroyed. Safe to run twice. While the environment is still being
    provisioned, it waits (reschedules itself 10 s later) rather than race the apply.
    On failure the entry is marked failed, Slack is alerted and a new teardown run is
    scheduled with backoff (30 s, 2 min, 8 min ...); the janitor retries too.

    Args:
        name: Environment name, e.g. demo-7f3a or PR_42 (`prefect-stacks env list`).
        reason: `expired` (does nothing if the TTL was extended) or `requested`.
        stale_after_seconds: Take over another teardown of the same environment that
            started this long ago and never finished (its worker died).
    """
    try:
        return teardown(name, reason, stale_after=stale_after_seconds)
    except EnvironmentNotFound as exc:  # a typo in the run form: nothing was changed
        raise UnknownEnvironment(f"{exc} {_live_names()}") from None


def _live_names() -> str:
    try:
        names = sorted(e.name for e in EnvironmentLedger().list())
    except Exception:  # noqa: BLE001 - only decorates an error already being raised
        return ""
    if not names:
        return "(no environment is live)"
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"(live: {shown})"


# --------------------------------------------------------------------------- janitor


@flow(name="environment-janitor", flow_run_name="janitor")
@fails_cleanly
def environment_janitor(
    dry_run: bool = False,
    warn_before_seconds: Seconds = 600,
    stale_after_seconds: Seconds = DEFAULT_STALE_AFTER,
    retention_days: Annotated[int, Field(ge=0)] = 7,
) -> dict[str, list[str]]:
    """Tear down expired environments whose teardown did not happen, warn before expiry,
    and refresh the table of live environments.

    Args:
        dry_run: Only report what would be done.
        warn_before_seconds: Warn on Slack this long before an environment expires.
        stale_after_seconds: A teardown running longer than this is taken over.
        retention_days: Destroyed entries older than this are removed from the ledger.
    """
    logger = get_run_logger()
    ledger = EnvironmentLedger()
    # A listing that errors or is partial raises here: the janitor acts on nothing.
    entries = ledger.list(include_destroyed=True)
    now = utcnow()
    report: dict[str, list[str]] = {
        "teardown": [],
        "waiting": [],
        "warn": [],
        "prune": [],
        "failed": [],
    }
    takeover: set[str] = set()
    for env in entries:
        if env.is_live and env.is_expired(now):
            if teardown_in_progress(env, now, stale_after_seconds, None):
                continue
            report["teardown"].append(env.name)
        elif env.state == EnvironmentState.destroying and not teardown_in_progress(
            env, now, stale_after_seconds, None
        ):
            # A requested (or kept environment's) teardown whose run died: finish it.
            report["teardown"].append(env.name)
            takeover.add(env.name)
        elif (
            env.is_live
            and env.state != EnvironmentState.destroying
            and env.expires_at is not None
            and env.warned_at is None
            and env.expires_at - now <= timedelta(seconds=warn_before_seconds)
        ):
            report["warn"].append(env.name)
        elif (
            env.state == EnvironmentState.destroyed
            and env.destroyed_at is not None
            and now - env.destroyed_at > timedelta(days=retention_days)
        ):
            report["prune"].append(env.name)
    logger.info(
        "%d entries (%d live): %d to tear down, %d to warn, %d to prune%s",
        len(entries),
        sum(e.is_live for e in entries),
        len(report["teardown"]),
        len(report["warn"]),
        len(report["prune"]),
        " (dry run: nothing done)" if dry_run else "",
    )
    if not dry_run:
        for name in report["warn"]:
            env = ledger.update(name, lambda e: setattr(e, "warned_at", utcnow()))
            _say(env, "expiring")
        for name in report["teardown"]:
            try:
                outcome = teardown(
                    name,
                    "requested" if name in takeover else "expired",
                    stale_after=stale_after_seconds,
                    ledger=ledger,
                    reschedule=False,  # the next janitor pass looks again
                )
                if outcome == "waiting for provisioning":
                    report["waiting"].append(name)
            except Exception as exc:  # recorded on the entry; the next janitor run retries
                logger.error("teardown of %s failed: %s", name, exc)
                report["failed"].append(name)
        for name in report["prune"]:
            try:
                ledger.remove(name)
            except LedgerError as exc:
                logger.warning("%s", exc)
    publish_environment_table(ledger.list())
    return report


def refresh_environment_table(ledger: EnvironmentLedger | None = None) -> None:
    """Republish the ``environments`` table after a change of state (created, ready,
    failed, destroyed), so the UI's artifact is true between janitor runs. One ledger
    listing and one artifact; an outage is logged, never fails the run."""
    try:
        publish_environment_table((ledger or EnvironmentLedger()).list())
    except Exception as exc:  # noqa: BLE001 - the table is a view; the ledger is the truth
        get_run_logger().warning("could not refresh the environments table: %s", exc)


def publish_environment_table(entries: list[Environment]) -> None:
    """The ``environments`` table artifact: every live environment."""
    now = utcnow()
    rows = [
        {
            "name": e.name,
            "kind": e.kind,
            "state": e.state.value,
            "owner": e.owner or "",
            "age": format_duration(now - e.created_at),
            "expires in": expiry_text(e, now),
            "url": e.url or "",
        }
        for e in sorted(entries, key=lambda e: e.created_at)
    ]
    create_table_artifact(
        key="environments",
        table=rows or [{"name": "(none)", "state": "", "url": ""}],
        description=f"{len(rows)} live environment(s) at {now:%Y-%m-%d %H:%M:%S} UTC",
    )
