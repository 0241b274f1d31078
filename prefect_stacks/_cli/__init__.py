"""The `prefect-stacks` command line (typer).

Commands live in one module per topic under ``prefect_stacks._cli`` and register
themselves on :data:`app` when imported below.
"""

import faulthandler
import signal

import typer

# `kill -USR1 <pid>` prints every thread's stack to stderr: where a command that seems
# hung (in CI, say) really is.
faulthandler.register(signal.SIGUSR1, all_threads=True)
# Ctrl-C must reach the commands that wait (`trigger --wait`, `env ... --wait`), even
# when the parent process left SIGINT ignored or blocked for its children (the e2e suite
# did, after the `up` tests): Python keeps an inherited SIG_IGN, and a blocked signal is
# never delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

app = typer.Typer(
    name="prefect-stacks",
    no_args_is_help=True,
    add_completion=False,
    help="Terraform stacks and platform jobs as Prefect flows.",
)


def command_group(name: str, help: str) -> typer.Typer:
    """A ``prefect-stacks <name> ...`` group of commands, registered on :data:`app`."""
    group = typer.Typer(name=name, no_args_is_help=True, help=help)
    app.add_typer(group, name=name)
    return group


from prefect_stacks._cli import automations as _automations  # noqa: E402,F401
from prefect_stacks._cli import blocks as _blocks  # noqa: E402,F401  (blocks upgrade)
from prefect_stacks._cli import env as _env  # noqa: E402,F401  (registers env ...)
from prefect_stacks._cli import trigger as _trigger  # noqa: E402,F401  (registers trigger)
from prefect_stacks._cli import up as _up  # noqa: E402,F401  (registers up/down/status)
from prefect_stacks._cli import webhooks as _webhooks  # noqa: E402,F401  (webhooks serve)

__all__ = ["app", "command_group"]
