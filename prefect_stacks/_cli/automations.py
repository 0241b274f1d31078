"""``prefect-stacks automations apply``: the automations of ``deployments/automations``
(or another directory) onto the server in ``PREFECT_API_URL``, create-or-update by name,
each template checked against the event vocabulary first."""

from __future__ import annotations

from pathlib import Path

import typer

from prefect_stacks._cli import command_group
from prefect_stacks._cli.errors import user_errors
from prefect_stacks.events import automations as autos

automations_app = command_group(
    "automations",
    "Apply automations declared as code (deployments/automations/*.yaml).",
)


@automations_app.command("apply")
def apply(
    directory: Path = typer.Argument(
        None, help="Directory of *.yaml files (default: the package's deployments/automations)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Only check the files and templates; change nothing."
    ),
) -> None:
    """Create or update each automation by name; a rerun changes nothing."""
    with user_errors():
        report = autos.apply(directory, check_only=check)
    if check:
        typer.echo(f"ok: {len(report['unchanged'])} automation(s) valid")
        return
    for what in ("created", "updated", "unchanged"):
        for name in report[what]:
            typer.echo(f"{what:9}  {name}")
