"""End to end: `prefect-stacks up` from another home, on the port of the running e2e
platform's real Prefect server, refuses it before touching anything (issue 10)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from prefect_stacks._internal.process import run_process
from prefect_stacks.local import LOCAL_WEBAPP, api_settings, port_in_use

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_up_from_another_home_refuses_the_running_server(e2e: E2E, tmp_path, prefect_stacks_cli):
    from prefect.client.orchestration import get_client

    def snapshot():
        with api_settings(e2e.api_url), get_client(sync_client=True) as client:
            blocks = client.read_block_documents_by_type("terraform-stack")
            return (
                {b.name: b.data.get("state_dir") for b in blocks},
                sorted(str(d.updated) for d in client.read_deployments()),
            )

    before = snapshot()
    other = tmp_path / "other home"
    args = ["up", "--detach", "--home", str(other), "--port", str(e2e.config.port)]
    result = run_process([*prefect_stacks_cli, *args], stream=False, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    (error,) = [line for line in output.splitlines() if line.startswith("error:")]
    # `up` starts its server in its home, whose pid file names the port: that home is named
    assert f"not started from {other} but from {e2e.config.home}" in error
    assert f"prefect-stacks down --home {e2e.config.home}" in error
    port = int(re.search(r"--port (\d+)`", error).group(1))
    assert port != e2e.config.port and not port_in_use("127.0.0.1", port)
    # nothing was written under the other home, nothing changed on the server
    assert not other.exists()
    assert snapshot() == before
    assert before[0][LOCAL_WEBAPP] == str(e2e.config.state_dir(LOCAL_WEBAPP))
