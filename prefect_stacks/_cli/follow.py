"""Following a flow run until it ends: its logs streamed once each, a line per state it
enters, and the exit code that mirrors its final state (``trigger --wait``, ``env``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import typer
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
)
from prefect.client.schemas.objects import FlowRun, Log, State, StateType
from prefect.client.schemas.sorting import LogSort
from prefect.exceptions import PrefectHTTPStatusError

from prefect_stacks._cli.api import api_errors, run_url
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


def timeout_option(goes_on: str) -> Any:
    """``--timeout`` of a command with ``--wait``; ``goes_on`` names what keeps running."""
    return typer.Option(
        None,
        "--timeout",
        min=0,
        help=f"With --wait: stop waiting after this many seconds (exit 4; {goes_on} goes on).",
    )


def poll_interval_option() -> Any:
    """``--poll-interval`` of a command with ``--wait``."""
    return typer.Option(2.0, "--poll-interval", min=0.1, help="With --wait: seconds between polls.")


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
