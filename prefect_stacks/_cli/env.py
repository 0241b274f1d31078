"""``prefect-stacks env list|show|extend|keep|destroy``: the environment ledger from a
terminal or a CI job (talks to the server in ``PREFECT_API_URL``)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from prefect_stacks import environments as envs
from prefect_stacks._cli import app
from prefect_stacks._cli._common import user_errors as _user_errors

env_app = typer.Typer(
    name="env",
    no_args_is_help=True,
    help="List and manage environments (demo-*, PR_*, ...) in the ledger.",
)
app.add_typer(env_app, name="env")


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
            envs.format_duration(e.expires_in(now)),
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
def destroy(name: str) -> None:
    """Tear the environment down now (a run of the teardown deployment)."""
    with _user_errors():
        run_id = envs.destroy(name)
    typer.echo(f"teardown of {name} started: flow run {run_id}")
