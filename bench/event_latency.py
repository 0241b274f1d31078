"""How long from a change reported over HTTP to its flow run Running.

Brings up the local platform (`LocalPlatform.up`: Prefect server on SQLite, process
worker polling every 1 s, the deployments and automations) in a temporary home, starts
`prefect-stacks webhooks serve`, applies one automation (stacks.git.commit ->
stack-plan/local-webapp with parameters from the event), then measures, interleaved,
N tries of each path to the same deployment:

* API call (baseline) - what external CI does (`prefect-stacks trigger`): create the
  run from the deployment through Prefect's client;
* event posted        - `events.emit` (`POST /api/events`) of a stacks.git.commit event
  -> automation;
* signed webhook      - a GitHub `push` delivery, HMAC-signed, to the receiver ->
  verified -> event -> automation.

For each: time from sending the request to the flow run existing (Scheduled) and to the
worker's process reporting it Running; median of N, and the ratio to the baseline.
Each try waits for its run to finish before the next (no queueing between tries).

Run: ``python bench/event_latency.py [--runs 10]``; target: signed webhook -> Running
under 2 s with 1 s worker polling.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

DEPLOYMENT = "stack-plan/local-webapp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from prefect_stacks.local import LocalConfig, LocalPlatform, api_settings

    root = Path(tempfile.mkdtemp(prefix="bench-events-"))
    config = LocalConfig(home=root / "home", port=free_port())
    platform = LocalPlatform(config, say=lambda msg: print(f"  {msg}", file=sys.stderr))
    print(f"starting the local platform in {root} ...", file=sys.stderr)
    result = platform.up(stack_variables={"run_dir": str(root / "webapp"), "port": free_port()})
    print(f"  up in {result.timings['total']:.1f} s", file=sys.stderr)
    receiver = None
    try:
        os.environ["PREFECT_API_URL"] = config.api_url
        with api_settings(config.api_url):
            receiver, base = start_receiver(config, root)
            rows = measure(args.runs, base, root)
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(10)
        platform.stop()
    print_table(rows, args.runs)
    return 0


def start_receiver(config: Any, root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    script = Path(sys.executable).parent / "prefect-stacks"
    log = (root / "webhooks.log").open("w")
    proc = subprocess.Popen(
        [str(script), "webhooks", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**config.child_env(), "PREFECT_API_URL": config.api_url},
    )
    import httpx

    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"the receiver did not start; see {root / 'webhooks.log'}")


def measure(runs: int, base: str, root: Path) -> dict[str, list[tuple[float, float, float]]]:
    import httpx
    from prefect import get_client
    from pydantic import SecretStr

    from prefect_stacks import events
    from prefect_stacks.blocks.webhooks import WebhookSource
    from prefect_stacks.events import automations

    secret = secrets.token_hex(16)
    WebhookSource(kind="github", secret=SecretStr(secret)).save("bench-github", overwrite=True)
    repository = "github.com/bench/app"
    directory = root / "automations"
    directory.mkdir()
    (directory / "bench.yaml").write_text(
        textwrap.dedent(
            f"""
            automations:
              - name: bench-plan-on-push
                trigger:
                  expect: [stacks.git.commit]
                  match: {{stacks.repository: "{repository}"}}
                actions:
                  - type: run-deployment
                    deployment: {DEPLOYMENT}
                    parameters:
                      workspace: bench
                      variables: {{app_version: "{{{{ event.payload.sha }}}}"}}
            """
        )
    )
    automations.apply(directory)
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(DEPLOYMENT).id

    def by_api(marker: str) -> None:
        # what `prefect-stacks trigger` does (Prefect's client retries a 503 from SQLite)
        with get_client(sync_client=True) as client:
            client.create_flow_run_from_deployment(
                deployment_id,
                parameters={"workspace": "bench", "variables": {"app_version": marker}},
            )

    def by_event(marker: str) -> None:
        events.emit([events.git_commit(f"https://{repository}", "main", marker)])

    def by_webhook(marker: str) -> None:
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "before": "0" * 40,
                "after": marker,
                "deleted": False,
                "repository": {"clone_url": f"https://{repository}.git"},
            }
        ).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        response = httpx.post(
            f"{base}/hooks/bench-github",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": marker,
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )
        assert response.status_code == 202, response.text

    variants = {
        "API call (baseline)": by_api,
        "event posted": by_event,
        "signed webhook": by_webhook,
    }
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for i in range(runs):
        for name, send in variants.items():
            marker = secrets.token_hex(20)
            start = time.perf_counter()
            send(marker)
            created, pending, running, run_id = wait_running(deployment_id, marker, start)
            rows[name].append((created, pending, running))
            wait_final(run_id)
            print(
                f"  try {i + 1}/{runs} {name:20} created {created:5.2f} s  "
                f"picked up {pending:5.2f} s  running {running:5.2f} s",
                file=sys.stderr,
            )
    return rows


def wait_running(deployment_id: Any, marker: str, start: float) -> tuple[float, float, float, Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    created = pending = None
    with get_client(sync_client=True) as client:
        while time.perf_counter() - start < 120:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                limit=10,
            )
            for run in runs:
                if (run.parameters.get("variables") or {}).get("app_version") != marker:
                    continue
                if created is None:
                    created = time.perf_counter() - start
                if pending is None and run.state is not None and not run.state.is_scheduled():
                    pending = time.perf_counter() - start
                if run.state is not None and (run.state.is_running() or run.state.is_final()):
                    return created, pending, time.perf_counter() - start, run.id
            time.sleep(0.02)
    raise SystemExit(f"no run for {marker} reached Running within 120 s")


def wait_final(run_id: Any) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        for _ in range(600):
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                return
            time.sleep(0.2)


def print_table(rows: dict[str, list[tuple[float, float, float]]], runs: int) -> None:
    base_created = statistics.median(c for c, _, _ in rows["API call (baseline)"])
    base = statistics.median(r for _, _, r in rows["API call (baseline)"])
    print(f"\nrequest -> flow run, median of {runs} (worker polls every 1 s)\n")
    print(
        "| path | created (s) | created ratio | picked up by worker (s) | Running (s) "
        "| Running ratio |"
    )
    print("|---|---|---|---|---|---|")
    for name, values in rows.items():
        created = statistics.median(c for c, _, _ in values)
        pending = statistics.median(p for _, p, _ in values)
        running = statistics.median(r for _, _, r in values)
        print(
            f"| {name} | {created:.2f} | {created / base_created:.2f} | {pending:.2f} "
            f"| {running:.2f} | {running / base:.2f} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
