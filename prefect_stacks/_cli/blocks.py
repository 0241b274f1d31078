"""``prefect-stacks blocks upgrade``: move saved block documents to the current schemas.

A block document keeps the schema it was saved with, and the server masks its secrets by
that schema's ``secret_fields``. Documents saved by prefect-stacks 0.1.0 list a
``dict[str, SecretStr]`` field (``env``, ``secret_variables``, ``secret_backend_config``)
in a way that masks nothing; upgrading points them at today's schema, data unchanged.
"""

from __future__ import annotations

import typer

from prefect_stacks._cli import command_group
from prefect_stacks._cli.errors import user_errors
from prefect_stacks.blocks.base import upgrade_block_documents

blocks_app = command_group(
    "blocks",
    "Maintain the saved prefect-stacks block documents.",
)


@blocks_app.command("upgrade")
def upgrade(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would change."),
) -> None:
    """Register the current block schemas and point every saved prefect-stacks block
    document at them, so their secrets are masked by today's rules (data unchanged)."""
    with user_errors():
        report = upgrade_block_documents(dry_run=dry_run)
    verb = "would upgrade" if dry_run else "upgraded"
    for label in report["upgraded"]:
        typer.echo(f"{verb:13}  {label}")
    for label in report["invalid"]:
        typer.echo(f"{'left as is':13}  {label} (does not validate; fix and save it)")
    typer.echo(
        f"{len(report['upgraded'])} {verb}, {len(report['current'])} already current, "
        f"{len(report['invalid'])} left as is"
    )
    if report["invalid"]:
        raise typer.Exit(1)
