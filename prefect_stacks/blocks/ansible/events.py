"""ansible-runner's events as log lines: one per play, task and host result, as they
happen; a failure carries the module's own message, stdout and stderr, whole."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect_stacks._internal.process import Redactor


@dataclass
class Seen:
    """What the events told beyond the recap: each host's first failure (not an ignored
    one), and the loop items each task changed per host (what a stop really stopped)."""

    failures: dict[str, str] = field(default_factory=dict)
    changed_items: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    item_messages: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def items_changed(self, task_name: str) -> dict[str, list[str]]:
        """``{host: [items]}`` that the task ``task_name`` changed."""
        return {
            host: tasks[task_name]
            for host, tasks in sorted(self.changed_items.items())
            if tasks.get(task_name)
        }


def event_logger(log: Any, redact: Redactor, seen: Seen) -> Callable[[dict[str, Any]], bool]:
    """ansible-runner's event handler: one log line per play, task and host result, and
    what :class:`Seen` keeps."""

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        host = data.get("host", "?")
        line = describe_event(event)
        if line is not None:
            level, text = line
            log.log(level, "%s", redact(text))
            if level >= logging.ERROR:
                seen.failures.setdefault(host, redact(text.split("] ", 1)[-1]))
        res = data.get("res") or {}
        if event.get("event") == "runner_item_on_ok":
            task_name = data.get("task") or ""
            if res.get("changed"):
                changed = seen.changed_items.setdefault(host, {})
                changed.setdefault(task_name, []).append(str(res.get("item")))
            if res.get("msg"):
                said = seen.item_messages.setdefault(host, {})
                said.setdefault(task_name, []).append(redact(str(res["msg"])))
        return True

    return handle


def describe_event(event: dict[str, Any]) -> tuple[int, str] | None:
    """The log line (level, text) of one ansible-runner event, or None for the events
    that say nothing on their own (verbose output, stats: the recap has them)."""
    kind = event.get("event", "")
    data = event.get("event_data") or {}
    host = data.get("host", "?")
    task_name = data.get("task") or data.get("task_action") or ""
    res = data.get("res") or {}
    if kind == "playbook_on_play_start":
        return logging.INFO, f"PLAY [{data.get('play', '')}]"
    if kind == "runner_on_ok":
        state = "changed" if res.get("changed") else "ok"
        return logging.INFO, f"{state}: [{host}] {task_name}{_said(res, brief=True)}"
    if kind == "runner_on_skipped":
        return logging.INFO, f"skipping: [{host}] {task_name}"
    if kind == "runner_on_failed":
        ignored = data.get("ignore_errors")
        level = logging.WARNING if ignored else logging.ERROR
        return level, f"failed{' (ignored)' if ignored else ''}: [{host}] {task_name}{_said(res)}"
    if kind == "runner_on_unreachable":
        return logging.ERROR, f"unreachable: [{host}] {task_name}{_said(res)}"
    if kind == "runner_item_on_failed":
        return logging.ERROR, f"failed item: [{host}] {task_name}{_said(res)}"
    return None


def _said(res: dict[str, Any], brief: bool = False) -> str:
    """What a module said: its msg (and, for a failure, its stdout and stderr, whole)."""
    parts = []
    msg = res.get("msg")
    if msg and not (brief and msg == "All items completed"):
        parts.append(str(msg))
    if not brief:
        for key in ("stderr", "stdout", "module_stderr"):
            value = res.get(key)
            if value:
                parts.append(f"{key}: {value}")
    return (": " + " | ".join(parts)) if parts else ""
