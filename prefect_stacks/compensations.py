"""Compensations a run owes, kept on the Prefect server so that they outlive the run.

A job that changes something it must change back (a silence it set, maintenance it
switched on) records the undo *before* it makes the change: one Prefect Variable per
flow run (``stacks-compensations-<flow run id>``, a list in the order owed). They are
settled, last owed first, whichever way the run ends:

* by the flow itself (its ``finally``), when it ends on its own, fails or raises;
* by Prefect's ``on_crashed`` and ``on_cancellation`` hooks, which the **worker** runs
  after the flow's process is gone (killed, out of memory, cancelled from the UI).

A Prefect transaction's rollback hooks would run in the flow's own process, which a
killed run no longer has; so the record is on the server and the hooks read it there.
Each compensation is idempotent (an expired silence, maintenance already off are
success), so settling twice (the flow's ``finally`` and a hook, on a cancel) is safe.
One that fails stays in the record, is reported, and the next settle tries it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_client

from prefect_stacks._internal.process import default_logger
from prefect_stacks._internal.variables import upsert_variable

PREFIX = "stacks-compensations-"
TAG = "prefect-stacks-compensations"


def _expire_silence(args: dict[str, Any], log: Any) -> str:
    from prefect_stacks.blocks.alertmanager import Alertmanager

    block = Alertmanager.load(args["alertmanager"], _sync=True)
    with block.get_client() as client:
        expired = client.expire_silence(args["silence_id"])
    return "expired" if expired else "was already expired"


def _maintenance_off(args: dict[str, Any], log: Any) -> str:
    from prefect_stacks.blocks.ansible import AnsiblePlaybook

    block = AnsiblePlaybook.load(args["playbook"], _sync=True)
    run = block.prepare(extra_vars={"maintenance_state": "off"}, limit=args.get("limit") or "")
    run.log = log
    result = run.run()
    return f"off on {', '.join(result.hosts)}"


ACTIONS: dict[str, Callable[[dict[str, Any], Any], str]] = {
    "expire-silence": _expire_silence,
    "maintenance-off": _maintenance_off,
}


class Compensations:
    """The compensations flow run ``flow_run_id`` owes."""

    def __init__(self, flow_run_id: str) -> None:
        self.flow_run_id = str(flow_run_id)
        self.name = PREFIX + self.flow_run_id

    def owed(self) -> list[dict[str, Any]]:
        with get_client(sync_client=True) as client:
            variable = client.read_variable_by_name(self.name)
        value = variable.value if variable is not None else None
        return list(value) if isinstance(value, list) else []

    def owe(self, kind: str, label: str, **args: Any) -> None:
        """Record an undo before the change it undoes (a change made without its undo
        recorded could not be undone after a crash)."""
        if kind not in ACTIONS:
            raise ValueError(f"unknown compensation {kind!r}")
        self._save([*self.owed(), {"kind": kind, "label": label, "args": args}])

    def forget(self, kind: str) -> None:
        """Drop the owed compensations of ``kind``: the flow undid the change itself."""
        self._save([c for c in self.owed() if c["kind"] != kind])

    def settle(self, log: Any = None) -> list[str]:
        """Run every owed compensation, last owed first; each one done leaves the record
        at once. Returns the failures (``label: error``); those stay owed."""
        log = log or default_logger()
        failures: list[str] = []
        for item in reversed(self.owed()):
            label = item.get("label", item["kind"])
            try:
                said = ACTIONS[item["kind"]](item.get("args") or {}, log)
            except Exception as exc:  # noqa: BLE001 - each one is tried; the rest go on
                failures.append(f"{label}: {type(exc).__name__}: {exc}")
                log.error("compensation %s failed: %s", label, exc)
                continue
            log.info("compensation %s: %s", label, said)
            self._save([c for c in self.owed() if c != item])
        return failures

    def _save(self, items: list[dict[str, Any]]) -> None:
        with get_client(sync_client=True) as client:
            if items:
                upsert_variable(client, self.name, items, [TAG])
            elif client.read_variable_by_name(self.name) is not None:
                client.delete_variable_by_name(self.name)


def settle_after_the_process(flow: Any, flow_run: Any, state: Any) -> None:
    """The ``on_crashed`` / ``on_cancellation`` hook: the worker runs it once the flow's
    process is gone, and it settles what that run still owed."""
    from prefect.logging.loggers import flow_run_logger

    log = flow_run_logger(flow_run, flow)
    owed = Compensations(flow_run.id)
    if not owed.owed():
        return
    log.warning("the run ended %s: settling what it still owed", state.name)
    failures = owed.settle(log)
    if failures:
        log.error("still owed after the run ended %s: %s", state.name, "; ".join(failures))


__all__ = ["ACTIONS", "Compensations", "settle_after_the_process"]
