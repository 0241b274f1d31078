"""Issue 10: the environment flows' parameters as the Prefect UI and server see them.

The server checks a run's parameters against the deployment's parameter schema when the
run is created (``enforce_parameter_schema``): these tests run the same check
(``prefect.utilities.schema_tools.validation.validate``) on the flows' schemas."""

from __future__ import annotations

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError, validate

from prefect_stacks.environments import parse_duration, parse_ttl
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.flows.environments import (
    demo_environment,
    environment_janitor,
    environment_teardown,
)


def _schema(flow) -> dict:
    return parameter_schema(flow).model_dump()


def _server_check(flow, parameters: dict) -> str | None:
    """What the server answers at run creation: None (accepted) or its message."""
    try:
        validate(parameters, _schema(flow), raise_on_error=True)
    except ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("ttl", ["2h", "90m", "1d", "1h30m", " 45m ", 3600, 7200.5, "3600"])
def test_the_server_accepts_a_ttl_as_env_extend_does(ttl):
    assert _server_check(demo_environment, {"ttl_seconds": ttl}) is None
    assert parse_ttl(ttl).total_seconds() == parse_duration(str(ttl))


@pytest.mark.parametrize(
    ("ttl", "reason"),
    [
        (-5, "less than or equal to the minimum of 0"),
        (0, "less than or equal to the minimum of 0"),
        (10**9, "greater than the maximum"),
        ("soon", "does not match"),
        ("-5", "does not match"),
        (True, "ttl_seconds"),
    ],
)
def test_the_server_refuses_a_bad_ttl_before_the_run_exists(ttl, reason):
    message = _server_check(demo_environment, {"ttl_seconds": ttl})
    assert message and "ttl_seconds" in message and reason in message, message


@pytest.mark.parametrize("ttl", [-5, 0, "0m", "100d", 10**9, True])
def test_a_bad_ttl_in_the_flow_says_what_to_do_in_cli_words(ttl):
    with pytest.raises(ConfigurationError) as err:
        parse_ttl(ttl)
    message = str(err.value)
    assert "prefect-stacks env keep <name>" in message
    assert "keep()" not in message


def test_text_parameters_are_one_text_box_and_still_take_null():
    """owner/name/slack_block are `type: string` (one text box, no str/None toggle),
    variables an object; the old null values from the API are still accepted."""
    props = _schema(demo_environment)["properties"]
    for key in ("name", "owner", "slack_block"):
        assert props[key]["type"] == "string" and "anyOf" not in props[key], props[key]
    assert props["variables"]["type"] == "object" and "anyOf" not in props["variables"]
    assert "block name" in props["slack_block"]["description"]
    old_style = {"name": None, "owner": None, "variables": None, "slack_block": None}
    assert _server_check(demo_environment, old_style) is None
    assert _server_check(demo_environment, {"owner": 3}) is not None


def test_the_teardown_deployment_is_not_a_form_field():
    assert "teardown_deployment" not in _schema(demo_environment)["properties"]


def test_teardown_and_janitor_parameters_are_checked_by_the_server():
    assert _schema(environment_teardown)["properties"]["reason"]["enum"] == [
        "expired",
        "requested",
    ]
    assert "reason" in (_server_check(environment_teardown, {"name": "x", "reason": "now"}) or "")
    assert _server_check(environment_janitor, {"warn_before_seconds": -1})
    assert _server_check(environment_janitor, {"stale_after_seconds": -1})


def test_null_parameters_reach_the_flow_as_empty_values():
    """Prefect's own parameter validation (what a worker does before the body runs)
    turns the old nulls into "" and {}."""
    validated = demo_environment.validate_parameters(
        {"owner": None, "name": None, "variables": None, "slack_block": None, "ttl_seconds": "2h"}
    )
    assert validated["owner"] == "" and validated["variables"] == {}
    assert type(validated["owner"]) is str and type(validated["variables"]) is dict
    assert validated["ttl_seconds"] == "2h"
