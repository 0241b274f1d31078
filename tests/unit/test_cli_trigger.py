"""`prefect-stacks trigger`: parameters are parsed as documented, bad input is refused
before any server call, and `--wait` maps what the server reports (states, logs) to
output and exit codes. The server is a small in-memory stand-in here; the real one is
in tests/e2e/test_trigger_e2e.py."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from uuid import uuid4

import httpx
import pytest
from prefect.client.schemas.objects import FlowRun, Log
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings
from prefect.states import (
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    Paused,
    Pending,
    Running,
)
from typer.testing import CliRunner

from prefect_stacks._cli import app
from prefect_stacks._cli import trigger as trigger_cli
from prefect_stacks._cli.trigger import (
    EXIT_TIMEOUT,
    LogStream,
    follow,
    parse_parameters,
    parse_value,
)
from prefect_stacks.exceptions import ConfigurationError

runner = CliRunner()
CLOSED_PORT_API = "http://127.0.0.1:9/api"  # any server call fails there
SCHEMA = {
    "type": "object",
    "properties": {
        "stack": {"type": "string"},
        "workspace": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "variables": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "require_approval": {"type": "boolean"},
    },
}


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("staging", "staging"),
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ('{"port": 8080, "name": "x"}', {"port": 8080, "name": "x"}),
        ("[1, 2]", [1, 2]),
        ('"3"', "3"),  # quoted: a string even though it looks like a number
        ("007", "007"),  # not JSON (leading zero): kept as text
        ("NaN", "NaN"),  # Python's json would make a float no server accepts
        ("", ""),
        ("{broken", "{broken"),
        ("registry.local/app:1.2.3", "registry.local/app:1.2.3"),
    ],
)
def test_param_values_are_json_when_they_parse_else_text(raw, expected):
    assert parse_value(raw) == expected


def test_params_is_the_base_and_each_param_overrides_it_in_order():
    parameters = parse_parameters(
        ["workspace=staging", 'variables={"a": 1}', "workspace=prod", "url=a=b"],
        '{"workspace": "dev", "stack": "network"}',
    )
    assert parameters == {
        "workspace": "prod",
        "stack": "network",
        "variables": {"a": 1},
        "url": "a=b",  # only the first "=" separates key and value
    }


# ------------------------------------------------------------------ bad input
@pytest.fixture
def no_server(monkeypatch):
    """Fails the test if the command opens a client."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a Prefect client was opened for input that is refused")

    monkeypatch.setattr(trigger_cli, "get_client", forbidden)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stack-apply/local-webapp", "--param", "workspace"], "is not key=value"),
        (["stack-apply/local-webapp", "-p", "=staging"], "is not key=value"),
        (["stack-apply/local-webapp", "--params", "{nope"], "--params is not valid JSON"),
        (["stack-apply/local-webapp", "--params", "[1, 2]"], "must be a JSON object"),
        (["stack-apply"], "is not a deployment name"),
        (["stack-apply/"], "is not a deployment name"),
        (["a/b/c"], "is not a deployment name"),
        (["stack-apply/local-webapp", "--timeout", "5"], "--timeout only applies with --wait"),
    ],
)
def test_bad_input_is_refused_before_any_server_call(no_server, args, message):
    with temporary_settings({PREFECT_API_URL: CLOSED_PORT_API}):
        result = runner.invoke(app, ["trigger", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_deployment_name_error_says_how_to_list_deployments(no_server):
    with temporary_settings({PREFECT_API_URL: CLOSED_PORT_API}):
        result = runner.invoke(app, ["trigger", "stack-apply"])
    assert "flow-name/deployment-name" in result.output
    assert "prefect deployment ls" in result.output


def test_without_an_api_url_it_refuses_to_run(no_server):
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["trigger", "stack-plan/local-webapp"])
    assert result.exit_code == 1
    assert "PREFECT_API_URL is not set" in result.output


def test_unreachable_server_is_a_clear_error_without_traceback():
    with temporary_settings({PREFECT_API_URL: CLOSED_PORT_API}):
        result = runner.invoke(app, ["trigger", "stack-plan/local-webapp"])
    assert result.exit_code == 1, result.output
    assert f"cannot reach the Prefect API at {CLOSED_PORT_API}" in result.output
    assert isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------ a stand-in server
def _http_error(status: int, detail: str) -> PrefectHTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:9/api/deployments/x/create_flow_run")
    response = httpx.Response(status, json={"detail": detail}, request=request)
    return PrefectHTTPStatusError(f"{status}", request=request, response=response)


class FakeClient:
    """The parts of Prefect's sync client that `trigger` uses, over scripted data.

    ``states`` are returned by successive ``read_flow_run`` calls (the last repeats);
    ``logs_by_poll[i]`` are the logs the server holds from the i-th poll on."""

    def __init__(
        self, states=(), logs_by_poll=(), deployments=None, create_error=None, existing=None
    ):
        self.deployments = deployments if deployments is not None else {}
        self.existing = existing  # parameters of the run an idempotency key already has
        self.artifacts: list = []
        self.create_error = create_error
        self.created: list[dict] = []
        self.states = list(states)
        self.logs_by_poll = list(logs_by_poll)
        self.run_polls = 0
        self.log_polls = 0
        self.flow_run = FlowRun(flow_id=uuid4(), name="plan-local-webapp-ci", state=Pending())

    # deployments
    def read_deployment_by_name(self, name):
        if name not in self.deployments:
            raise ObjectNotFound(http_exc=_http_error(404, "Deployment not found"))
        return self.deployments[name]

    def create_flow_run_from_deployment(self, deployment_id, **kwargs):
        if self.create_error:
            raise self.create_error
        self.created.append({"deployment_id": deployment_id, **kwargs})
        parameters = self.existing if self.existing is not None else kwargs["parameters"]
        self.flow_run = self.flow_run.model_copy(update={"parameters": parameters})
        return self.flow_run

    def read_artifacts(self, artifact_filter):
        assert artifact_filter.flow_run_id.any_ == [self.flow_run.id]
        return self.artifacts

    # runs and logs
    def read_flow_run(self, flow_run_id):
        assert flow_run_id == self.flow_run.id
        index = min(self.run_polls, len(self.states) - 1)
        self.run_polls += 1
        state = self.states[index]
        if isinstance(state, BaseException):
            raise state
        return self.flow_run.model_copy(update={"state": state})

    def read_logs(self, log_filter, limit, offset, sort):
        assert log_filter.flow_run_id.any_ == [self.flow_run.id]
        visible: list[Log] = []
        for batch in self.logs_by_poll[: self.log_polls + 1]:
            visible.extend(batch)
        if offset == 0:
            self.log_polls += 1
        after = log_filter.timestamp.after_ if log_filter.timestamp else None
        matching = sorted(
            (log for log in visible if after is None or log.timestamp >= after),
            key=lambda log: log.timestamp,
        )
        return matching[offset : offset + limit]


T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _log(flow_run_id, seconds: float, message: str, level: int = 20) -> Log:
    return Log(
        name="prefect.flow_runs",
        level=level,
        message=message,
        timestamp=T0 + timedelta(seconds=seconds),
        flow_run_id=flow_run_id,
    )


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _follow(client, timeout=None):
    lines: list[str] = []
    fake = FakeTime()
    code = follow(
        client,
        client.flow_run,
        timeout=timeout,
        poll_interval=1.0,
        echo=lines.append,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    return code, lines


@contextmanager
def _serving(monkeypatch, client, api_url=CLOSED_PORT_API, settings=None):
    @contextmanager
    def fake_get_client(*args, **kwargs):
        yield client

    fake = FakeTime()

    def fast_follow(*args, **kwargs):  # the real loop, on a clock that does not wait
        return follow(*args, **kwargs, clock=fake.clock, sleep=fake.sleep)

    monkeypatch.setattr(trigger_cli, "get_client", fake_get_client)
    monkeypatch.setattr(trigger_cli, "follow", fast_follow)
    with temporary_settings({PREFECT_API_URL: api_url, **(settings or {})}):
        yield


def _deployment():
    return SimpleNamespace(id=uuid4(), parameter_openapi_schema=SCHEMA)


# ------------------------------------------------------------------ creating a run
def test_creates_the_run_with_parsed_parameters_and_prints_id_and_url(monkeypatch):
    deployment = _deployment()
    client = FakeClient(deployments={"stack-plan/local-webapp": deployment})
    with _serving(monkeypatch, client):
        result = runner.invoke(
            app,
            [
                "trigger",
                "stack-plan/local-webapp",
                "--params",
                '{"workspace": "dev", "require_approval": false}',
                "-p",
                "workspace=ci-42",
                "--param",
                'variables={"app_version": "1.2.3", "replicas": 2}',
                "--name",
                "ci-run",
                "--tag",
                "ci",
                "--tag",
                "sha:abc",
                "--idempotency-key",
                "pipeline-7-plan",
            ],
        )
    assert result.exit_code == 0, result.output
    assert client.created == [
        {
            "deployment_id": deployment.id,
            "parameters": {
                "workspace": "ci-42",
                "require_approval": False,
                "variables": {"app_version": "1.2.3", "replicas": 2},
            },
            "name": "ci-run",
            "tags": ["ci", "sha:abc"],
            "idempotency_key": "pipeline-7-plan",
        }
    ]
    run_id = client.flow_run.id
    assert f"id:  {run_id}" in result.output
    # no PREFECT_UI_URL: derived from the API URL without /api
    assert f"url: http://127.0.0.1:9/runs/flow-run/{run_id}" in result.output
    assert client.run_polls == 0, "without --wait the run is not followed"


def test_ui_url_setting_wins_and_credentials_never_print(monkeypatch):
    client = FakeClient(deployments={"stack-plan/local-webapp": _deployment()})
    with _serving(monkeypatch, client, api_url="http://ci:s3cr3t@127.0.0.1:9/api"):
        derived = runner.invoke(app, ["trigger", "stack-plan/local-webapp"])
    with _serving(monkeypatch, client, settings={PREFECT_UI_URL: "https://prefect.example.com"}):
        configured = runner.invoke(app, ["trigger", "stack-plan/local-webapp"])
    assert derived.exit_code == 0, derived.output
    assert "s3cr3t" not in derived.output
    assert f"http://127.0.0.1:9/runs/flow-run/{client.flow_run.id}" in derived.output
    assert f"https://prefect.example.com/runs/flow-run/{client.flow_run.id}" in configured.output


def test_unknown_deployment_names_it_and_how_to_list_them(monkeypatch):
    client = FakeClient(deployments={"stack-plan/local-webapp": _deployment()})
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-plan/nope"])
    assert result.exit_code == 1
    assert "no deployment 'stack-plan/nope'" in result.output
    assert "prefect deployment ls" in result.output
    assert isinstance(result.exception, SystemExit)


def test_unknown_parameter_is_refused_with_the_known_ones(monkeypatch):
    client = FakeClient(deployments={"stack-plan/local-webapp": _deployment()})
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-plan/local-webapp", "-p", "workspce=x"])
    assert result.exit_code == 1
    assert "has no parameter 'workspce'" in result.output
    assert "require_approval, stack, variables, workspace" in result.output
    assert client.created == []


def test_schema_violation_from_the_server_is_readable(monkeypatch):
    detail = (
        "Error creating flow run: Validation failed for field 'require_approval'. "
        "Failure reason: 'yes' is not of type 'boolean'"
    )
    client = FakeClient(
        deployments={"stack-apply/local-webapp": _deployment()},
        create_error=_http_error(409, detail),
    )
    with _serving(monkeypatch, client):
        result = runner.invoke(
            app, ["trigger", "stack-apply/local-webapp", "-p", "require_approval=yes"]
        )
    assert result.exit_code == 1
    assert (
        "error: deployment stack-apply/local-webapp refused the parameters: Validation failed "
        "for field 'require_approval'. Failure reason: 'yes' is not of type 'boolean'"
    ) in result.output
    assert isinstance(result.exception, SystemExit)


def test_unauthorized_says_which_setting_to_check(monkeypatch):
    client = FakeClient(
        deployments={"stack-apply/local-webapp": _deployment()},
        create_error=_http_error(401, "Unauthorized"),
    )
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-apply/local-webapp"])
    assert result.exit_code == 1
    assert "answered 401" in result.output and "PREFECT_API_KEY" in result.output


# ------------------------------------------------------------------ --wait
@pytest.mark.parametrize(
    ("final", "code"),
    [(Completed(), 0), (Failed(message="boom"), 1), (Crashed(), 2), (Cancelled(), 3)],
)
def test_exit_code_mirrors_the_final_state(final, code):
    client = FakeClient(states=[Pending(), Running(), final])
    exit_code, lines = _follow(client)
    assert exit_code == code
    assert lines[-1].startswith(f"flow run plan-local-webapp-ci ({client.flow_run.id}) finished")
    assert final.name in lines[-1]


def test_failed_run_prints_its_message():
    client = FakeClient(states=[Running(), Failed(message="ConfigurationError: no block 'nope'")])
    code, lines = _follow(client)
    assert code == 1
    assert "Failed: ConfigurationError: no block 'nope'" in lines[-1]


def test_cancelling_is_waited_for_until_cancelled():
    client = FakeClient(states=[Running(), Cancelling(), Cancelling(), Cancelled()])
    code, lines = _follow(client)
    assert code == 3
    assert sum("cancellation requested" in line for line in lines) == 1
    assert client.run_polls == 4


def test_a_paused_run_is_not_final_and_is_noted_once():
    paused = Paused(timeout_seconds=3600)
    client = FakeClient(states=[Running(), paused, paused, paused, Running(), Completed()])
    with temporary_settings({PREFECT_API_URL: CLOSED_PORT_API}):
        code, lines = _follow(client)
    assert code == 0
    notes = [line for line in lines if "waits for input" in line]
    assert len(notes) == 1, lines
    assert f"in the UI (http://127.0.0.1:9/runs/flow-run/{client.flow_run.id})" in notes[0]
    assert client.run_polls == 6


def test_a_late_run_says_no_worker_took_it():
    client = FakeClient(states=[Late(), Completed()])
    client.flow_run = client.flow_run.model_copy(update={"work_pool_name": "local"})
    _, lines = _follow(client)
    assert any("no worker has picked the run up" in line and "'local'" in line for line in lines)


def test_timeout_exits_4_and_leaves_the_run_running():
    client = FakeClient(states=[Running()])
    code, lines = _follow(client, timeout=5)
    assert code == EXIT_TIMEOUT
    assert "timed out after 5 s" in lines[-1]
    assert "left running" in lines[-1]
    assert f"prefect flow-run cancel {client.flow_run.id}" in lines[-1]
    assert 5 <= client.run_polls <= 7


def test_each_log_is_printed_once_in_order_even_when_one_arrives_late():
    client = FakeClient(states=[Running()])
    run_id = client.flow_run.id
    first, second, late = (
        _log(run_id, 1, "terraform init"),
        _log(run_id, 3, "local-webapp/ci: 1 to add, 0 to change, 0 to destroy."),
        _log(run_id, 2, "a worker log that reached the server late", level=30),
    )
    client.logs_by_poll = [[first, second], [], [late]]
    lines: list[str] = []
    stream = LogStream(client, run_id, lines.append)
    assert [stream.poll(), stream.poll(), stream.poll(), stream.poll()] == [2, 0, 1, 0]
    assert lines == [
        "12:00:01.000 INFO     terraform init",
        "12:00:03.000 INFO     local-webapp/ci: 1 to add, 0 to change, 0 to destroy.",
        "12:00:02.000 WARNING  a worker log that reached the server late",
    ]


def test_more_logs_than_a_page_are_all_printed():
    client = FakeClient(states=[Running()])
    run_id = client.flow_run.id
    client.logs_by_poll = [[_log(run_id, i / 100, f"line {i}") for i in range(450)]]
    lines: list[str] = []
    assert LogStream(client, run_id, lines.append).poll() == 450
    assert [line.split()[-1] for line in lines] == [str(i) for i in range(450)]


def test_logs_flushed_after_the_final_state_are_still_printed():
    client = FakeClient(states=[Running(), Completed()])
    run_id = client.flow_run.id
    client.logs_by_poll = [
        [_log(run_id, 1, "started")],
        [],
        [_log(run_id, 5, "Process for flow run exited with status code 0")],
    ]
    code, lines = _follow(client)
    assert code == 0
    assert any("exited with status code 0" in line for line in lines)
    assert lines[-1].startswith("flow run plan-local-webapp-ci")  # the verdict comes last


def test_a_network_blip_while_waiting_is_retried():
    blip = httpx.ConnectError("connection refused")
    client = FakeClient(states=[Running(), blip, blip, Completed()])
    code, lines = _follow(client)
    assert code == 0
    assert sum(line.startswith("warning: the Prefect API did not answer") for line in lines) == 2


def test_a_server_gone_for_good_ends_the_wait_with_an_error():
    client = FakeClient(states=[Running(), httpx.ConnectError("connection refused")])
    with pytest.raises(ConfigurationError, match="cannot reach the Prefect API.*may still be"):
        _follow(client)


def test_wait_prints_logs_and_exits_with_the_state_code(monkeypatch):
    deployment = _deployment()
    client = FakeClient(
        deployments={"stack-plan/local-webapp": deployment},
        states=[Running(), Failed(message="terraform plan failed")],
    )
    client.logs_by_poll = [[_log(client.flow_run.id, 1, "Error: Invalid HCL", level=40)]]
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-plan/local-webapp", "--wait"])
    assert result.exit_code == 1, result.output
    assert "ERROR    Error: Invalid HCL" in result.output
    assert "finished: Failed: terraform plan failed" in result.output


def test_ctrl_c_while_waiting_exits_130_and_says_how_to_cancel(monkeypatch):
    client = FakeClient(
        deployments={"stack-plan/local-webapp": _deployment()},
        states=[Running(), KeyboardInterrupt()],
    )
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-plan/local-webapp", "--wait"])
    assert result.exit_code == 130, result.output
    assert "goes on on the server" in result.output
    assert f"prefect flow-run cancel {client.flow_run.id}" in result.output


# ------------------------------------------------------------------ issue 10
def _artifact(key, data, seconds=0):
    return SimpleNamespace(
        key=key, type="markdown", data=data, created=T0 + timedelta(seconds=seconds)
    )


def test_a_completed_run_ends_with_the_page_it_deployed(monkeypatch):
    client = FakeClient(
        deployments={"stack-apply/local-webapp": _deployment()},
        states=[Running(), Completed(message="applied: url=http://127.0.0.1:8080/")],
    )
    client.artifacts = [
        _artifact("plan-local-webapp-default", "### Terraform plan ...", 0),
        _artifact(
            "url-local-webapp-default", "[http://127.0.0.1:8080/](http://127.0.0.1:8080/)", 1
        ),
    ]
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-apply/local-webapp", "--wait"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "url: http://127.0.0.1:8080/"
    assert "finished: Completed: applied: url=http://127.0.0.1:8080/" in lines[-2]


def test_a_failed_run_prints_no_links(monkeypatch):
    client = FakeClient(
        deployments={"stack-apply/local-webapp": _deployment()},
        states=[Running(), Failed(message="terraform apply failed")],
    )
    client.artifacts = [_artifact("url-local-webapp-default", "[x](http://127.0.0.1:8080/)")]
    with _serving(monkeypatch, client):
        result = runner.invoke(app, ["trigger", "stack-apply/local-webapp", "--wait"])
    assert result.exit_code == 1
    assert "url: http://127.0.0.1:8080/" not in result.output


def test_an_idempotency_key_reused_with_other_parameters_is_refused(monkeypatch):
    client = FakeClient(
        deployments={"stack-apply/local-webapp": _deployment()},
        existing={"workspace": "staging", "variables": {"image": "app:1"}, "stack": "x"},
        states=[Completed()],
    )
    argv = ["trigger", "stack-apply/local-webapp", "--idempotency-key", "pipe-7-deploy"]
    with _serving(monkeypatch, client):
        result = runner.invoke(
            app, [*argv, "-p", "workspace=prod", "-p", 'variables={"image": "app:2"}', "--wait"]
        )
    assert result.exit_code == 1, result.output
    assert "idempotency key 'pipe-7-deploy' already belongs to flow run" in result.output
    assert "other values for: variables, workspace" in result.output
    assert "app:2" not in result.output and "prod" not in result.output
    assert client.run_polls == 0, "the other run is not followed"

    with _serving(monkeypatch, client):  # the same parameters: a retried job follows it
        same = runner.invoke(app, [*argv, "-p", "workspace=staging", "--wait"])
    assert same.exit_code == 0, same.output
