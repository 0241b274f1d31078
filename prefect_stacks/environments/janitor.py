"""What the janitor does with the ledger: find the environments to tear down (expired
ones whose teardown did not happen, ``destroying`` ones whose teardown run died), to warn
before expiry, and destroyed entries past retention; then do it, one entry at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prefect import get_run_logger

from prefect_stacks.environments.ledger import EnvironmentLedger
from prefect_stacks.environments.lifecycle import teardown_in_progress
from prefect_stacks.environments.messages import say
from prefect_stacks.environments.models import Environment, EnvironmentState, utcnow
from prefect_stacks.environments.teardown import WAITING, teardown
from prefect_stacks.exceptions import LedgerError


@dataclass
class JanitorWork:
    """Names per action; ``waiting`` and ``failed`` are filled while tearing down."""

    teardown: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    warn: list[str] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    takeover: set[str] = field(default_factory=set)  # destroying ones: reason "requested"

    def report(self) -> dict[str, list[str]]:
        return {
            "teardown": self.teardown,
            "waiting": self.waiting,
            "warn": self.warn,
            "prune": self.prune,
            "failed": self.failed,
        }


def find_work(
    entries: list[Environment],
    now: datetime,
    *,
    warn_before_seconds: float,
    stale_after_seconds: float,
    retention_days: int,
) -> JanitorWork:
    work = JanitorWork()
    for env in entries:
        if env.is_live and env.is_expired(now):
            if not teardown_in_progress(env, now, stale_after_seconds, None):
                work.teardown.append(env.name)
        elif env.state == EnvironmentState.destroying and not teardown_in_progress(
            env, now, stale_after_seconds, None
        ):
            # A requested (or kept environment's) teardown whose run died: finish it.
            work.teardown.append(env.name)
            work.takeover.add(env.name)
        elif (
            env.is_live
            and env.state != EnvironmentState.destroying
            and env.expires_at is not None
            and env.warned_at is None
            and env.expires_at - now <= timedelta(seconds=warn_before_seconds)
        ):
            work.warn.append(env.name)
        elif (
            env.state == EnvironmentState.destroyed
            and env.destroyed_at is not None
            and now - env.destroyed_at > timedelta(days=retention_days)
        ):
            work.prune.append(env.name)
    return work


def warn_expiring(work: JanitorWork, ledger: EnvironmentLedger) -> None:
    """Say "expiring" once per environment (``warned_at`` remembers)."""
    for name in work.warn:
        say(ledger.update(name, lambda e: setattr(e, "warned_at", utcnow())), "expiring")


def tear_down(work: JanitorWork, ledger: EnvironmentLedger, stale_after_seconds: float) -> None:
    """Tear each one down now, without rescheduling (the next janitor pass looks again);
    a failure is recorded on the entry and in ``work.failed``, and the next one goes on."""
    for name in work.teardown:
        try:
            outcome = teardown(
                name,
                "requested" if name in work.takeover else "expired",
                stale_after=stale_after_seconds,
                ledger=ledger,
                reschedule=False,  # the next janitor pass looks again
            )
            if outcome == WAITING:
                work.waiting.append(name)
        except Exception as exc:  # recorded on the entry; the next janitor run retries
            get_run_logger().error("teardown of %s failed: %s", name, exc)
            work.failed.append(name)


def prune(work: JanitorWork, ledger: EnvironmentLedger) -> None:
    """Remove destroyed entries past retention from the ledger."""
    for name in work.prune:
        try:
            ledger.remove(name)
        except LedgerError as exc:
            get_run_logger().warning("%s", exc)
