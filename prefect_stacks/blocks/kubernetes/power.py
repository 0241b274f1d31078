"""Kubernetes workloads stopped (scaled to 0) and started again at the replica count they
had: ``service-power``'s Kubernetes half.

``stop`` records each workload's replicas in a Prefect Variable
(``stacks-power-<cluster>-<namespace>-<kind>-<name>``) *before* it scales it to 0, so a
run that dies between the two loses nothing; stopping a stopped workload keeps the record.
``start`` scales each back to its record, waits for the rollout, then drops the record.
A workload at 0 with no record (someone scaled it by hand) is not guessed at: ``start``
names it and says how to start it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_stacks._internal.prefect_api import current_flow_run_url
from prefect_stacks._internal.process import default_logger
from prefect_stacks._internal.variables import VariableRecord
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.kubernetes.block import KubernetesCluster
from prefect_stacks.blocks.kubernetes.kubectl import Kubectl
from prefect_stacks.exceptions import ConfigurationError, KubernetesError

RECORD_PREFIX = "stacks-power-"
RECORD_TAG = "prefect-stacks:power"
_SCALABLE_RE = re.compile(r"^(deployment|statefulset)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def check_scalable(workload: str) -> str:
    value = workload.strip().lower()
    if value.startswith("daemonset/"):
        raise ConfigurationError(
            f"{value}: a daemonset has no replica count to scale to 0; stop its nodes' "
            "selector instead, or leave it out"
        )
    if not _SCALABLE_RE.match(value):
        raise ConfigurationError(
            f"workload {value!r} is not `deployment/<name>` or `statefulset/<name>`"
        )
    return value


@dataclass
class WorkloadPower:
    """What one workload runs now, and what a stop recorded for it."""

    workload: str
    replicas: int
    ready: int
    recorded: int | None

    @property
    def line(self) -> str:
        state = "stopped" if self.replicas == 0 else f"running {self.ready}/{self.replicas} ready"
        kept = f", {self.recorded} recorded to start with" if self.recorded is not None else ""
        return f"{self.workload}: {state}{kept}"


class PowerRecord(VariableRecord):
    """The replica count a stop recorded for one workload."""

    def __init__(self, cluster: str, namespace: str, workload: str) -> None:
        super().__init__(RECORD_PREFIX, RECORD_TAG, cluster, namespace, workload)

    def replicas(self) -> int | None:
        value = self.load()
        return int(value["replicas"]) if isinstance(value, dict) and "replicas" in value else None

    def keep(self, replicas: int) -> None:
        self.save(
            {
                "replicas": replicas,
                "stopped_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "by": current_flow_run_url() or "",
            }
        )


def _read(kubectl: Kubectl, namespace: str, workload: str, cluster: str) -> WorkloadPower:
    found = kubectl.get_json(workload, f"--namespace={namespace}")
    if found is None:
        raise ConfigurationError(f"{workload} does not exist in namespace {namespace} of {cluster}")
    return WorkloadPower(
        workload=workload,
        replicas=int((found.get("spec") or {}).get("replicas", 1)),
        ready=int((found.get("status") or {}).get("readyReplicas") or 0),
        recorded=PowerRecord(cluster, namespace, workload).replicas(),
    )


def _scale(kubectl: Kubectl, namespace: str, workload: str, replicas: int) -> None:
    kubectl.check(
        "scale", workload, f"--replicas={replicas}", f"--namespace={namespace}",
        what=f"scaling {workload} to {replicas}",
    )  # fmt: skip


def _cluster(name: str) -> KubernetesCluster:
    return load_block(KubernetesCluster, name, create="create it (Blocks > Kubernetes Cluster)")


@task(cache_policy=NO_CACHE, task_run_name="power-status-{cluster}")
def workload_status(cluster: str, namespace: str, workloads: list[str]) -> list[WorkloadPower]:
    block = _cluster(cluster)
    with block.kubectl() as kubectl:
        return [_read(kubectl, namespace or block.namespace, w, cluster) for w in workloads]


@task(cache_policy=NO_CACHE, task_run_name="stop-workloads-{cluster}")
def stop_workloads(cluster: str, namespace: str, workloads: list[str]) -> list[str]:
    """Record each workload's replicas, then scale it to 0; returns a line per workload."""
    block = _cluster(cluster)
    namespace = namespace or block.namespace
    log, lines = default_logger(), []
    with block.kubectl() as kubectl:
        for workload in workloads:
            now = _read(kubectl, namespace, workload, cluster)
            if now.replicas == 0:
                kept = f" ({now.recorded} recorded)" if now.recorded is not None else ""
                lines.append(f"{workload}: already stopped{kept}")
                continue
            PowerRecord(cluster, namespace, workload).keep(now.replicas)
            _scale(kubectl, namespace, workload, 0)
            lines.append(f"{workload}: stopped (was {now.replicas} replicas)")
            log.info("%s", lines[-1])
    return lines


@task(cache_policy=NO_CACHE, task_run_name="start-workloads-{cluster}")
def start_workloads(
    cluster: str, namespace: str, workloads: list[str], timeout_seconds: float
) -> list[str]:
    """Scale each stopped workload back to its recorded replicas and wait for the
    rollout; a stopped one without a record is a ConfigurationError naming it."""
    block = _cluster(cluster)
    namespace = namespace or block.namespace
    log, lines, started = default_logger(), [], []
    with block.kubectl() as kubectl:
        states = [_read(kubectl, namespace, w, cluster) for w in workloads]
        unknown = [s.workload for s in states if s.replicas == 0 and s.recorded is None]
        if unknown:
            raise ConfigurationError(
                f"{', '.join(unknown)} in {namespace}: stopped, but no stop of service-power "
                "recorded how many replicas they ran; start them by hand (`kubectl scale "
                "--replicas=N`)"
            )
        for state in states:
            if state.replicas > 0:
                lines.append(f"{state.workload}: already running ({state.replicas} replicas)")
                if state.recorded is not None:
                    PowerRecord(cluster, namespace, state.workload).clear()
                continue
            _scale(kubectl, namespace, state.workload, state.recorded or 0)
            started.append(state)
        try:
            kubectl.rollout(
                [s.workload for s in started], namespace, time.monotonic() + timeout_seconds
            )
        except KubernetesError as exc:
            raise KubernetesError(f"{exc} (its recorded replica count is kept)") from None
        for state in started:
            PowerRecord(cluster, namespace, state.workload).clear()
            lines.append(f"{state.workload}: started ({state.recorded} replicas ready)")
            log.info("%s", lines[-1])
    return lines
