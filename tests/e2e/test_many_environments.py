"""Soak: 50 demo environments with random short TTLs on the real server, torn down by
the worker's scheduled runs while the worker (with its flow runs) is SIGKILLed twice;
with the janitor run every 10 s, every one must end destroyed, with no Terraform
workspace left behind.

It lives in tests/e2e, not tests/integration: the teardowns are the one-off scheduled
runs of `environment-teardown/default`, which only a real worker executes, and the
point is to kill that worker.

The stack is a trivial `terraform_data` one (not local-webapp: 50 web servers on hashed
ports could collide). Environments are created in this process from a thread pool (a
worker run would add a Python start-up per environment, and creation is not what is
under test); the janitor is called in this process too.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.environments import (
    Environment,
    EnvironmentLedger,
    EnvironmentState,
    utcnow,
)
from prefect_stacks.flows.environments import demo_environment, environment_janitor
from tests.conftest import write_stack

if TYPE_CHECKING:
    from tests.e2e.conftest import E2E, KilledWorker

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("janitor_unscheduled")]

COUNT = 50
TTL_RANGE = (5, 40)  # seconds, uniform
CREATE_THREADS = 3
JANITOR_EVERY = 10.0  # seconds between janitor runs
# The janitor takes over a teardown claimed this long ago that has not finished: a
# killed one never does. Above what a teardown takes on a busy 2-core machine, so the
# janitor does not race live teardowns on every pass.
STALE_AFTER = 20
SETTLE_DEADLINE = 240.0  # seconds after the last creation for all to be destroyed


def _trivial_stack(root: Path) -> tuple[str, Path]:
    source = write_stack(
        root / "src",
        """
resource "terraform_data" "env" {
  input = terraform.workspace
}
""",
    )
    state_dir = root / "state"
    name = "trivial-" + secrets.token_hex(3)
    TerraformStack(source=str(source), state_dir=str(state_dir)).save(name)
    return name, state_dir


def _timeline(env: Environment | None, applied: datetime | None) -> str:
    if env is None:
        return "(no ledger entry)"

    def at(when: datetime | None) -> str:
        return "-" if when is None else f"{(when - env.created_at).total_seconds():+.1f} s"

    return (
        f"{env.name}: {env.state.value}, TTL {at(env.expires_at)}, demo-environment returned "
        f"{at(applied)}, teardown claimed {at(env.teardown_started_at)}, destroyed "
        f"{at(env.destroyed_at)}, attempts {env.teardown_attempts}, revision {env.revision}"
    )


def _leftover_workspaces(state_dir: Path) -> list[str]:
    workspaces = state_dir / "workspaces"
    return sorted(p.name for p in workspaces.iterdir()) if workspaces.is_dir() else []


@pytest.mark.timeout(600)
def test_fifty_environments_survive_two_worker_kills(e2e: E2E, tmp_path: Path, record_property):
    started = time.monotonic()
    seed = int(os.environ.get("MANY_ENVS_SEED", secrets.randbits(32)))
    rng = random.Random(seed)
    stack, state_dir = _trivial_stack(tmp_path)
    tag = secrets.token_hex(2)
    ttls = {f"many-{tag}-{i:02d}": rng.randint(*TTL_RANGE) for i in range(COUNT)}
    names = list(ttls)
    ledger = EnvironmentLedger()
    print(f"\n[many] seed {seed} (MANY_ENVS_SEED={seed} to replay), stack {stack}")

    def states() -> Counter[str]:
        entries = {e.name: e for e in ledger.list(include_destroyed=True) if e.name in ttls}
        return Counter(entries[n].state.value if n in entries else "missing" for n in names)

    kills: list[KilledWorker] = []
    restarts: list[float] = []
    janitor_reports: list[dict[str, list[str]]] = []
    janitor_failures: list[str] = []

    def kill_and_restart(label: str) -> None:
        # Kill while the worker is running at least one flow run, if it gets to one soon.
        deadline = time.monotonic() + 10
        while len(e2e.worker_processes()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        killed = e2e.kill_worker()
        kills.append(killed)
        restarts.append(e2e.restart_worker())
        print(
            f"[many] {time.monotonic() - started:5.1f} s  {label}: killed the worker and "
            f"{len(killed.flow_run_ids)} flow run(s) ({len(killed.pids)} processes); "
            f"new worker polling after {restarts[-1]:.1f} s; {dict(states())}"
        )

    def janitor() -> None:
        try:
            report = environment_janitor(stale_after_seconds=STALE_AFTER, warn_before_seconds=0)
        except Exception as exc:  # the next pass retries; reported if it never recovers
            janitor_failures.append(f"{type(exc).__name__}: {exc}")
            return
        janitor_reports.append(report)

    errors: dict[str, str] = {}
    applied_at: dict[str, datetime] = {}  # when demo-environment returned

    retried: dict[str, str] = {}

    def create(name: str) -> None:
        # A run that fails before its ledger entry exists created nothing: retry it
        # (SQLite on 2 busy cores sometimes answers 503 to creating the flow run, even
        # after the client's own retries). Once the entry exists, a failure counts.
        for attempt in range(3):
            try:
                demo_environment.with_options(flow_run_name=f"demo-{name}")(
                    stack=stack, ttl_seconds=ttls[name], name=name, owner="soak"
                )
                errors.pop(name, None)
                break
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                if ledger.find(name) is not None or attempt == 2:
                    break
                retried[name] = errors[name][:200]
                time.sleep(2)
        applied_at[name] = utcnow()

    # The worker is killed twice while environments are still being created, when
    # these many are done: teardowns of the earlier ones are running by then.
    kill_when = [COUNT * 3 // 10, COUNT * 3 // 4]
    # The janitor runs in its own thread (a pass that tears down inline takes a while)
    # so the kills still land while environments are being created.
    janitor_pool = ThreadPoolExecutor(1, thread_name_prefix="janitor")
    janitor_pass: Future[None] | None = None

    def maybe_janitor() -> bool:
        nonlocal janitor_pass, next_janitor
        if time.monotonic() < next_janitor or (janitor_pass and not janitor_pass.done()):
            return False
        janitor_pass = janitor_pool.submit(janitor)
        next_janitor = time.monotonic() + JANITOR_EVERY
        return True

    next_janitor = time.monotonic() + JANITOR_EVERY
    try:
        with ThreadPoolExecutor(CREATE_THREADS, thread_name_prefix="create") as pool:
            futures: list[Future[None]] = [pool.submit(create, n) for n in names]
            while (done := sum(f.done() for f in futures)) < COUNT:
                if kill_when and done >= kill_when[0]:
                    kill_when.pop(0)
                    kill_and_restart(f"kill {len(kills) + 1} ({done} of {COUNT} created)")
                maybe_janitor()
                time.sleep(0.2)
        creation_time = time.monotonic() - started
        print(f"[many] {creation_time:5.1f} s  all {COUNT} created; {dict(states())}")
        for _ in kill_when:  # creation outran the kills: kill now
            kill_and_restart(f"kill {len(kills) + 1} (after creation)")

        deadline = time.monotonic() + SETTLE_DEADLINE
        while states()["destroyed"] < COUNT - len(errors) and time.monotonic() < deadline:
            if maybe_janitor():
                print(f"[many] {time.monotonic() - started:5.1f} s  janitor pass: {dict(states())}")
            time.sleep(1)
    finally:
        janitor_pool.shutdown(wait=True)
        e2e.ensure_worker()

    duration = time.monotonic() - started
    final = {e.name: e for e in ledger.list(include_destroyed=True) if e.name in ttls}
    not_destroyed = {
        n: (final[n].state.value, final[n].error) if n in final else ("missing", None)
        for n in names
        if n not in final or final[n].state != EnvironmentState.destroyed
    }
    leftovers = _leftover_workspaces(state_dir)
    creation_seconds = sorted(
        (applied_at[n] - final[n].created_at).total_seconds() for n in names if n in final
    ) or [0.0]
    took_over = sorted({n for r in janitor_reports for n in r["teardown"] if n not in r["waiting"]})
    waited = sorted({n for r in janitor_reports for n in r["waiting"]})
    record_property("many_environments_seconds", round(duration, 1))
    print(
        f"[many] {COUNT} environments, TTL {TTL_RANGE[0]}-{TTL_RANGE[1]} s, seed {seed}: "
        f"{duration:.1f} s in all (creation {creation_time:.1f} s); worker restarts "
        f"{', '.join(f'{r:.1f} s' for r in restarts)}; killed flow runs "
        f"{[len(k.flow_run_ids) for k in kills]}; janitor passes {len(janitor_reports)}, "
        f"tore down {len(took_over)}, waited for provisioning of {len(waited)}; "
        f"janitor failures {janitor_failures}; creations retried {retried}; "
        f"seconds from ledger entry to applied: median "
        f"{creation_seconds[len(creation_seconds) // 2]:.1f}, max {creation_seconds[-1]:.1f}"
    )

    assert not errors, f"creating environments failed: {errors}"
    assert len(kills) == 2
    assert any(k.flow_run_ids for k in kills), "neither kill caught a flow run in progress"
    assert not not_destroyed, (
        f"{len(not_destroyed)} of {COUNT} environments not destroyed "
        f"{SETTLE_DEADLINE:.0f} s after the last creation: {not_destroyed}"
    )
    assert leftovers == [], (
        f"terraform workspaces left in {state_dir}: {leftovers}; their ledger entries:\n"
        + "\n".join(_timeline(final.get(n), applied_at.get(n)) for n in leftovers)
    )
    assert all(final[n].destroyed_at is not None for n in names)
