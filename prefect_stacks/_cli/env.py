"""``prefect-stacks env list|show|extend|keep|destroy``: the environment ledger from a
terminal or a CI job (talks to the server in ``PREFECT_API_URL``)."""

from __future__ import annotations

import json
import time
from uuid import UUID

import typer
from prefect import get_client
from rich.console import Console
from rich.table import Table

from prefect_stacks import environments as envs
from prefect_stacks._cli import command_group
from prefect_stacks._cli.api import run_url
from prefect_stacks._cli.errors import user_errors as _user_errors
from prefect_stacks._cli.follow import (
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    follow,
    poll_interval_option,
    timeout_option,
)
from prefect_stacks.exceptions import ConfigurationError

env_app = command_group(
    "env",
    "List and manage environments (demo-*, PR_*, ...) in the ledger.",
)


def _console() -> Console:
    """Rich cuts a table to 80 columns when stdout is not a terminal (a pipe, a CI log):
    URLs would be cut. Only a terminal gets wrapped to its width."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 4096
    return console


@env_app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include destroyed environments."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Environments with their state, age, time to expiry and URL."""
    with _user_errors():
        entries = envs.EnvironmentLedger().list(include_destroyed=all_)
    entries.sort(key=lambda e: e.created_at)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    now = envs.utcnow()
    table = Table("name", "kind", "state", "age", "expires in", "url", box=None)
    for e in entries:
        table.add_row(
            e.name,
            e.kind,
            e.state.value,
            envs.format_duration(now - e.created_at),
            envs.expiry_text(e, now),
            e.url or "",
        )
    console = _console()
    console.print(table)
    console.print(f"{len(entries)} environment(s)")


@env_app.command("show")
def show(name: str) -> None:
    """Everything the ledger knows about one environment (JSON)."""
    with _user_errors():
        env = envs.EnvironmentLedger().get(name)
    typer.echo(json.dumps(env.model_dump(mode="json"), indent=2))


# ignore_unknown_options: "-5" is a (bad) duration to report as such, not an unknown
# option ("No such option: -5" would not say what is wrong).
@env_app.command("extend", context_settings={"ignore_unknown_options": True})
def extend(
    name: str,
    duration: str = typer.Argument(..., help="New time to live from now: 3600, 30m, 2h, 1d."),
) -> None:
    """Push the expiry to now + DURATION (the teardown is rescheduled)."""
    with _user_errors():
        env = envs.extend(name, envs.parse_duration(duration))
    typer.echo(f"{env.name} now expires at {env.expires_at:%Y-%m-%d %H:%M:%S} UTC")


@env_app.command("keep")
def keep(name: str) -> None:
    """Never expire (the scheduled teardown is cancelled)."""
    with _user_errors():
        env = envs.keep(name)
    typer.echo(f"{env.name} is kept: it no longer expires")


@env_app.command("destroy")
def destroy(
    name: str,
    wait: bool = typer.Option(
        False,
        "--wait",
        help="Follow the teardown (its logs) until the environment is destroyed; exit 0 "
        "destroyed, 1 the teardown failed, 4 --timeout exceeded.",
    ),
    timeout: float | None = timeout_option("the teardown"),
    poll_interval: float = poll_interval_option(),
) -> None:
    """Tear the environment down now (a run of the teardown deployment)."""
    with _user_errors():
        if timeout is not None and not wait:
            raise ConfigurationError("--timeout only applies with --wait")
        run_id = envs.destroy(name)
    typer.echo(f"teardown of {name} started: flow run {run_id}")
    if not wait:
        return
    try:
        with _user_errors():
            code = wait_for_teardown(name, run_id, timeout=timeout, poll_interval=poll_interval)
    except KeyboardInterrupt:
        typer.echo(
            f"\nstopped waiting: the teardown of {name} goes on on the server "
            f"(`prefect-stacks env show {name}`)"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)


def wait_for_teardown(
    name: str,
    run_id: str,
    *,
    timeout: float | None,
    poll_interval: float,
    clock=time.monotonic,
) -> int:
    """Follow teardown runs of ``name`` (as `trigger --wait` follows a run) until the
    entry is destroyed; returns the exit code. A teardown that finds the environment
    still being provisioned ends Completed and reschedules itself: the next run is
    followed too. A failed teardown (it schedules its own retry) exits 1."""
    deadline = None if timeout is None else clock() + timeout
    ledger = envs.EnvironmentLedger()
    followed: set[str] = set()
    while True:
        followed.add(run_id)
        remaining = None if deadline is None else max(deadline - clock(), 0)
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(UUID(run_id))
            code = follow(client, flow_run, timeout=remaining, poll_interval=poll_interval)
        env = ledger.get(name)
        if env.state == envs.EnvironmentState.destroyed:
            typer.echo(f"{name} is destroyed")
            return 0
        if code == EXIT_TIMEOUT:
            return code
        if code != 0:
            retry = (
                f"; a retry is scheduled: flow run {env.teardown_run_id}"
                if (env.teardown_run_id and env.teardown_run_id not in followed)
                else ""
            )
            typer.echo(
                f"the teardown of {name} did not succeed: {name} is {env.state.value}"
                f"{': ' + env.error if env.error else ''}{retry}",
                err=True,
            )
            return code
        nxt = env.teardown_run_id
        if not nxt or nxt in followed:
            typer.echo(
                f"the teardown run finished but {name} is {env.state.value}, with no newer "
                f"teardown run to follow: `prefect-stacks env show {name}` says why; "
                f"the run: {run_url(flow_run.id)}",
                err=True,
            )
            return 1
        typer.echo(f"{name} is {env.state.value}: following the next teardown run {nxt}")
        run_id = nxt
