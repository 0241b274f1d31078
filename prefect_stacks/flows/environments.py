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

The protocol behind them is :mod:`prefect_stacks.environments`; these flows compose it.
"""

import secrets
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from pydantic import Field

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.parameters import NO_TEXT, NO_VARIABLES, Text, Variables
from prefect_stacks._internal.prefect_api import current_flow_run_id
from prefect_stacks.blocks.terraform import artifact_key, load_stack
from prefect_stacks.environments import janitor
from prefect_stacks.environments.deploy_steps import apply_stack
from prefect_stacks.environments.ledger import EnvironmentLedger, live_names_hint
from prefect_stacks.environments.lifecycle import (
    DEFAULT_STALE_AFTER,
    TEARDOWN_DEPLOYMENT,
    check_teardown_deployment,
    finish_deploy,
    schedule_teardown,
)
from prefect_stacks.environments.messages import publish_environment_table, say, slack_channel
from prefect_stacks.environments.models import (
    TTL,
    Environment,
    EnvironmentState,
    format_duration,
    parse_ttl,
    utcnow,
    validate_name,
)
from prefect_stacks.environments.teardown import teardown
from prefect_stacks.exceptions import EnvironmentNotFound, UnknownEnvironment

Seconds = Annotated[int, Field(ge=0)]


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
    slack_channel(slack_block)
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
        url = apply_stack(block, name)
    except BaseException as exc:
        try:
            finish_deploy(name, ledger, teardown_deployment, exc=exc)
        except Exception as record_exc:  # the apply's error matters more
            logger.error("could not record the failure of %s: %s", name, record_exc)
        raise
    env = finish_deploy(name, ledger, teardown_deployment, url=url)
    if env.state != EnvironmentState.ready:
        return {"name": name, "url": env.url, "state": env.state.value}
    if env.url:
        create_link_artifact(
            key=artifact_key("env", name),
            link=env.url,
            link_text=name,
            description=f"{name}: expires {env.expires_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    say(env, "created")
    logger.info("%s is ready at %s; expires in %s", name, env.url, format_duration(ttl))
    return {"name": name, "url": env.url, "expires_at": env.expires_at.isoformat()}


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
        raise UnknownEnvironment(f"{exc} {live_names_hint()}") from None


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
    work = janitor.find_work(
        entries,
        utcnow(),
        warn_before_seconds=warn_before_seconds,
        stale_after_seconds=stale_after_seconds,
        retention_days=retention_days,
    )
    logger.info(
        "%d entries (%d live): %d to tear down, %d to warn, %d to prune%s",
        len(entries),
        sum(e.is_live for e in entries),
        len(work.teardown),
        len(work.warn),
        len(work.prune),
        " (dry run: nothing done)" if dry_run else "",
    )
    if not dry_run:
        janitor.warn_expiring(work, ledger)
        janitor.tear_down(work, ledger, stale_after_seconds)
        janitor.prune(work, ledger)
    publish_environment_table(ledger.list())
    return work.report()
