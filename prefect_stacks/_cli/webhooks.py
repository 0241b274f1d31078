"""``prefect-stacks webhooks serve``: run the webhook receiver (uvicorn) against the
Prefect server in ``PREFECT_API_URL``. Put it behind a TLS-terminating reverse proxy."""

from __future__ import annotations

import logging

import typer

from prefect_stacks._cli import command_group
from prefect_stacks._cli.errors import user_errors
from prefect_stacks.webhooks.body import BODY_TIMEOUT_SECONDS

webhooks_app = command_group(
    "webhooks",
    "The webhook receiver: GitHub, GitLab, registry and signed generic deliveries.",
)

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@webhooks_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8787, min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option(
        "info", help=f"Log level: {', '.join(LOG_LEVELS)}.", case_sensitive=False
    ),
    body_timeout: float = typer.Option(
        BODY_TIMEOUT_SECONDS,
        min=0.1,
        max=3600,
        help="Seconds a sender has to send the whole body; slower ones are answered 408.",
    ),
) -> None:
    """Receive webhooks at POST /hooks/<WebhookSource block name> and emit the same events
    the watchers emit (GET /healthz answers 200)."""
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(
            f"expected one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    with user_errors():
        import uvicorn

        from prefect_stacks.webhooks.app import create_app

        receiver_log = logging.getLogger("prefect_stacks.webhooks")
        if not receiver_log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            receiver_log.addHandler(handler)
            receiver_log.propagate = False
        receiver_log.setLevel(level.upper())
        typer.echo(
            f"webhook receiver on http://{host}:{port}/hooks/<source> (TLS: put a proxy in front)"
        )
        uvicorn.run(
            create_app(body_timeout_seconds=body_timeout),
            host=host,
            port=port,
            log_level=level,
            access_log=False,  # the receiver logs one line per request itself
            server_header=False,
        )
