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
