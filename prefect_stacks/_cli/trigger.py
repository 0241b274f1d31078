"""``prefect-stacks trigger FLOW/DEPLOYMENT --param k=v --wait``: start a deployment's
flow run from a CI job (or a terminal), stream its logs and exit with a code that
mirrors its final state.

Everything goes through Prefect's client (``get_client``): the run is created with
``create_flow_run_from_deployment`` (the server merges the deployment's parameters,
validates them against its schema, and honours the idempotency key), and the logs are
read with ``read_logs`` filtered by flow run id.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx
import typer
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
)
from prefect.client.schemas.objects import FlowRun, Log, State, StateType
from prefect.client.schemas.sorting import LogSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL
from prefect.utilities.urls import url_for

from prefect_stacks._cli import app
from prefect_stacks._cli._common import user_errors
from prefect_stacks.exceptions import ConfigurationError

# Exit codes of `trigger --wait` (documented in docs/ci.md).
EXIT_CODES: dict[StateType, int] = {
    StateType.COMPLETED: 0,
    StateType.FAILED: 1,
    StateType.CRASHED: 2,
    StateType.CANCELLED: 3,
}
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130

LOG_PAGE = 200  # the server's default (and maximum) page size
# Logs reach the server in batches (every 2 s by default, from the flow run's process
# and from the worker): one may arrive with a timestamp older than the newest already
# printed. Each poll re-reads this far back and skips the logs already printed.
LOG_LOOKBACK = timedelta(seconds=15)
# After the final state, the run's process (and the worker) still flush their last logs.
DRAIN_SECONDS = 6.0
# Connection errors while waiting are retried this long before giving up.
UNREACHABLE_SECONDS = 60.0

DEPLOYMENT_HELP = (
    "write it as flow-name/deployment-name, e.g. stack-apply/local-webapp "
    "(list them with `prefect deployment ls`)"
)


# ------------------------------------------------------------------ parameters
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: kept as text


def parse_value(raw: str) -> Any:
    """A ``--param`` value: JSON when it parses (numbers, true/false/null, objects,
    lists, "quoted strings"), else the text as it is."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return raw


def parse_parameters(pairs: list[str], base: str | None = None) -> dict[str, Any]:
    """``--params`` (a JSON object) overlaid with each ``--param key=value`` in order."""
    parameters: dict[str, Any] = {}
    if base is not None:
        try:
            loaded = json.loads(base, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ConfigurationError(
                f"--params is not valid JSON ({exc}): give a JSON object, e.g. "
                '--params \'{"workspace": "staging"}\''
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigurationError(
                f"--params must be a JSON object of parameter names to values, not "
                f'{type(loaded).__name__}: e.g. --params \'{{"workspace": "staging"}}\''
            )
        parameters.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigurationError(
                f"--param {pair!r} is not key=value: write e.g. --param workspace=staging "
                "(the value is read as JSON when it parses, else as text)"
            )
        parameters[key] = parse_value(raw)
    return parameters


def check_deployment_name(name: str) -> None:
    """``flow/deployment``, as Prefect names deployments, checked before any server call."""
    flow_name, sep, deployment_name = name.partition("/")
    if not sep or not flow_name or not deployment_name or "/" in deployment_name:
        raise ConfigurationError(f"{name!r} is not a deployment name: {DEPLOYMENT_HELP}")


def check_parameter_names(
    deployment_name: str, schema: dict[str, Any] | None, parameters: dict[str, Any]
) -> None:
    """Unknown names are refused here: the server's schema check lets them through and
    the flow run would only fail once a worker starts it."""
    properties = (schema or {}).get("properties")
    if properties is None:
        return
    unknown = sorted(set(parameters) - set(properties))
    if unknown:
        known = ", ".join(sorted(properties)) or "none"
        raise ConfigurationError(
            f"deployment {deployment_name} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {known}"
        )


# ------------------------------------------------------------------ server
def _without_credentials(url: str) -> str:
    """A URL fit to print: no user:password@ (a self-hosted API URL may carry one)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def api_url() -> str:
    return _without_credentials(str(PREFECT_API_URL.value() or ""))


def run_url(flow_run_id: UUID) -> str:
    """The run's page in the UI (PREFECT_UI_URL, else derived from PREFECT_API_URL)."""
    url = url_for("flow-run", obj_id=flow_run_id)
    return _without_credentials(url) if url else "(no UI URL known: set PREFECT_UI_URL)"


def _detail(exc: PrefectHTTPStatusError) -> str:
    try:
        detail = exc.response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, (list, dict)):
        detail = json.dumps(detail)
    return str(detail or exc.response.text or exc.response.reason_phrase)


@contextmanager
def api_errors(doing: str) -> Iterator[None]:
    """Turn what the Prefect API answers into errors that say what to fix."""
    try:
        yield
    except httpx.TransportError as exc:
        raise ConfigurationError(
            f"cannot reach the Prefect API at {api_url()} while {doing} ({exc}): is the "
            "server up and PREFECT_API_URL right?"
        ) from None
    except ObjectNotFound as exc:
        raise ConfigurationError(
            f"the Prefect API at {api_url()} found nothing while {doing}: {exc}"
        ) from None
    except PrefectHTTPStatusError as exc:
        status = exc.response.status_code
        hint = ""
        if status in (401, 403):
            hint = (
                ": check PREFECT_API_KEY (Prefect Cloud) or PREFECT_API_AUTH_STRING "
                "(self-hosted server with basic auth)"
            )
        raise ConfigurationError(
            f"the Prefect API at {api_url()} answered {status} while {doing}: {_detail(exc)}{hint}"
        ) from None


def create_run(
    client,
    deployment_name: str,
    parameters: dict[str, Any],
    *,
    name: str | None = None,
    tags: list[str] | None = None,
    idempotency_key: str | None = None,
) -> FlowRun:
    """Create a flow run of ``flow/deployment``; bad names and parameters are refused with
    the reason (unknown deployment, unknown parameter, the server's schema check)."""
    with api_errors(f"reading deployment {deployment_name}"):
        try:
            deployment = client.read_deployment_by_name(deployment_name)
        except ObjectNotFound:
            raise ConfigurationError(
                f"no deployment {deployment_name!r} on {api_url()}: check the name and the "
                "server; list the deployments with `prefect deployment ls` (names are "
                "flow-name/deployment-name, e.g. stack-apply/local-webapp)"
            ) from None
    check_parameter_names(deployment_name, deployment.parameter_openapi_schema, parameters)
    with api_errors(f"creating a flow run of {deployment_name}"):
        try:
            flow_run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters=parameters,
                name=name,
                tags=tags or None,
                idempotency_key=idempotency_key,
            )
        except PrefectHTTPStatusError as exc:
            # 409: the parameters, merged over the deployment's, fail its schema
            # (when the deployment enforces it, the default); 400: a templated value
            # could not be filled in.
            if exc.response.status_code not in (400, 409):
                raise
            detail = _detail(exc).removeprefix("Error creating flow run: ")
            raise ConfigurationError(
                f"deployment {deployment_name} refused the parameters: {detail}"
            ) from None
    if idempotency_key is not None:
        check_same_parameters(flow_run, idempotency_key, parameters)
    return flow_run


def check_same_parameters(
    flow_run: FlowRun, idempotency_key: str, parameters: dict[str, Any]
) -> None:
    """The server answers a reused idempotency key with the run it made for it, whatever
    the parameters asked for now: following that run would report a result for other
    parameters. (A run made just now holds every parameter given.)"""
    existing = flow_run.parameters or {}
    differing = sorted(
        name
        for name, value in parameters.items()
        if name not in existing or existing[name] != value
    )
    if differing:
        raise ConfigurationError(
            f"idempotency key {idempotency_key!r} already belongs to flow run {flow_run.name} "
            f"({flow_run.id}), started with other values for: {', '.join(differing)}; "
            "nothing was started. Give this job its own key (e.g. add the pipeline id and "
            "job name), or leave --idempotency-key out to start a new run"
        )


# ------------------------------------------------------------------ following a run
def format_log(log: Log) -> str:
    stamp = log.timestamp.strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} {logging.getLevelName(log.level):<8} {log.message}"


class LogStream:
    """Prints each log of one flow run once, oldest first."""

    def __init__(self, client, flow_run_id: UUID, echo: Callable[[str], None]) -> None:
        self.client = client
        self.flow_run_id = flow_run_id
        self.echo = echo
        self.seen: set[UUID] = set()
        self.newest: datetime | None = None

    def poll(self) -> int:
        """Print the logs not printed yet; returns how many."""
        after = self.newest - LOG_LOOKBACK if self.newest else None
        log_filter = LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[self.flow_run_id]),
            timestamp=LogFilterTimestamp(after_=after) if after else None,
        )
        new: list[Log] = []
        offset = 0
        while True:
            page = self.client.read_logs(
                log_filter, limit=LOG_PAGE, offset=offset, sort=LogSort.TIMESTAMP_ASC
            )
            for log in page:
                if log.id not in self.seen:
                    self.seen.add(log.id)
                    new.append(log)
            if len(page) < LOG_PAGE:
                break
            offset += LOG_PAGE
        new.sort(key=lambda log: log.timestamp)
        for log in new:
            self.echo(format_log(log))
        if new:
            newest = new[-1].timestamp
            self.newest = newest if self.newest is None else max(self.newest, newest)
        return len(new)


def describe_state(state: State) -> str:
    return f"{state.name}: {state.message}" if state.message else str(state.name)


def state_note(state: State, flow_run: FlowRun) -> str:
    """One line when the run enters a state; paused and late runs say what they wait for."""
    if state.is_paused():
        until = ""
        timeout = state.state_details.pause_timeout if state.state_details else None
        if timeout is not None:
            until = f" until {timeout:%Y-%m-%d %H:%M:%S} UTC"
        return (
            f"state: {state.name} - the run waits for input{until}: approve or reject it "
            f"in the UI ({run_url(flow_run.id)}); still waiting"
        )
    if state.type == StateType.SCHEDULED and state.name == "Late":
        pool = f" {flow_run.work_pool_name!r}" if flow_run.work_pool_name else ""
        return (
            f"state: Late - no worker has picked the run up yet: is a worker polling work "
            f"pool{pool}? still waiting"
        )
    if state.type == StateType.CANCELLING:
        return "state: Cancelling - cancellation requested; waiting for the run to stop"
    return f"state: {describe_state(state)}"


def follow(
    client,
    flow_run: FlowRun,
    *,
    timeout: float | None,
    poll_interval: float,
    echo: Callable[[str], None] = typer.echo,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Stream the run's logs until it reaches a final state; returns the exit code
    (:data:`EXIT_CODES`, or :data:`EXIT_TIMEOUT`). Paused runs are not final."""
    started = clock()
    logs = LogStream(client, flow_run.id, echo)
    last_state: tuple[Any, ...] | None = None
    unreachable_since: float | None = None
    while True:
        try:
            with api_errors(f"following flow run {flow_run.id}"):
                try:
                    flow_run = client.read_flow_run(flow_run.id)
                    logs.poll()
                except (httpx.TransportError, PrefectHTTPStatusError) as exc:
                    # A server restart or a network blip must not fail a CI job whose
                    # run goes on: retried for a while, then reported.
                    if not _transient(exc):
                        raise
                    if unreachable_since is None:
                        unreachable_since = clock()
                    if clock() - unreachable_since > UNREACHABLE_SECONDS:
                        raise
                    echo(f"warning: the Prefect API did not answer ({exc}); retrying")
                    sleep(poll_interval)
                    continue
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{exc}. The flow run may still be running: {run_url(flow_run.id)}"
            ) from None
        unreachable_since = None
        state = flow_run.state
        if state is not None and state.is_final():
            _drain(logs, clock, sleep)
            echo(f"flow run {flow_run.name} ({flow_run.id}) finished: {describe_state(state)}")
            return EXIT_CODES.get(state.type, 1)
        if state is not None and (state.type, state.name) != last_state:
            last_state = (state.type, state.name)
            echo(state_note(state, flow_run))
        if timeout is not None and clock() - started >= timeout:
            echo(
                f"timed out after {timeout:g} s: flow run {flow_run.name} ({flow_run.id}) is "
                f"{state.name if state else 'unknown'} and is left running on the server; "
                f"follow it at {run_url(flow_run.id)}, cancel it with "
                f"`prefect flow-run cancel {flow_run.id}`"
            )
            return EXIT_TIMEOUT
        sleep(poll_interval)


def _transient(exc: Exception) -> bool:
    if isinstance(exc, PrefectHTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError)


def _drain(logs: LogStream, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    """The last logs arrive after the final state: read until two quiet polls in a row."""
    deadline = clock() + DRAIN_SECONDS
    quiet = 0
    while quiet < 2 and clock() < deadline:
        sleep(1.0)
        try:
            quiet = 0 if logs.poll() else quiet + 1
        except (httpx.TransportError, PrefectHTTPStatusError):
            return


_MARKDOWN_LINK = re.compile(r"^\[[^\]]*\]\((https?://[^\s)]+)\)$")


def run_links(client, flow_run_id: UUID) -> list[str]:
    """``url: http://...`` for each link artifact the run published (``url-<stack>-...``
    from stack-apply: the page it deployed), oldest first; empty when none can be read."""
    try:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    except (httpx.TransportError, PrefectHTTPStatusError):
        return []
    lines = []
    for artifact in sorted(artifacts, key=lambda a: str(a.created or "")):
        link = _MARKDOWN_LINK.match(str(artifact.data or "").strip())
        if artifact.type in ("markdown", "link") and link:
            label = (artifact.key or "link").split("-", 1)[0]
            lines.append(f"{label}: {link.group(1)}")
    return lines


# ------------------------------------------------------------------ the command
@app.command()
def trigger(
    deployment: str = typer.Argument(
        ..., help="The deployment as flow-name/deployment-name, e.g. stack-apply/local-webapp."
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="A parameter as key=value (repeatable); the value is read as JSON when it "
        "parses (3, true, {...}, [...]), else as text.",
    ),
    params: str | None = typer.Option(
        None,
        "--params",
        help="Parameters as one JSON object; --param values override its keys.",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Name of the flow run (a flow that names its runs, like the stack-* ones, "
        "renames it when it starts).",
    ),
    tag: list[str] = typer.Option(
        [], "--tag", help="A tag for the flow run (repeatable), besides the deployment's."
    ),
    idempotency_key: str | None = typer.Option(
        None,
        "--idempotency-key",
        help="A second trigger with the same key (e.g. a retried CI job) gets the run the "
        "first one created instead of starting another; refused (exit 1) when that run has "
        "other parameters.",
    ),
    wait: bool = typer.Option(
        False,
        "--wait",
        help="Stream the run's logs until it ends; exit 0 Completed, 1 Failed, 2 Crashed, "
        "3 Cancelled, 4 --timeout exceeded.",
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        min=0,
        help="With --wait: stop waiting after this many seconds (exit 4; the run goes on).",
    ),
    poll_interval: float = typer.Option(
        2.0, "--poll-interval", min=0.1, help="With --wait: seconds between polls."
    ),
) -> None:
    """Start a flow run of DEPLOYMENT and print its id and URL; with --wait, stream its
    logs and exit with a code that mirrors its final state (a Completed run's links,
    e.g. the page stack-apply deployed, come last)."""
    with user_errors():
        check_deployment_name(deployment)
        if timeout is not None and not wait:
            raise ConfigurationError("--timeout only applies with --wait")
        parameters = parse_parameters(param, params)
        with get_client(sync_client=True) as client:
            flow_run = create_run(
                client,
                deployment,
                parameters,
                name=name,
                tags=tag,
                idempotency_key=idempotency_key,
            )
    typer.echo(f"flow run {flow_run.name} of {deployment}")
    typer.echo(f"id:  {flow_run.id}")
    typer.echo(f"url: {run_url(flow_run.id)}")
    if not wait:
        return
    try:
        with user_errors(), get_client(sync_client=True) as client:
            code = follow(client, flow_run, timeout=timeout, poll_interval=poll_interval)
            if code == EXIT_CODES[StateType.COMPLETED]:
                for line in run_links(client, flow_run.id):  # last: what CI jobs look for
                    typer.echo(line)
    except KeyboardInterrupt:
        typer.echo(
            f"\nstopped waiting: flow run {flow_run.id} goes on on the server "
            f"({run_url(flow_run.id)}); cancel it with `prefect flow-run cancel {flow_run.id}`"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    raise typer.Exit(code)
