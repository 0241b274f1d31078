"""The ``stacks/local-webapp`` Terraform stack, run with the real terraform CLI.

Each test applies a temporary copy of the stack (as the flows do), talks to the server
over HTTP and destroys it again. Servers are always cleaned up: by ``terraform
destroy`` and, as a last resort, by killing the pid recorded in their run dir.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH"),
    pytest.mark.skipif(shutil.which("python3") is None, reason="python3 is not on PATH"),
]

STACK = Path(__file__).resolve().parents[2] / "stacks" / "local-webapp"
DEFAULT_RUN_ROOT = Path("/tmp/prefect-stacks-local-webapp")
IN_USE_MESSAGE = (
    'port {port} on 127.0.0.1 is in use by another process; set the stack variable "port" '
    "to a free port"
)


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TF_VAR_")
        and k not in ("TF_WORKSPACE", "TF_DATA_DIR", "TF_CLI_ARGS")
        and not k.startswith("TF_CLI_ARGS_")
    }
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    return env


def tf(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``terraform <args>`` in ``cwd`` (argv list, no shell)."""
    result = subprocess.run(
        ["terraform", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"terraform {' '.join(args)} failed ({result.returncode})\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def tf_vars(**values: object) -> list[str]:
    return [arg for key, value in values.items() for arg in ("-var", f"{key}={value}")]


def outputs(cwd: Path, *state: str) -> dict[str, object]:
    raw = json.loads(tf(cwd, "output", "-json", *state).stdout)
    return {key: value["value"] for key, value in raw.items()}


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str] | None:
    """(status, body), or None when nothing answers. Ignores proxy settings."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def kill_run_dir_server(run_dir: Path) -> None:
    try:
        pid = int((run_dir / "server.pid").read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if str(run_dir).encode() in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Stacks:
    """Copies of the stack made by a test, destroyed (then killed) afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._destroy: list[tuple[Path, list[str]]] = []
        self.run_dirs: list[Path] = []

    def copy(self, label: str = "stack") -> Path:
        target = self.root / f"{label}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(STACK, target, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
        tf(target, "init", "-no-color", "-input=false")
        return target

    def run_dir(self, label: str = "run") -> Path:
        path = self.root / f"{label}-{uuid.uuid4().hex[:8]}"
        self.run_dirs.append(path)
        return path

    def on_cleanup(self, stack: Path, *args: str) -> None:
        """Destroy ``terraform destroy <args>`` in ``stack`` at the end (if it exists)."""
        self._destroy.append((stack, list(args)))

    def cleanup(self) -> None:
        for stack, args in reversed(self._destroy):
            if stack.is_dir():
                tf(stack, "destroy", "-auto-approve", "-no-color", *args, check=False)
        for run_dir in self.run_dirs:
            kill_run_dir_server(run_dir)


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Stacks]:
    helper = Stacks(tmp_path)
    try:
        yield helper
    finally:
        helper.cleanup()


def apply(stack: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return tf(stack, "apply", "-auto-approve", "-no-color", "-input=false", *args, check=check)


def destroy(stack: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return tf(stack, "destroy", "-auto-approve", "-no-color", "-input=false", *args)


def wait_gone(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_answers(port):
            return True
        time.sleep(0.05)
    return not port_answers(port)


# --------------------------------------------------------------------------- tests


def test_apply_serves_page_and_destroy_stops_it(stacks: Stacks) -> None:
    stack, run_dir, port = stacks.copy(), stacks.run_dir(), free_port()
    args = tf_vars(app_version="1.0.0", port=port, run_dir=run_dir)
    stacks.on_cleanup(stack, *args)

    started = time.monotonic()
    apply(stack, *args)
    out = outputs(stack)
    assert out["url"] == f"http://127.0.0.1:{port}/"
    assert out["port"] == port
    assert out["environment"] == "default"  # name defaults to the workspace
    assert out["version"] == "1.0.0"
    assert out["run_dir"] == str(run_dir)

    status, body = http_get(out["url"])
    assert status == 200
    assert "<h1>default</h1>" in body
    assert "version 1.0.0" in body
    assert out["image"] == "" and 'class="image"' not in body  # no image: no line
    assert http_get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
    pid = int((run_dir / "server.pid").read_text())
    assert pid_alive(pid)

    destroy(stack, *args)
    elapsed = time.monotonic() - started
    assert wait_gone(port), "the server still answers after destroy"
    assert not pid_alive(pid)
    assert not run_dir.exists()
    assert elapsed < 60, f"apply + destroy took {elapsed:.1f}s"


def test_server_survives_the_stack_copy_and_destroy_works_from_a_fresh_copy(
    stacks: Stacks, tmp_path: Path
) -> None:
    first, run_dir, port = stacks.copy("first"), stacks.run_dir(), free_port()
    args = tf_vars(name="preview", port=port, run_dir=run_dir)
    apply(first, *args)

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = state_dir / "terraform.tfstate"
    shutil.move(first / "terraform.tfstate", state)
    shutil.rmtree(first)

    second = stacks.copy("second")
    stacks.on_cleanup(second, f"-state={state}", *args)

    # The temporary copy is gone; the server (run from run_dir) still serves.
    status, body = http_get(f"http://127.0.0.1:{port}/")
    assert status == 200 and "<h1>preview</h1>" in body

    result = destroy(second, f"-state={state}", *args)
    assert "stopped server pid" in result.stdout
    assert wait_gone(port)
    assert not run_dir.exists()


def test_changing_the_version_replaces_the_server(stacks: Stacks) -> None:
    stack, run_dir, port = stacks.copy(), stacks.run_dir(), free_port()
    base = tf_vars(name="staging", port=port, run_dir=run_dir)
    stacks.on_cleanup(stack, *base)

    apply(stack, *base, *tf_vars(app_version="1.0.0"))
    old_pid = int((run_dir / "server.pid").read_text())
    assert "version 1.0.0" in http_get(f"http://127.0.0.1:{port}/")[1]

    apply(stack, *base, *tf_vars(app_version="2.0.0"))
    new_pid = int((run_dir / "server.pid").read_text())
    status, body = http_get(f"http://127.0.0.1:{port}/")
    assert status == 200
    assert "version 2.0.0" in body and "version 1.0.0" not in body
    assert outputs(stack)["version"] == "2.0.0"
    assert new_pid != old_pid and not pid_alive(old_pid)

    # A new image (a deploy of a built commit) replaces the server too, and is shown.
    image = "127.0.0.1:5000/shop/web:abc123@sha256:" + "e" * 64
    apply(stack, *base, *tf_vars(app_version="2.0.0", image=image))
    assert f"image <code>{image}</code>" in http_get(f"http://127.0.0.1:{port}/")[1]
    assert outputs(stack)["image"] == image
    apply(stack, *base, *tf_vars(app_version="2.0.0"))
    new_pid = int((run_dir / "server.pid").read_text())

    # Re-applying the same values changes nothing and keeps the server.
    result = apply(stack, *base, *tf_vars(app_version="2.0.0"))
    assert "No changes." in result.stdout
    assert int((run_dir / "server.pid").read_text()) == new_pid


def test_two_workspaces_get_their_own_port_and_run_dir(stacks: Stacks) -> None:
    """Default port and run dir: derived from workspace + name (a unique name here)."""
    stack = stacks.copy()
    name = f"ws-{uuid.uuid4().hex[:10]}"
    args = tf_vars(name=name)
    for workspace in ("a", "b"):  # last-resort cleanup; destroy runs in finally below
        stacks.run_dirs.append(DEFAULT_RUN_ROOT / f"{workspace}-{name}")

    seen = {}
    try:
        for workspace in ("a", "b"):
            tf(stack, "workspace", "new", "-no-color", workspace)
            apply(stack, *args)
            seen[workspace] = outputs(stack)

        assert seen["a"]["port"] != seen["b"]["port"]
        for workspace, out in seen.items():
            assert 20000 <= out["port"] <= 31999
            assert out["run_dir"] == str(DEFAULT_RUN_ROOT / f"{workspace}-{name}")
            status, body = http_get(out["url"])  # both answer at once
            assert status == 200 and f"<h1>{name}</h1>" in body

        # The derived port is stable: a fresh plan proposes no change.
        plan = tf(stack, "plan", "-no-color", "-detailed-exitcode", *args, check=False)
        assert plan.returncode == 0, plan.stdout + plan.stderr

        for workspace in ("b", "a"):
            tf(stack, "workspace", "select", "-no-color", workspace)
            destroy(stack, *args)
    finally:
        for workspace in ("a", "b"):
            if tf(stack, "workspace", "select", workspace, check=False).returncode == 0:
                tf(stack, "destroy", "-auto-approve", "-no-color", *args, check=False)
        tf(stack, "workspace", "select", "default", check=False)

    for out in seen.values():
        assert wait_gone(out["port"])
        assert not Path(out["run_dir"]).exists()


def test_shell_characters_in_the_name_are_inert_and_escaped(stacks: Stacks, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    name = (
        f'-x"; touch {marker}-1; echo "$(touch {marker}-2)`touch {marker}-3`'
        f"'; touch {marker}-4 #<script>alert(1)</script>&amp;"
    )
    version = f"1.0 && touch {marker}-5 | $(id)"
    stack, port = stacks.copy(), free_port()
    # Default run dir: the name must become a single safe path component.
    args = tf_vars(name=name, app_version=version, port=port)
    stacks.on_cleanup(stack, *args)

    apply(stack, *args)
    out = outputs(stack)
    run_dir = Path(out["run_dir"])
    stacks.run_dirs.append(run_dir)
    assert out["environment"] == name and out["version"] == version
    assert run_dir.parent == DEFAULT_RUN_ROOT
    assert re.fullmatch(r"[A-Za-z0-9._-]+", run_dir.name), run_dir.name

    status, body = http_get(out["url"])
    assert status == 200
    assert f"<h1>{html.escape(name)}</h1>" in body
    assert f"version {html.escape(version)}" in body
    assert "<script>" not in body

    destroy(stack, *args)
    assert wait_gone(port)
    assert not run_dir.exists()
    assert not list(tmp_path.glob("pwned*"))


def test_port_in_use_fails_with_a_clear_message(stacks: Stacks) -> None:
    stack, run_dir = stacks.copy(), stacks.run_dir()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        args = tf_vars(port=port, run_dir=run_dir)
        stacks.on_cleanup(stack, *args)

        result = apply(stack, *args, check=False)

    assert result.returncode != 0
    # Terraform wraps diagnostics at ~80 columns: compare with whitespace collapsed.
    stderr = " ".join(result.stderr.split())
    assert IN_USE_MESSAGE.format(port=port) in stderr, result.stderr
    assert not run_dir.exists()


def test_invalid_port_is_rejected_at_plan_time(stacks: Stacks) -> None:
    stack = stacks.copy()
    result = tf(stack, "plan", "-no-color", *tf_vars(port=80), check=False)
    assert result.returncode != 0
    assert 'The variable "port" must be 0' in " ".join(result.stderr.split())


def test_destroy_after_the_server_is_gone_and_destroy_twice(stacks: Stacks) -> None:
    stack, run_dir, port = stacks.copy(), stacks.run_dir(), free_port()
    args = tf_vars(port=port, run_dir=run_dir)
    stacks.on_cleanup(stack, *args)

    apply(stack, *args)
    pid = int((run_dir / "server.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # the server dies behind Terraform's back
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wait_gone(port)

    first = destroy(stack, *args)
    assert "server already stopped" in first.stdout
    assert not run_dir.exists()
    second = destroy(stack, *args)  # nothing left in the state: a no-op
    assert second.returncode == 0

    # stop on a run dir that never existed (or was removed by hand) succeeds too.
    missing = stacks.run_dir("missing")
    stop = subprocess.run(
        [sys.executable, str(STACK / "webapp.py"), "stop", f"--run-dir={missing}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert stop.returncode == 0, stop.stderr


def test_start_is_idempotent_for_the_same_run_dir(stacks: Stacks) -> None:
    """webapp.py start twice on one run dir replaces its own server (no port clash)."""
    run_dir, port = stacks.run_dir(), free_port()
    script = [sys.executable, str(STACK / "webapp.py")]
    start = [*script, "start", "--name=dev", f"--port={port}", f"--run-dir={run_dir}"]
    try:
        for version in ("1", "2"):
            result = subprocess.run(
                [*start, f"--version={version}"], capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stderr
            assert f"version {version}" in http_get(f"http://127.0.0.1:{port}/")[1]
    finally:
        subprocess.run([*script, "stop", f"--run-dir={run_dir}"], capture_output=True, timeout=60)
    assert wait_gone(port)
    assert not run_dir.exists()
