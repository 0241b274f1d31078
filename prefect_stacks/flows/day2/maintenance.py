"""``maintenance-mode``: one click puts every web host in maintenance (or takes it out),
then checks the pages and tells Slack.

The steps: run the ``AnsiblePlaybook`` block with ``maintenance_state`` on or off (each
task's result in the log as it happens, the per-host recap as an artifact) → check that
each URL given answers as it should now (503 in maintenance, 200 out of it) → tell Slack
which hosts changed. A failed or unreachable host fails the run and is named, in the log,
the recap and the Slack message; the hosts that did switch are said too.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.states import State

from prefect_stacks.approvals import go_ahead_refusal, request_go_ahead
from prefect_stacks.blocks.ansible import PlaybookResult, run_playbook
from prefect_stacks.blocks.slack import slack_channel
from prefect_stacks.deploys.checks import HttpCheck, run_checks
from prefect_stacks.exceptions import AnsibleError, DeployFailed, PrefectStacksError

PAGE_CHECK_SECONDS = 15.0


@task(name="check-pages")
def check_pages(urls: list[str], expect_status: int) -> None:
    """Each URL must answer ``expect_status`` (retried for a few seconds: a load balancer
    may take a moment to see the page)."""
    checks = [
        HttpCheck(url=url, expect_status=expect_status, within_seconds=PAGE_CHECK_SECONDS)
        for url in urls
    ]
    try:
        run_checks(checks)
    except DeployFailed as exc:
        raise PrefectStacksError(
            f"the playbook ran, but a page does not answer as it should: {exc}; check that "
            "the host's nginx has the maintenance snippet (docs/day2.md)"
        ) from None


def _summary(state: str, result: PlaybookResult | None, error: AnsibleError | None) -> str:
    hosts = result.hosts if result else sorted(error.recap if error else {})
    changed = result.hosts_with("changed") if result else []
    if error is None:
        verb = "would be" if result and result.check_mode else "is"
        return (
            f"Maintenance mode {verb} *{state.upper()}* on {len(hosts)} host(s): "
            f"{', '.join(hosts) or 'none'}"
            + (f" (changed: {', '.join(changed)})" if changed else " (nothing to change)")
        )
    bad = sorted({*error.failed_hosts, *error.unreachable_hosts})
    good = [h for h in hosts if h not in bad]
    return (
        f":warning: Maintenance mode *{state.upper()}* failed on {', '.join(bad) or 'the play'}"
        + (f"; switched on the others: {', '.join(good)}" if good else "")
        + f". {error}"
    )


@flow(
    name="maintenance-mode",
    description="Put the web hosts in maintenance mode (a 503 maintenance page) or take them "
    "out, with Ansible, then check the pages and tell Slack.",
)
def maintenance_mode(
    state: Literal["on", "off"],
    playbook: str = "maintenance",
    message: str = "",
    reason: str = "",
    limit: str = "",
    check_mode: bool = False,
    check_urls: list[str] | None = None,
    require_approval: bool = False,
    approval_timeout: int = 3600,
    slack: str = "",
) -> dict[str, object] | State:
    """Switch maintenance mode on or off.

    Args:
        state: `on` shows the maintenance page (HTTP 503) on every host; `off` removes it.
        playbook: Name of the Ansible Playbook block (inventory, SSH key, vault password).
        message: The page's headline (empty: the playbook's default).
        reason: A line under it, and in the Slack message (e.g. "database upgrade").
        limit: Only these hosts (an Ansible pattern, e.g. `web-1,web-2`); empty: all.
        check_mode: Only report what would change (Ansible's --check); nothing is switched.
        check_urls: Pages that must answer 503 (on) or 200 (off) afterwards.
        require_approval: Pause until someone approves in the UI (production hosts).
        approval_timeout: Seconds to wait for that; then the run fails, nothing switched.
        slack: Name of a Slack Channel block to tell; empty: none.
    """
    channel = slack_channel(slack)
    extra_vars = {"maintenance_state": state, "maintenance_reason": reason}
    if message:
        extra_vars["maintenance_message"] = message
    if require_approval and not check_mode:
        what = f"maintenance {state} (playbook {playbook}{', limit ' + limit if limit else ''})"
        answer = request_go_ahead(
            what,
            f"### Maintenance mode *{state.upper()}*\n\nAnsible Playbook block `{playbook}`, "
            f"hosts: `{limit or 'all'}`. Reason: {reason or '-'}",
            approval_timeout,
            key=f"approval-maintenance-{state}",
        )
        if refused := go_ahead_refusal(answer, what, approval_timeout, rerun="maintenance-mode"):
            refused_state, message = refused
            return refused_state(message=message)
    result: PlaybookResult | None = None
    try:
        result = run_playbook(playbook, extra_vars=extra_vars, limit=limit, check_mode=check_mode)
    except AnsibleError as exc:
        if channel:
            channel.post_or_warn(_summary(state, None, exc))
        raise
    if check_urls and not check_mode:
        check_pages(check_urls, 503 if state == "on" else 200)
    summary = _summary(state, result, None) + (f" ({reason})" if reason else "")
    get_run_logger().info("%s", summary.replace("*", ""))
    if channel:
        channel.post_or_warn(summary)
    return {"state": state, "hosts": result.hosts, "changed": result.hosts_with("changed")}
