"""``safe-deploy``: a deploy wrapped in what a careful person does around it, and undoes
whatever happens.

The steps: silence the alerts the deploy will cause → back up the database → maintenance
on → the deploy (any deployment: ``kubernetes-deploy/default`` by any of its methods, or
``stack-apply/<stack>``), run as a child flow run → maintenance off → functional checks →
watch Alertmanager for the given alerts (silenced ones count: the silence is for people,
not for this check) → done, the silence expired. Or: roll back (the rollback deployment
you name, e.g. ``kubernetes-rollback/default``; and the backup restored when asked).

**Every compensation runs however the run ends.** Before each change its undo is
recorded on the server (:mod:`prefect_stacks.compensations`); the flow settles them in
its ``finally``, and Prefect's ``on_crashed`` / ``on_cancellation`` hooks, which the
worker runs after the flow's process is gone, settle what a killed or cancelled run
still owed: the silence expired, maintenance off.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from prefect.states import State

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.prefect_api import current_flow_run_creator
from prefect_stacks.approvals import go_ahead_refusal, request_go_ahead
from prefect_stacks.blocks.alertmanager import Alertmanager, create_silence
from prefect_stacks.blocks.ansible import AnsiblePlaybook, run_playbook
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.postgres import back_up, load_backup_storage, load_database
from prefect_stacks.blocks.postgres import restore_backup as restore_database_backup
from prefect_stacks.blocks.slack import slack_channel
from prefect_stacks.compensations import Compensations, settle_after_the_process
from prefect_stacks.deploys.checks import AlertWatch, FunctionalCheck, run_checks, watch_alerts
from prefect_stacks.exceptions import ConfigurationError, DeployFailed, PrefectStacksError

DEPLOY_TIMEOUT_SECONDS = 3600


def run_child(deployment: str, parameters: dict[str, Any], what: str) -> None:
    """Run a deployment as a child flow run (in the flow body, so the UI shows it under
    this run) and wait for it; anything but Completed is a :class:`DeployFailed` naming
    its state and message."""
    child = run_deployment(
        deployment, parameters=parameters, timeout=DEPLOY_TIMEOUT_SECONDS, as_subflow=True
    )
    state = child.state
    if state is None or not state.is_completed():
        name = state.name if state else "no state"
        said = f": {state.message}" if state and state.message else ""
        raise DeployFailed(f"{what} {deployment} ended {name}{said}", stage="rollout")
    get_run_logger().info("%s %s completed (run %s)", what, deployment, child.name)


def _check_deployment(name: str, field: str) -> str:
    if name.count("/") != 1 or not all(name.split("/")):
        raise ConfigurationError(f"{field}: {name!r} is not a deployment name flow/deployment")
    return name


@flow(
    name="safe-deploy",
    flow_run_name="safe-deploy-{deployment}",
    description="Silence, back up, maintenance on, deploy, maintenance off, check, watch; "
    "roll back on failure; the silence and maintenance are undone however the run ends.",
    on_crashed=[settle_after_the_process],
    on_cancellation=[settle_after_the_process],
)
@fails_cleanly
def safe_deploy(
    deployment: str,
    parameters: dict[str, Any] | None = None,
    silence: dict[str, str] | list[str] | None = None,
    silence_minutes: float = 60,
    alertmanager: str = "default",
    backup_database: str = "",
    backup_storage: str = "",
    maintenance: str = "",
    maintenance_limit: str = "",
    checks: list[FunctionalCheck] | None = None,
    watch: dict[str, str] | list[str] | None = None,
    watch_seconds: float = 300,
    watch_poll_seconds: float = 15,
    rollback_deployment: str = "",
    rollback_parameters: dict[str, Any] | None = None,
    restore_backup: bool = False,
    require_approval: bool = False,
    approval_timeout: int = 3600,
    slack: str = "",
) -> dict[str, Any] | State:
    """Deploy with a safety net.

    Args:
        deployment: What deploys, e.g. `kubernetes-deploy/default` or `stack-apply/shop`.
        parameters: Its parameters (image, cluster, workload, method ...).
        silence: Alerts to silence in Alertmanager while this runs, e.g. {"service": "shop"}.
        silence_minutes: The silence's own end, should this run be lost entirely.
        alertmanager: The Alertmanager block (silence and watch).
        backup_database: A Postgres Database block to back up first; empty: none.
        backup_storage: The file-system block the backup goes to.
        maintenance: An Ansible Playbook block: maintenance on during the deploy; empty: none.
        maintenance_limit: Only these hosts are put in maintenance.
        checks: Functional checks after the deploy (HTTP status / a command).
        watch: Alerts that must not fire for watch_seconds after the checks.
        watch_seconds: How long to watch.
        watch_poll_seconds: How often to ask Alertmanager while watching.
        rollback_deployment: What rolls back, e.g. `kubernetes-rollback/default`; empty: none.
        rollback_parameters: Its parameters.
        restore_backup: On a rollback, also put the database back as the backup has it.
        require_approval: Pause before anything is done until someone approves in the UI.
        approval_timeout: Seconds to wait for that; then the run fails, nothing done.
        slack: A Slack Channel block told how it went.
    """
    _check_deployment(deployment, "deployment")
    if rollback_deployment:
        _check_deployment(rollback_deployment, "rollback_deployment")
    if backup_database and not backup_storage:
        raise ConfigurationError("backup_database needs backup_storage (a file-system block)")
    if restore_backup and not backup_database:
        raise ConfigurationError("restore_backup needs backup_database")
    channel = slack_channel(slack)
    if maintenance:  # every block named is there before anything is done
        load_block(AnsiblePlaybook, maintenance, create="create it (Blocks > Ansible Playbook)")
    if silence or watch:
        load_block(Alertmanager, alertmanager, create="create it (Blocks > Alertmanager)")
    database = load_database(backup_database) if backup_database else None
    storage = load_backup_storage(backup_storage) if backup_storage else None
    alert_watch = (
        AlertWatch(
            alertmanager=alertmanager,
            labels=watch,
            window_seconds=watch_seconds,
            poll_seconds=watch_poll_seconds,
            include_silenced=True,
        )
        if watch
        else None
    )
    log = get_run_logger()
    if require_approval:
        what = f"safe-deploy of {deployment}"
        answer = request_go_ahead(
            what,
            _plan_in_words(deployment, parameters, silence, backup_database, maintenance, watch),
            approval_timeout,
            key="approval-safe-deploy",
        )
        if refused := go_ahead_refusal(answer, what, approval_timeout, rerun="safe-deploy"):
            refused_state, message = refused
            return refused_state(message=message)
    owed = Compensations(str(flow_run.id))
    run_id = str(flow_run.id).replace("-", "")[:8]
    backup_path = ""
    try:
        if silence:
            who = current_flow_run_creator() or "prefect-stacks"
            made = create_silence(
                alertmanager, silence, silence_minutes, who, f"safe-deploy of {deployment}"
            )
            owed.owe(
                "expire-silence",
                f"expire silence {made['id']}",
                alertmanager=alertmanager,
                silence_id=made["id"],
            )
        if database is not None and storage is not None:
            backup_path = back_up(database, storage, "safe-deploy")
        if maintenance:
            owed.owe(
                "maintenance-off",
                "maintenance off",
                playbook=maintenance,
                limit=maintenance_limit,
            )
            run_playbook(maintenance, {"maintenance_state": "on"}, limit=maintenance_limit)
        try:
            run_child(deployment, parameters or {}, "deploy")
        finally:
            if maintenance:
                _maintenance_off(maintenance, maintenance_limit, owed)
        if checks:
            run_checks(checks)
        if alert_watch is not None:
            watch_alerts(alert_watch)
    except DeployFailed as exc:
        log.error("deploy failed (%s): rolling back", exc)
        rolled = _roll_back(rollback_deployment, rollback_parameters)
        if restore_backup and database is not None and storage is not None:
            rolled.append(restore_database_backup(database, storage, backup_path, run_id))
        text = f":rotating_light: safe-deploy of {deployment} failed: {exc}. " + (
            "; ".join(rolled) or "nothing to roll back with (no rollback_deployment)"
        )
        if channel:
            channel.post_or_warn(text)
        raise DeployFailed(text.split(" ", 1)[1], stage=exc.stage) from None
    finally:
        failures = owed.settle(log)
        if failures:
            log.error("could not undo: %s", "; ".join(failures))
    if failures:
        raise PrefectStacksError(f"deployed, but could not undo: {'; '.join(failures)}")
    text = f":white_check_mark: safe-deploy of {deployment} done" + (
        f" (backup {backup_path})" if backup_path else ""
    )
    log.info("%s", text)
    if channel:
        channel.post_or_warn(text)
    return {"deployment": deployment, "backup": backup_path or None}


def _maintenance_off(playbook: str, limit: str, owed: Compensations) -> None:
    """Maintenance off as soon as the deploy ends. A failure here must not hide how the
    deploy went (nor stop its rollback): it is logged, the undo stays owed, and the
    run's end settles it again."""
    try:
        run_playbook(playbook, {"maintenance_state": "off"}, limit=limit)
    except PrefectStacksError as exc:
        get_run_logger().error("maintenance off failed (tried again at the end): %s", exc)
        return
    owed.forget("maintenance-off")


def _roll_back(deployment: str, parameters: dict[str, Any] | None) -> list[str]:
    if not deployment:
        return []
    try:
        run_child(deployment, parameters or {}, "rollback")
    except DeployFailed as exc:
        return [f"the rollback failed too: {exc}"]
    return [f"rolled back by {deployment}"]


def _plan_in_words(
    deployment: str,
    parameters: dict[str, Any] | None,
    silence: dict[str, str] | list[str] | None,
    backup: str,
    maintenance: str,
    watch: dict[str, str] | list[str] | None,
) -> str:
    """What the run will do, for the approval form."""
    steps = [f"silence {silence}" if silence else "", f"back up `{backup}`" if backup else ""]
    steps += [f"maintenance on (`{maintenance}`)" if maintenance else ""]
    steps += [f"run `{deployment}` with `{parameters or {}}`"]
    steps += ["maintenance off" if maintenance else "", f"watch {watch}" if watch else ""]
    return "### safe-deploy\n\n" + "\n".join(f"1. {s}" for s in steps if s)
