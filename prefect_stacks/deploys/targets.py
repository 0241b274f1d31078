"""What has been deployed where: one record per target (a cluster, a namespace, a
workload), on the Prefect server as one Prefect Variable (``stacks-deploy-<hash>``,
tagged ``prefect-stacks:deploy``).

A record holds the digest running now, the last known-good one (and a few before it, so
"roll back to the previous one" has an answer), the digests in quarantine for this target
(a deploy of them failed: no watcher or automation deploys them again), and a pin (a
manual rollback: nothing else is deployed until someone unpins it).

Every read-modify-write holds the target's own lock (a Prefect global concurrency limit of
1, leased: :func:`prefect_stacks.environments.locks.hold_limit`), for the whole deploy, so
two deploys of one target never interleave.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from prefect import get_client
from pydantic import BaseModel, Field

from prefect_stacks._internal.variables import upsert_variable
from prefect_stacks.deploys.models import MethodSpec
from prefect_stacks.environments.locks import LimitBusy, ensure_limit, hold_limit
from prefect_stacks.environments.models import utcnow
from prefect_stacks.exceptions import ConfigurationError, DeployError

RECORD_PREFIX = "stacks-deploy-"
RECORD_TAG = "prefect-stacks:deploy"
LOCK_PREFIX = "prefect-stacks-deploy-"
MAX_VALUE_CHARS = 4800  # a Variable holds 5,000; the record trims its oldest lists to fit
HISTORY = 5
QUARANTINE = 8
REASON_CHARS = 160
_WORKLOAD_RE = re.compile(r"^(deployment|statefulset|daemonset)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
T = TypeVar("T")


def check_workload(value: str) -> str:
    value = value.strip().lower()
    if not _WORKLOAD_RE.match(value):
        raise ConfigurationError(
            f"workload {value!r} is not `<kind>/<name>` with kind deployment, statefulset "
            "or daemonset (e.g. `deployment/web`)"
        )
    return value


class Target(BaseModel):
    """Where a deploy goes: a KubernetesCluster block, a namespace, a workload."""

    cluster: str = Field(description="Name of the KubernetesCluster block.")
    namespace: str = Field(description="Namespace of the workload.")
    workload: str = Field(description="`deployment/<name>` (or statefulset, daemonset).")

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.workload}"

    @property
    def variable(self) -> str:
        return RECORD_PREFIX + hashlib.sha1(self.key.encode()).hexdigest()[:24]

    @property
    def lock(self) -> str:
        return LOCK_PREFIX + hashlib.sha1(self.key.encode()).hexdigest()[:16]


class Release(BaseModel):
    """One image as deployed to a target."""

    digest: str
    tag: str | None = None
    method: str = ""
    at: datetime = Field(default_factory=utcnow)
    run: str | None = Field(default=None, description="Flow run that deployed it.")


class Quarantined(BaseModel):
    digest: str
    reason: str
    at: datetime = Field(default_factory=utcnow)
    run: str | None = None


class Pin(BaseModel):
    digest: str
    reason: str
    at: datetime = Field(default_factory=utcnow)
    run: str | None = None


class TargetRecord(BaseModel):
    target: Target
    repository: str | None = Field(default=None, description="Image repository deployed.")
    method: MethodSpec | None = Field(default=None, description="How it was last deployed.")
    deployed: Release | None = None
    known_good: Release | None = None
    history: list[Release] = Field(
        default_factory=list, description="Earlier known-good releases, newest first."
    )
    quarantined: list[Quarantined] = Field(default_factory=list)
    pinned: Pin | None = None
    revision: int = 0

    # ------------------------------------------------------------------ questions
    def quarantine_of(self, digest: str) -> Quarantined | None:
        return next((q for q in self.quarantined if q.digest == digest), None)

    def refusal(self, digest: str, force: bool = False) -> str | None:
        """Why ``digest`` must not be deployed now (None: it may be). A pin holds against
        everything but its own digest; ``force`` lifts a quarantine, never a pin."""
        if self.pinned and self.pinned.digest != digest:
            return (
                f"{self.target.key} is pinned to {self.pinned.digest[:19]} since "
                f"{self.pinned.at:%Y-%m-%d %H:%M} UTC ({self.pinned.reason}); run the "
                "kubernetes-unpin deployment to let deploys through again"
            )
        quarantined = self.quarantine_of(digest)
        if quarantined and not force:
            return (
                f"{digest[:19]} is quarantined for {self.target.key} since "
                f"{quarantined.at:%Y-%m-%d %H:%M} UTC ({quarantined.reason}); push a newer "
                "image, or deploy it with force=true"
            )
        return None

    def previous(self) -> Release | None:
        """The known-good release before the one deployed now: what a rollback without a
        digest goes back to."""
        current = self.deployed.digest if self.deployed else None
        for release in [self.known_good, *self.history]:
            if release is not None and release.digest != current:
                return release
        return None

    # ------------------------------------------------------------------ changes
    def record_good(self, release: Release, repository: str, method: MethodSpec) -> None:
        """``release`` is running and passed its checks: deployed and known-good."""
        self.repository, self.method = repository, method
        if self.known_good and self.known_good.digest != release.digest:
            skip = (release.digest, self.known_good.digest)
            older = [r for r in self.history if r.digest not in skip]
            self.history = [self.known_good, *older][:HISTORY]
        self.deployed = release
        self.known_good = release
        # a digest that now works is no longer in quarantine (it was deployed with force)
        self.quarantined = [q for q in self.quarantined if q.digest != release.digest]

    def quarantine(self, digest: str, reason: str, run: str | None) -> TargetRecord:
        """Keep ``digest`` off this target (newest first, the oldest dropped); the record."""
        self.quarantined = [q for q in self.quarantined if q.digest != digest]
        self.quarantined.insert(0, Quarantined(digest=digest, reason=_clip(reason), run=run))
        del self.quarantined[QUARANTINE:]
        return self

    def roll_back_to(self, release: Release) -> None:
        """``release`` runs again (after a failed deploy); it stays the known-good one."""
        self.deployed = release

    def pin(self, release: Release, reason: str, run: str | None) -> None:
        """``release`` runs, and nothing else is deployed until :meth:`unpin`."""
        self.deployed = release
        self.pinned = Pin(digest=release.digest, reason=_clip(reason), run=run)

    def unpin(self) -> Pin | None:
        """Let deploys through again; the pin there was."""
        was, self.pinned = self.pinned, None
        return was

    def value(self) -> dict:
        """The JSON value to store, trimmed (oldest history, then oldest quarantines)
        until it fits in a Variable."""
        while True:
            value = self.model_dump(mode="json")
            if len(json.dumps(value)) <= MAX_VALUE_CHARS:
                return value
            if self.history:
                self.history.pop()
            elif len(self.quarantined) > 1:
                self.quarantined.pop()
            else:  # cannot happen with clipped reasons; never write a truncated record
                raise DeployError(f"the deploy record of {self.target.key} does not fit")


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


# --------------------------------------------------------------------------- the store
class DeployRecords:
    """Target records on the Prefect server (``PREFECT_API_URL``)."""

    lock_timeout_seconds: float = 600

    @contextmanager
    def locked(self, target: Target) -> Iterator[None]:
        """Hold ``target``'s lock (for a whole deploy)."""
        with get_client(sync_client=True) as client:
            ensure_limit(client, target.lock, f"deploys to {target.key}")
        try:
            with hold_limit(target.lock, self.lock_timeout_seconds):
                yield
        except LimitBusy as exc:
            raise DeployError(
                f"another deploy of {target.key} held its lock for "
                f"{self.lock_timeout_seconds:.0f}s ({target.lock}); try again when it ends"
            ) from exc

    def load(self, target: Target) -> TargetRecord:
        with get_client(sync_client=True) as client:
            variable = client.read_variable_by_name(target.variable)
        if variable is None:
            return TargetRecord(target=target)
        return TargetRecord.model_validate(variable.value)

    def save(self, record: TargetRecord) -> TargetRecord:
        record.revision += 1
        with get_client(sync_client=True) as client:
            upsert_variable(client, record.target.variable, record.value(), [RECORD_TAG])
        return record

    def update(self, target: Target, change: Callable[[TargetRecord], T]) -> T:
        """Read, ``change``, write; the caller holds :meth:`locked`."""
        record = self.load(target)
        result = change(record)
        self.save(record)
        return result
