"""``prefect-stacks trigger FLOW/DEPLOYMENT --param k=v --wait``: start a deployment's
flow run from a CI job (or a terminal), stream its logs and exit with a code that
mirrors its final state.

Everything goes through Prefect's client (``get_client``): the run is created with
``create_flow_run_from_deployment`` (the server merges the deployment's parameters,
validates them against its schema, and honours the idempotency key), and the logs are
read with ``read_logs`` filtered by flow run id (:mod:`prefect_stacks._cli.follow`).
"""

from __future__ import annotations

import json
from typing import Any

import typer
from prefect import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from prefect_stacks._cli import app
from prefect_stacks._cli.api import api_errors, api_url, response_detail, run_url
from prefect_stacks._cli.errors import user_errors
from prefect_stacks._cli.follow import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    LogStream,
    follow,
    poll_interval_option,
    run_links,
    timeout_option,
)
from prefect_stacks.exceptions import ConfigurationError

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
            detail = response_detail(exc).removeprefix("Error creating flow run: ")
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
    timeout: float | None = timeout_option("the run"),
    poll_interval: float = poll_interval_option(),
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


__all__ = [
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_TIMEOUT",
    "LogStream",
    "create_run",
    "follow",
    "parse_parameters",
    "parse_value",
    "run_url",
    "trigger",
]
