"""``prefect-stacks up`` / ``down`` / ``status``: the local platform (Prefect server,
process worker, blocks and deployments) on this machine. The work is done by
:mod:`prefect_stacks.local`; this module only parses options and talks to the user."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import typer

from prefect_stacks._cli import app
from prefect_stacks.exceptions import LocalPlatformError
from prefect_stacks.local import (
    DEFAULT_HOME,
    DEFAULT_HOST,
    DEFAULT_POOL,
    DEFAULT_PORT,
    LOCAL_WEBAPP,
    LocalConfig,
    LocalPlatform,
    UpResult,
    down,
    status,
)

HomeOption = typer.Option(
    DEFAULT_HOME,
    "--home",
    help="Directory for the server's SQLite database, Terraform state, logs and pid files.",
)
PortOption = typer.Option(DEFAULT_PORT, "--port", help="Port of the Prefect server.")
HostOption = typer.Option(DEFAULT_HOST, "--host", help="Address the Prefect server binds to.")


def _say(message: str) -> None:
    # The terminal may be gone (SIGHUP): stopping the children matters more.
    with contextlib.suppress(OSError, ValueError):
        typer.echo(message)


def _script(name: str) -> str:
    """How to call this virtualenv's script ``name`` from the current shell: plain
    ``name`` when that is what PATH finds, else its path (relative to the current
    directory if inside)."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == script.resolve():
        return name
    return _shell_path(script)


def _shell_path(path: Path) -> str:
    """``path`` for a shell in the current directory: relative if inside, quoted."""
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return shlex.quote(str(path))


def _next_steps(config: LocalConfig, result: UpResult, detach: bool) -> str:
    t = result.timings
    parts = [f"{k} {v:.1f} s" for k, v in t.items() if k != "total"]
    lines = [
        "",
        f"prefect-stacks is up in {t['total']:.1f} s ({', '.join(parts)}).",
        "",
        f"  UI           {config.ui_url}",
        f"  API          {config.api_url}",
        f"  server       {result.server.describe()}",
    ]
    if result.worker is not None:
        lines.append(f"  worker       {result.worker.describe()}, pool {config.pool!r}")
    else:
        lines.append(f"  worker       none (--no-worker): runs wait in pool {config.pool!r}")
    # Commands exactly as they run, in a shell of this directory: env.sh points the
    # bare `prefect` and `prefect-stacks` at this virtualenv and this server.
    env_sh = _shell_path(config.env_file)
    env_sh = env_sh if "/" in env_sh else f"./{env_sh}"  # `. env.sh` would search PATH
    lines += [
        f"  deployments  {', '.join(result.deployments)}",
        f"  state        {config.state_dir(LOCAL_WEBAPP)}",
        "",
        f"Try it (in another terminal, in {Path.cwd()}):",
        "",
        f"  . {env_sh}    # PREFECT_API_URL={config.api_url}, this virtualenv on PATH",
        f"  prefect deployment run 'stack-apply/{LOCAL_WEBAPP}' --watch",
        "  # the page's URL: the watch's 'stacks.stack.applied * local-webapp/default <url>'",
        "  # line, the run's last log line and its Artifacts tab (UI: Runs > the run)",
        f"  prefect deployment run 'stack-apply/{LOCAL_WEBAPP}' -p require_approval=true",
        "  # pauses after the plan: approve or reject it in the UI (Runs > the run > Resume)",
        f"  prefect deployment run 'stack-destroy/{LOCAL_WEBAPP}' --watch",
        "",
    ]
    if detach:
        lines.append(
            "Left running in the background; stop it with: "
            f"{_script('prefect-stacks')} down --home {_shell_path(config.home)}"
        )
    else:
        lines.append("Press Ctrl-C to stop the worker and the server.")
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def up(
    home: Path = HomeOption,
    port: int = PortOption,
    host: str = HostOption,
    pool: str = typer.Option(DEFAULT_POOL, "--pool", help="Name of the process work pool."),
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="Start (or reuse) a process worker for the pool."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="PREFECT_STACKS_DATABASE_URL",
        show_default=False,
        help="The server's database instead of SQLite in HOME, e.g. "
        "postgresql+asyncpg://prefect@db/prefect (Prefect's advice beyond a few "
        "concurrent runs). Give a password through the environment variable, not argv.",
    ),
    detach: bool = typer.Option(
        False,
        "--detach",
        help="Return once everything is up, leaving server and worker running "
        "(stop them with `prefect-stacks down`).",
    ),
) -> None:
    """Start (or reuse) a local Prefect server and process worker, register the blocks,
    save the `local-webapp` stack block and apply every deployment; then stay in the
    foreground until Ctrl-C, which stops the worker and then the server."""
    config = LocalConfig(home=home, host=host, port=port, pool=pool, database_url=database_url)
    platform = LocalPlatform(config, say=_say)
    _say(f"prefect-stacks: home {config.home}; logs in {config.server_log}, {config.worker_log}")
    # SIGINT (Ctrl-C, also when started in the background by a script, which ignores
    # it), SIGTERM and SIGHUP (the terminal closed) all stop the children in order.
    previous = {
        sig: signal.signal(sig, _raise_interrupt)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    code = 0
    interrupted = False
    try:
        result = platform.up(worker=worker)
        _say(_next_steps(config, result, detach))
        while not detach:
            time.sleep(1)
            problem = platform.check_children()
            if problem:
                _say(f"error: {problem}")
                code = 1
                break
    except KeyboardInterrupt:
        _say("\ninterrupted")
        interrupted = True
    except LocalPlatformError as exc:
        _say(f"error: {exc}")
        code = 1
    finally:
        if not detach or code or interrupted:
            # A second Ctrl-C must not cut the orderly stop short.
            signal.signal(signal.SIGINT, lambda *_: _say("stopping, please wait ..."))
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            done = platform.stop()
            if done:
                _say("stopped: " + "; ".join(done))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code or (interrupted and detach):
        raise typer.Exit(code or 130)


@app.command(name="down")
def down_command(home: Path = HomeOption) -> None:
    """Stop the worker and the server started from HOME (by `up --detach`, or by an
    `up` running elsewhere)."""
    config = LocalConfig(home=home)
    done = down(config, say=_say)
    _say("stopped: " + "; ".join(done) if done else f"nothing runs from {config.home}")


@app.command(name="status")
def status_command(home: Path = HomeOption, port: int = PortOption, host: str = HostOption) -> None:
    """Show what runs from HOME and whether the server on PORT is healthy."""
    info = status(LocalConfig(home=home, host=host, port=port))
    for key, value in info.items():
        _say(f"{key:11} {value if value is not None else '-'}")
    if not info["healthy"]:
        raise typer.Exit(1)
