"""The one subprocess helper: argv only, streaming, redaction, secrets never in argv."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pytest

from prefect_stacks._internal.process import Redactor, run_process, write_private_file


class ListLogger(logging.Logger):
    def __init__(self) -> None:
        super().__init__("test", logging.DEBUG)
        self.records: list[tuple[int, str, float]] = []

    def log(self, level, msg, *args, **kwargs):  # type: ignore[override]
        self.records.append((level, msg % args, time.monotonic()))

    @property
    def lines(self) -> list[str]:
        return [r[1] for r in self.records]


def test_lines_are_logged_while_the_command_runs(tmp_path: Path):
    gate = tmp_path / "gate"
    code = (
        "import os, sys, time\n"
        "print('first line', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.05)\n"
        "print('second line', flush=True)\n"
    )
    log = ListLogger()
    seen_before_exit = threading.Event()

    def open_gate_when_first_line_logged():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any("first line" in line for line in log.lines):
                seen_before_exit.set()
                break
            time.sleep(0.02)
        gate.write_text("go")

    t = threading.Thread(target=open_gate_when_first_line_logged)
    t.start()
    result = run_process([sys.executable, "-c", code], logger=log, prefix="py: ")
    t.join()
    # The child only exits after the gate opens, and the gate only opens once the first
    # line reached the logger: output is streamed, not collected at exit.
    assert seen_before_exit.is_set()
    assert result.returncode == 0
    assert log.lines == ["py: first line", "py: second line"]


def test_secrets_are_masked_in_logs_stderr_and_tail():
    log = ListLogger()
    code = (
        "import os, sys; s = os.environ['S']; print('token=' + s); "
        "print('err ' + s, file=sys.stderr)"
    )
    result = run_process(
        [sys.executable, "-c", code],
        env={"S": "abc123xyz"},
        logger=log,
        secrets=["abc123xyz"],
        stream=True,
    )
    assert all("abc123xyz" not in line for line in log.lines)
    assert "token=***" in log.lines
    assert "abc123xyz" not in result.stderr
    assert "abc123xyz" not in result.stderr_tail()
    # stdout is kept raw for machine-readable output (e.g. terraform output -json)
    assert "abc123xyz" in result.stdout


def test_stderr_goes_to_warning_level():
    log = ListLogger()
    run_process([sys.executable, "-c", "import sys; print('bad', file=sys.stderr)"], logger=log)
    assert (logging.WARNING, "bad") in [(r[0], r[1]) for r in log.records]


def test_secret_in_argv_is_refused_before_running(tmp_path: Path):
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="secret value was found in its arguments"):
        run_process(
            [sys.executable, "-c", f"open({str(marker)!r}, 'w')", "--password=hunter2"],
            secrets=["hunter2"],
        )
    assert not marker.exists()


def test_no_shell_interpretation(tmp_path: Path):
    target = tmp_path / "pwned"
    arg = f"x; touch {target}; $(touch {target})"
    result = run_process(
        [sys.executable, "-c", "import sys; print(sys.argv[1])", arg], stream=False
    )
    assert result.stdout.strip() == arg
    assert not target.exists()


def test_non_zero_exit_is_returned_with_tail():
    code = "import sys\nfor i in range(30): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    result = run_process([sys.executable, "-c", code], stream=False)
    assert result.returncode == 3
    tail = result.stderr_tail(5).splitlines()
    assert tail == [f"line {i}" for i in range(25, 30)]


def test_timeout_kills_the_child():
    start = time.monotonic()
    result = run_process(
        [sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5, stream=False
    )
    assert time.monotonic() - start < 10
    assert result.returncode < 0
    assert "timeout" in result.stderr


def test_missing_program_raises_file_not_found():
    with pytest.raises(FileNotFoundError):
        run_process(["/nonexistent/terraform", "version"])


def test_redactor_masks_longest_first_and_multiline_secrets():
    redact = Redactor(["abc", "abcdef", "-----BEGIN KEY-----\nMIIEsecretline\n-----END KEY-----"])
    assert redact("x abcdef y abc") == "x *** y ***"
    assert redact("MIIEsecretline") == "***"
    assert not Redactor([])
    assert Redactor(["", None]).__call__("abc") == "abc"


def test_private_file_is_0600(tmp_path: Path):
    path = write_private_file(tmp_path / "f", "secret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "secret"


def test_interrupted_caller_stops_the_child_gracefully_with_sigint(tmp_path: Path):
    import signal

    marker = tmp_path / "stopped-gracefully"
    code = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(marker)!r}, 'w').write('saved state')\n"
        "    sys.exit(130)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_process([sys.executable, "-c", code], stream=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert marker.read_text() == "saved state"
    assert time.monotonic() - start < 20
