"""`prefect-stacks env ...` fails clearly, before touching any server, on bad input."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from prefect_stacks._cli import app

runner = CliRunner()


def test_without_an_api_url_it_says_how_to_point_at_a_server():
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 1
    assert "PREFECT_API_URL is not set" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["env", "show", "x;rm -rf /"], "not a valid environment name"),
        (["env", "extend", "demo-1", "soon"], "is not a duration"),
        (["env", "extend", "demo-1", "--", "-5"], "TTL must be a positive"),
    ],
)
def test_bad_input_is_refused_before_any_server_call(args, message):
    # a closed port: any server call would fail with a connection error instead
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output


def test_list_piped_keeps_whole_urls(monkeypatch):
    """Piped (CI logs, `| grep`), the table is not cut to 80 columns."""
    from prefect_stacks.environments import Environment, EnvironmentLedger

    url = "https://" + "preview-" * 12 + "pr-42.example.com/some/long/path"
    entry = Environment(name="PR_42", kind="pr", stack="webapp", workspace="PR_42", url=url)
    monkeypatch.setattr(EnvironmentLedger, "list", lambda self, include_destroyed=False: [entry])
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.lstrip().startswith("PR_42"))
    assert url in row and "provisioning" in row
