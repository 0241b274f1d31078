"""What every `prefect-stacks` command that talks to a Prefect server shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from prefect.settings import PREFECT_API_URL

from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError


@contextmanager
def user_errors() -> Iterator[None]:
    """Refuse to run without ``PREFECT_API_URL`` (Prefect's client would silently start a
    throwaway server of its own, which has none of the user's deployments or ledger), and
    report a prefect-stacks error as the user's to fix: its message, exit code 1, no
    traceback."""
    try:
        if not PREFECT_API_URL.value():
            raise ConfigurationError(
                "PREFECT_API_URL is not set, so there is no server to talk to: point it at "
                "your Prefect server's API, e.g. http://127.0.0.1:4200/api (after "
                "`prefect-stacks up`: `. .prefect-stacks/env.sh`; on Prefect Cloud set "
                "PREFECT_API_KEY too)"
            )
        yield
    except PrefectStacksError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
