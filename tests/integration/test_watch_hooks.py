"""The hooks of the one watch loop (``watch(on_new=, confirm_gone=, on_gone=)``) on a real
(throwaway) Prefect server: the state is real Prefect variables and the events are really
posted; a spy around the emitter records the order of events and hooks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prefect import flow

from prefect_stacks import events
from prefect_stacks.events import watching
from prefect_stacks.events.watching import WatcherState, watch

pytestmark = pytest.mark.integration

REPOSITORY = "https://github.com/acme/hooks.git"


def make_event(key: str, version: str, previous: str | None):
    return events.git_commit(REPOSITORY, key, version, previous)


def gone_event(key: str):
    return events.pull_request(
        "closed",
        repository=REPOSITORY,
        number=int(key),
        head_ref=f"branch-{key}",
        head_sha="c" * 40,
        base_ref="main",
        at="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def watcher(prefect_harness) -> str:
    return "hooks-" + uuid.uuid4().hex[:8]


@pytest.fixture
def log(monkeypatch) -> list[tuple]:
    """What happened, in order: ("emit", [resource branch or number ...]) for every
    accepted post (the real emitter is called), and whatever the hooks append."""
    entries: list[tuple] = []
    real = watching.emit

    def spy(batch, **kwargs):
        real(batch, **kwargs)
        entries.append(("emit", [_what(e) for e in batch]))

    monkeypatch.setattr(watching, "emit", spy)
    return entries


def _what(event) -> str:
    return event.resource.get("stacks.pull-request.number") or event.resource["stacks.branch"]


def run(watcher: str, observed: dict[str, str], **hooks: Callable[..., Any]) -> dict:
    """``watch`` inside a flow run (it logs to the run), no baseline (as the PR watcher)."""

    @flow(name="watch-hooks")
    def watch_flow() -> dict:
        return watch(watcher, observed, make_event, baseline_on_first_run=False, **hooks)

    return watch_flow()


def saved(watcher: str) -> dict[str, str]:
    return {k: v for k, v in WatcherState(watcher).load().items() if k != events.BASELINE_KEY}


def test_on_new_runs_after_each_event_and_before_its_save(watcher: str, log: list):
    def on_new(key: str, version: str, previous: str | None) -> None:
        assert saved(watcher).get(key) == previous  # the version is saved after the hook
        log.append(("new", key, version, previous))

    report = run(watcher, {"a": "1", "b": "1", "c": "1"}, on_new=on_new)
    assert report == {"emitted": ["a", "b", "c"], "baseline": [], "forgotten": [], "kept": []}
    assert log == [
        ("emit", ["a"]),
        ("new", "a", "1", None),
        ("emit", ["b"]),
        ("new", "b", "1", None),
        ("emit", ["c"]),
        ("new", "c", "1", None),
    ]
    assert saved(watcher) == {"a": "1", "b": "1", "c": "1"}

    log.clear()
    assert run(watcher, {"a": "1", "b": "2", "c": "1"}, on_new=on_new)["emitted"] == ["b"]
    assert log == [("emit", ["b"]), ("new", "b", "2", "1")]


def test_a_raising_on_new_leaves_the_key_for_the_next_run(watcher: str, log: list):
    def failing(key: str, version: str, previous: str | None) -> None:
        log.append(("new", key))
        if key == "b":
            raise RuntimeError("deploy failed")

    observed = {"a": "1", "b": "1", "c": "1"}
    with pytest.raises(RuntimeError, match="deploy failed"):
        run(watcher, observed, on_new=failing)
    # a is done; b's event was accepted but its hook failed; c was not reached
    assert log == [("emit", ["a"]), ("new", "a"), ("emit", ["b"]), ("new", "b")]
    assert saved(watcher) == {"a": "1"}

    log.clear()
    report = run(watcher, observed, on_new=lambda key, version, previous: log.append(("new", key)))
    assert report["emitted"] == ["b", "c"]
    assert log == [("emit", ["b"]), ("new", "b"), ("emit", ["c"]), ("new", "c")]
    assert saved(watcher) == observed


def test_confirm_gone_false_keeps_the_key(watcher: str, log: list):
    run(watcher, {"1": "x", "2": "y"})
    log.clear()
    asked: list[tuple[str, str]] = []

    def unconfirmed(key: str, previous: str):
        asked.append((key, previous))
        return False

    report = run(watcher, {"1": "x"}, confirm_gone=unconfirmed, on_gone=pytest.fail)
    assert report == {"emitted": [], "baseline": [], "forgotten": [], "kept": ["2"]}
    assert asked == [("2", "y")] and log == []
    assert saved(watcher) == {"1": "x", "2": "y"}


def test_an_event_from_confirm_gone_is_emitted_then_on_gone_then_the_key_forgotten(
    watcher: str, log: list
):
    run(watcher, {"1": "x", "2": "y", "3": "z"})
    log.clear()

    def on_gone(key: str, previous: str) -> None:
        assert key in saved(watcher)  # forgotten after the hook
        log.append(("gone", key, previous))

    report = run(
        watcher,
        {"1": "x"},
        confirm_gone=lambda key, previous: gone_event(key),
        on_gone=on_gone,
    )
    assert report == {"emitted": [], "baseline": [], "forgotten": ["2", "3"], "kept": []}
    assert log == [("emit", ["2"]), ("gone", "2", "y"), ("emit", ["3"]), ("gone", "3", "z")]
    assert saved(watcher) == {"1": "x"}


def test_confirm_gone_none_forgets_silently(watcher: str, log: list):
    run(watcher, {"1": "x", "2": "y"})
    log.clear()
    report = run(watcher, {"1": "x"}, confirm_gone=lambda key, previous: None, on_gone=pytest.fail)
    assert report["forgotten"] == ["2"] and log == []
    assert saved(watcher) == {"1": "x"}


def test_a_raising_on_gone_keeps_the_key(watcher: str, log: list):
    run(watcher, {"1": "x", "2": "y"})
    log.clear()

    def failing(key: str, previous: str) -> None:
        raise RuntimeError("cleanup failed")

    with pytest.raises(RuntimeError, match="cleanup failed"):
        run(
            watcher, {"1": "x"}, confirm_gone=lambda key, previous: gone_event(key), on_gone=failing
        )
    assert log == [("emit", ["2"])]
    assert saved(watcher) == {"1": "x", "2": "y"}  # asked again next run


def test_new_versions_then_vanished_keys_in_one_run(watcher: str, log: list):
    """The pull-request watcher's run: new and updated ones first, then the vanished."""
    run(watcher, {"1": "x", "2": "y"})
    log.clear()
    report = run(
        watcher,
        {"1": "x2", "3": "z"},
        on_new=lambda key, version, previous: log.append(("new", key, previous)),
        confirm_gone=lambda key, previous: gone_event(key),
        on_gone=lambda key, previous: log.append(("gone", key)),
    )
    assert report == {"emitted": ["1", "3"], "baseline": [], "forgotten": ["2"], "kept": []}
    assert log == [
        ("emit", ["1"]),
        ("new", "1", "x"),
        ("emit", ["3"]),
        ("new", "3", None),
        ("emit", ["2"]),
        ("gone", "2"),
    ]


def test_the_baseline_is_storable_by_postgresql_and_an_old_nul_one_still_counts(watcher: str):
    # a PostgreSQL-backed server refuses "\u0000" in a Variable (JSONB): the key the
    # watcher used before, which a SQLite-backed server still holds
    assert "\x00" not in events.BASELINE_KEY
    state = WatcherState(watcher)
    state.save("\x00baseline", "1")
    state.save("img:1", "sha256:a")
    # so the next poll is no silent first run
    assert state.load() == {events.BASELINE_KEY: "1", "img:1": "sha256:a"}
