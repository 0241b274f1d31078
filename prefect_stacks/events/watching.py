"""Watching: what a watcher has seen (:class:`WatcherState`, on the Prefect server) and
the one watch loop (:func:`watch`) every polling watcher runs (a "resource check").

A watcher observes versions of keys (branch -> head commit, tag -> digest, PR -> head
commit ...), compares them with what it saw last time, emits one event per new version,
and saves a key only after its event was accepted. A first run records a baseline instead
of flooding the automations with every existing branch (``baseline_on_first_run``).
Hooks let a watcher act on each change (the pull-request watcher deploys) and confirm a
key that vanished before it is forgotten (a pull request missing from a listing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import Logger, LoggerAdapter
from typing import Literal

from prefect import get_client, get_run_logger
from prefect.events import Event
from prefect.exceptions import ObjectNotFound

from prefect_stacks._internal.variables import (
    PartialListing,
    tagged_variable_values,
    upsert_variable,
)
from prefect_stacks.events.emit import emit
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError

WATCH_PREFIX = "stacks-watch-"
WATCH_TAG = "prefect-stacks:watch"
_WATCHER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# A key no watched version has. Not NUL, which it was: a PostgreSQL-backed server cannot
# store "\u0000" in a Variable (JSONB), and the watcher failed there on its first run.
BASELINE_KEY = "\x1fbaseline"
_LEGACY_BASELINE_KEY = "\x00baseline"  # what a SQLite-backed server may still hold


def validate_watcher_name(name: str) -> str:
    if not isinstance(name, str) or not _WATCHER_RE.match(name):
        raise ConfigurationError(
            f"{name!r} is not a valid watcher name: 1-63 lowercase letters, digits, '-' "
            "or '_' (it names the Prefect variables that hold what the watcher has seen)"
        )
    return name


def _key_variable(watcher: str, key: str) -> str:
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return f"{WATCH_PREFIX}{watcher}-{digest}"


class WatcherState:
    """What a watcher has seen, on the Prefect server: one Variable per watched key
    (``stacks-watch-<watcher>-<hash>``, value ``{"key", "version"}``) so there is no
    5,000-character cliff however many branches or tags are watched. A key is saved only
    after its event was accepted."""

    def __init__(self, watcher: str) -> None:
        self.watcher = validate_watcher_name(watcher)
        self.tag = f"{WATCH_TAG}:{watcher}"

    def load(self) -> dict[str, str]:
        try:
            with get_client(sync_client=True) as client:
                values = tagged_variable_values(client, self.tag)
        except PartialListing as exc:
            raise PrefectStacksError(
                f"watcher {self.watcher!r}: read {exc} state variables; not acting on a "
                "partial state (every version would look new)"
            ) from exc
        return {
            (BASELINE_KEY if v["key"] == _LEGACY_BASELINE_KEY else v["key"]): v.get("version")
            for v in values
            if isinstance(v, dict) and "key" in v
        }

    def save(self, key: str, version: str) -> None:
        name = _key_variable(self.watcher, key)
        value = {"key": key, "version": version}
        with get_client(sync_client=True) as client:
            upsert_variable(client, name, value, [WATCH_TAG, self.tag])

    def forget(self, key: str) -> None:
        with get_client(sync_client=True) as client:
            try:
                client.delete_variable_by_name(_key_variable(self.watcher, key))
            except ObjectNotFound:
                pass

    def reset(self) -> int:
        """Forget everything (the next run records a new baseline)."""
        keys = list(self.load())
        for key in keys:
            self.forget(key)
        return len(keys)


def default_watcher_name(kind: str, source: str) -> str:
    """``git-github-com-acme-shop-1a2b3c``: readable, unique per source, a valid name."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha1(source.encode()).hexdigest()[:6]
    return f"{kind}-{slug}-{digest}"


# --------------------------------------------------------------------------- the watch loop

EMIT_BATCH = 50

MakeEvent = Callable[[str, str, "str | None"], "Event | list[Event]"]
OnNew = Callable[[str, str, "str | None"], None]
ConfirmGone = Callable[[str, str], "Event | None | Literal[False]"]
OnGone = Callable[[str, str], None]


def watch(
    watcher: str,
    observed: dict[str, str],
    make_event: MakeEvent,
    *,
    baseline_on_first_run: bool = True,
    on_new: OnNew | None = None,
    confirm_gone: ConfirmGone | None = None,
    on_gone: OnGone | None = None,
    seen: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Emit one event per key whose version changed since the last run of ``watcher``.

    Args:
        watcher: name of the watcher's state on the server (lowercase, e.g. ``git-shop``).
        observed: key -> version, as the source reports it now.
        make_event: builds the event for ``(key, version, previous version or None)``,
            or a list of them (several releases of one repository; none when the new
            version concerns nobody: the key is saved all the same).
        baseline_on_first_run: on the very first run record what is there and emit
            nothing (False: every key is new and emits).
        on_new: called with ``(key, version, previous or None)`` after the key's event was
            accepted and before its version is saved; a raise leaves the key unsaved (seen
            again next run) and ends the run. With it, events go one at a time (event,
            hook, save), so no later event is emitted before an earlier hook ran.
        confirm_gone: called with ``(key, previous version)`` for a key that vanished from
            ``observed``: an Event is emitted and the key forgotten; None forgets it
            silently; False keeps it (unconfirmed, or still there). Without it, a vanished
            key is forgotten silently (if it comes back it is new again).
        on_gone: called with ``(key, previous version)`` after a confirmed-gone key's event
            was accepted and before the key is forgotten; a raise keeps the key.
        seen: the watcher's state as ``WatcherState(watcher).load()`` just returned it,
            for a watcher that needed it to observe (the registry watcher seeds its
            conditional requests with it); read here when not given.

    Returns ``{"emitted": [...], "baseline": [...], "forgotten": [...], "kept": [...]}``
    (keys, in the order handled: :func:`key_order`).
    """
    run = _WatchRun(watcher, WatcherState(watcher), get_run_logger())
    seen = run.state.load() if seen is None else seen
    first = BASELINE_KEY not in seen
    if first and baseline_on_first_run:
        run.record_baseline(observed)
        return run.report
    run.emit_changes(seen, observed, make_event, on_new)
    if first:
        run.state.save(BASELINE_KEY, "1")
    run.settle_vanished(seen, observed, confirm_gone, on_gone)
    run.logger.info(
        "%s: %d observed, %d new version(s) emitted, %d gone, %d kept",
        watcher,
        len(observed),
        len(run.report["emitted"]),
        len(run.report["forgotten"]),
        len(run.report["kept"]),
    )
    return run.report


def _as_list(built: Event | list[Event]) -> list[Event]:
    return built if isinstance(built, list) else [built]


def key_order(key: str) -> tuple[int, int, str]:
    """The order keys are handled in: numbers by value (pull request 9 before 10), then
    the rest as strings."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


@dataclass
class _WatchRun:
    """One run of :func:`watch`: its state, its logger and what it did so far."""

    watcher: str
    state: WatcherState
    logger: Logger | LoggerAdapter
    report: dict[str, list[str]] = field(
        default_factory=lambda: {"emitted": [], "baseline": [], "forgotten": [], "kept": []}
    )

    def record_baseline(self, observed: dict[str, str]) -> None:
        for key, version in sorted(observed.items(), key=lambda item: key_order(item[0])):
            self.state.save(key, version)
            self.report["baseline"].append(key)
        self.state.save(BASELINE_KEY, "1")
        self.logger.info(
            "%s: first run, recorded a baseline of %d version(s); nothing emitted "
            "(set baseline_on_first_run=False to emit them)",
            self.watcher,
            len(observed),
        )

    def emit_changes(
        self,
        seen: dict[str, str],
        observed: dict[str, str],
        make_event: MakeEvent,
        on_new: OnNew | None,
    ) -> None:
        changes = [
            (key, version, seen.get(key))
            for key, version in sorted(observed.items(), key=lambda item: key_order(item[0]))
            if seen.get(key) != version
        ]
        size = 1 if on_new is not None else EMIT_BATCH
        for start in range(0, len(changes), size):
            batch = changes[start : start + size]
            built = [
                _as_list(make_event(key, version, previous)) for key, version, previous in batch
            ]
            emit([event for events in built for event in events])  # raises before any
            # state is saved: the next run sees them again
            for (key, version, previous), events in zip(batch, built, strict=True):
                if on_new is not None:
                    on_new(key, version, previous)  # raises: unsaved, seen again next run
                self.state.save(key, version)
                self.report["emitted"].append(key)
                for event in events:
                    self.logger.info(
                        "%s: %s %s (event %s)", self.watcher, event.event, key, event.id
                    )
            done = start + len(batch)
            if len(changes) > EMIT_BATCH and (done % EMIT_BATCH == 0 or done == len(changes)):
                self.logger.info("%s: %d of %d emitted", self.watcher, done, len(changes))

    def settle_vanished(
        self,
        seen: dict[str, str],
        observed: dict[str, str],
        confirm_gone: ConfirmGone | None,
        on_gone: OnGone | None,
    ) -> None:
        for key in sorted(set(seen) - set(observed) - {BASELINE_KEY}, key=key_order):
            previous = seen[key]
            verdict = confirm_gone(key, previous) if confirm_gone is not None else None
            if verdict is False:
                self.report["kept"].append(key)
                self.logger.info(
                    "%s: %s is not observed but not confirmed gone: kept", self.watcher, key
                )
                continue
            if verdict is not None:
                if not isinstance(verdict, Event):
                    raise TypeError(
                        f"confirm_gone({key!r}) returned {verdict!r}: an Event, None or False"
                    )
                emit([verdict])  # raises: the key is kept, asked again next run
                self.logger.info(
                    "%s: %s %s (event %s)", self.watcher, verdict.event, key, verdict.id
                )
                if on_gone is not None:
                    on_gone(key, previous)
            self.state.forget(key)  # gone at the source; if it comes back it is new again
            self.report["forgotten"].append(key)
