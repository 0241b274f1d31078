"""Events: one place for event names, resource ids and payloads; emitting; watching.

* :mod:`~prefect_stacks.events.vocabulary`: every event name (``VOCABULARY``) and the
  builders watchers and webhooks make their events with (``git_commit`` ...).
* :mod:`~prefect_stacks.events.emit`: ``emit``/``aemit``, which return once the server
  accepted the events or raise ``EmitError``.
* :mod:`~prefect_stacks.events.watching`: ``WatcherState`` and the one watch loop,
  ``watch()``.
* :mod:`~prefect_stacks.events.automations`: automations as code, checked against the
  vocabulary (imported on its own: ``from prefect_stacks.events import automations``).

Callers use the names here (``from prefect_stacks import events; events.emit(...)``).
``events.emit`` is the function; its module is ``prefect_stacks.events.emit`` (to patch
what the watch loop emits with, patch ``prefect_stacks.events.watching.emit``).
"""

from __future__ import annotations

from prefect_stacks.events.emit import EmitError, aemit, emit
from prefect_stacks.events.vocabulary import (
    EVENT_ID_NAMESPACE,
    EVENT_NAMES,
    PR_TRANSITION_FIELDS,
    VOCABULARY,
    EventSpec,
    deploy_rolled_back,
    deploy_succeeded,
    environment_event,
    event_id,
    git_commit,
    image_updated,
    normalize_repository,
    pull_request,
    release_published,
    spec,
    stack_applied,
    stack_drift_resolved,
    stack_drifted,
    transition_instant,
)
from prefect_stacks.events.watching import (
    BASELINE_KEY,
    EMIT_BATCH,
    WATCH_PREFIX,
    WATCH_TAG,
    WatcherState,
    default_watcher_name,
    validate_watcher_name,
    watch,
)

__all__ = [
    "BASELINE_KEY",
    "EMIT_BATCH",
    "EVENT_ID_NAMESPACE",
    "EVENT_NAMES",
    "PR_TRANSITION_FIELDS",
    "VOCABULARY",
    "WATCH_PREFIX",
    "WATCH_TAG",
    "EmitError",
    "EventSpec",
    "WatcherState",
    "aemit",
    "default_watcher_name",
    "deploy_rolled_back",
    "deploy_succeeded",
    "emit",
    "environment_event",
    "event_id",
    "git_commit",
    "image_updated",
    "normalize_repository",
    "pull_request",
    "release_published",
    "spec",
    "stack_applied",
    "stack_drift_resolved",
    "stack_drifted",
    "transition_instant",
    "validate_watcher_name",
    "watch",
]
