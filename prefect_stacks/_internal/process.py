"""The one subprocess helper of prefect-stacks.

Every external command (terraform, git, docker, kubectl, ansible ...) runs through
:func:`run_process`:

* an argv list, never ``shell=True``;
* secrets reach the child only through its environment or 0600 files; a secret found in
  argv is refused before anything runs;
* stdout and stderr reach the logger line by line while the command runs (a long
  ``terraform apply`` shows progress), with every known secret value masked;
* the result keeps the whole stdout (for JSON output) and stderr, and the redacted argv
  for error messages.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MASK = "***"

_module_logger = logging.getLogger("prefect_stacks.process")


def default_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow or task run, a module logger elsewhere."""
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return _module_logger


class Redactor:
    """Masks known secret values in text. Longer secrets are masked first so that a
    secret containing another is masked whole."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {str(s) for s in secrets if s is not None and str(s) != ""}
        # Also mask each line of a multi-line secret (a PEM key logged line by line).
        for value in list(values):
            values.update(line for line in value.splitlines() if len(line.strip()) >= 4)
        self._secrets = sorted(values, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def contains_secret(self, text: str) -> bool:
        return any(secret in text for secret in self._secrets)


@dataclass
class ProcessResult:
    """What a finished command left: redacted argv, exit code, stdout and stderr."""

    argv: list[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    redact: Callable[[str], str] = field(default=lambda text: text, repr=False)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def stderr_tail(self, lines: int = 20) -> str:
        text = self.stderr.strip() or self.redact(self.stdout.strip())
        return "\n".join(text.splitlines()[-lines:])


def _pump(
    stream: IO[bytes],
    sink: list[str],
    log,
    level: int,
    redact: Redactor,
    prefix: str,
    echo: bool,
) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if echo:
            text = redact(line.rstrip("\n"))
            if text.strip():
                log.log(level, "%s%s", prefix, text)
    stream.close()


def run_process(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    secrets: Iterable[str] = (),
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    stream: bool = True,
    prefix: str = "",
    stdin_data: bytes | None = None,
    timeout: float | None = None,
    graceful_stop_seconds: float = 30.0,
) -> ProcessResult:
    """Run ``argv`` and return its :class:`ProcessResult`; never raises on a non-zero exit.

    Args:
        argv: the command as a list; the first item is the program.
        cwd: working directory of the child.
        env: variables added to (or, with ``inherit_env=False``, making up) the child's
            environment; the place for secrets.
        secrets: values masked in every logged line and in the returned argv; a secret
            found in argv raises ``ValueError`` before anything runs.
        logger: where lines go (default: the Prefect run logger, else a module logger).
        stream: log stdout/stderr lines as they come; False for output that may hold
            sensitive values (``terraform output -json``, ``terraform show -json``).
        prefix: text put before each logged line (e.g. ``"terraform apply: "``).
        timeout: seconds before the child is killed; ``returncode`` is then -9.
        graceful_stop_seconds: when the caller is interrupted (Ctrl-C, flow run
            cancelled), the child gets SIGINT and this long to stop before SIGKILL.

    Raises:
        FileNotFoundError: the program does not exist.
        ValueError: a secret value appears in ``argv``.
    """
    argv = [os.fspath(a) for a in argv]
    redact = Redactor(secrets)
    for arg in argv:
        if redact.contains_secret(arg):
            raise ValueError(
                f"refusing to run {argv[0]!r}: a secret value was found in its arguments; "
                "pass secrets through the environment or a 0600 file"
            )
    log = logger or default_logger()
    child_env = dict(os.environ) if inherit_env else {}
    if env:
        child_env.update({k: str(v) for k, v in env.items()})

    proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
        argv,
        cwd=os.fspath(cwd) if cwd else None,
        env=child_env,
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out_lines: list[str] = []
    err_lines: list[str] = []
    pumps = [
        threading.Thread(
            target=_pump,
            args=(proc.stdout, out_lines, log, logging.INFO, redact, prefix, stream),
            daemon=True,
        ),
        threading.Thread(
            target=_pump,
            args=(proc.stderr, err_lines, log, logging.WARNING, redact, prefix, stream),
            daemon=True,
        ),
    ]
    for t in pumps:
        t.start()
    if stdin_data is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin_data)
        finally:
            proc.stdin.close()
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        returncode = proc.wait()
        returncode = -9 if returncode >= 0 else returncode
        err_lines.append(f"killed after {timeout} s timeout\n")
    except BaseException:
        # Cancelled (KeyboardInterrupt, flow cancellation): do not leave the child behind.
        # SIGINT first: terraform then stops gracefully, writing its state and releasing
        # the lock, instead of leaving a half-recorded apply.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=graceful_stop_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    for t in pumps:
        t.join()
    return ProcessResult(
        argv=[redact(a) for a in argv],
        returncode=returncode,
        stdout="".join(out_lines),
        stderr=redact("".join(err_lines)),
        redact=redact,
    )


def write_private_file(path: str | os.PathLike[str], content: str) -> Path:
    """Write ``content`` to a file only the owner can read (0600), created that way so
    that no other user can open it between creation and chmod."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(path, 0o600)
    return path
