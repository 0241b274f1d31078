"""fails_cleanly: a user error ends the flow run Failed with its message (no traceback),
the caller still gets the exception, and the flow's parameters resolve under
`from __future__ import annotations` (this module uses it, with a model parameter)."""

from __future__ import annotations

import logging

import pytest
from prefect import flow
from pydantic import BaseModel

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks.exceptions import ConfigurationError, StackError


class Spec(BaseModel):
    size: int = 1


@flow(name="fails-cleanly-test")
@fails_cleanly
def configured(spec: Spec | None = None, fail: str = "") -> int:
    if fail == "config":
        raise ConfigurationError("no TerraformStack block named 'nope'; existing: a, b")
    if fail == "stack":
        raise StackError("terraform apply failed")
    return spec.size if spec else 0


def test_parameters_resolve_under_future_annotations():
    assert configured.validate_parameters({"spec": {"size": 3}})["spec"] == Spec(size=3)
    assert "Spec" in configured.parameters.definitions


def test_a_configuration_error_fails_the_run_with_its_message_only(prefect_harness, caplog):
    with caplog.at_level(logging.INFO):
        state = configured(fail="config", return_state=True)
    assert state.is_failed()
    assert state.message == "no TerraformStack block named 'nope'; existing: a, b"
    assert "Traceback" not in caplog.text
    with pytest.raises(ConfigurationError, match="existing: a, b"):
        configured(fail="config")
    assert configured(spec=Spec(size=2)) == 2


def test_other_errors_still_propagate_as_before(prefect_harness):
    with pytest.raises(StackError):
        configured(fail="stack")
