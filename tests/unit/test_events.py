"""The event vocabulary: one name per repository however written, stable ids, payloads
that match the documented contract, and the template check automations rely on."""

from __future__ import annotations

import pytest

from prefect_stacks import events
from prefect_stacks.events.automations import check_template, expected_specs, template_references
from prefect_stacks.exceptions import ConfigurationError


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Acme/Shop.git",
        "https://github.com/acme/shop",
        "https://x-access-token:secret@github.com/acme/shop.git/",
        "git@github.com:Acme/shop.git",
        "ssh://git@github.com/acme/shop",
    ],
)
def test_one_name_per_repository(url):
    assert events.normalize_repository(url) == "github.com/acme/shop"


def test_local_and_port_forms_and_bad_urls():
    assert events.normalize_repository("/srv/git/Repo.git") == "file/srv/git/Repo"
    assert events.normalize_repository("file:///srv/git/Repo.git") == "file/srv/git/Repo"
    assert events.normalize_repository("ssh://git@host:2222/a/b.git") == "host:2222/a/b"
    for bad in ("", "not a url", "https://github.com/"):
        with pytest.raises(ConfigurationError):
            events.normalize_repository(bad)


def test_credentials_never_reach_an_event():
    event = events.git_commit("https://user:hunter2@github.com/acme/shop.git", "main", "a" * 40)
    assert "hunter2" not in event.model_dump_json()


def test_the_same_change_is_the_same_event_and_a_new_one_is_not():
    a = events.git_commit("https://github.com/acme/shop", "main", "1" * 40, "0" * 40)
    b = events.git_commit("git@github.com:acme/shop.git", "main", "1" * 40, None)
    c = events.git_commit("git@github.com:acme/shop.git", "main", "2" * 40, "1" * 40)
    assert a.id == b.id and a.id != c.id
    assert a.payload["before"] is None  # all-zero "no previous commit" is null
    assert a.resource.id == "stacks.git.github.com/acme/shop@main"
    assert a.resource["stacks.branch"] == "main"


def test_every_builder_fills_exactly_its_documented_payload():
    built = [
        events.git_commit("https://github.com/a/b", "main", "s"),
        events.pull_request(
            "opened",
            repository="https://github.com/a/b",
            number=7,
            head_ref="x",
            head_sha="s",
            base_ref="main",
        ),
        events.image_updated("127.0.0.1:5000", "acme/shop", "1.0", "sha256:" + "f" * 64),
        events.release_published("https://github.com/a/b", "v1.0"),
        events.environment_event(
            "created",
            name="demo-1",
            kind="demo",
            state="ready",
            url=None,
            owner=None,
            expires_at=None,
            version="1",
        ),
    ]
    for event in built:
        spec = events.VOCABULARY[event.event]
        assert set(event.payload) == set(spec.payload), event.event
        assert set(spec.labels) <= set(event.resource.root), event.event
    with pytest.raises(ConfigurationError, match="not a prefect-stacks event"):
        events.spec("stacks.nope")


def test_template_references_and_checks():
    refs = template_references(
        "{{ event.payload.sha[:7] }}-{{ event.resource['stacks.branch'] | lower }}"
        "{% if event.payload.before %}x{% endif %}{{ flow_run.name }}"
    )
    assert ["event", "payload", "sha"] in refs
    assert ["event", "resource", "stacks.branch"] in refs
    assert ["event", "payload", "before"] in refs
    assert all(r[0] == "event" for r in refs)
    specs = expected_specs(["stacks.git.commit"])
    assert check_template("{{ event.payload.sha }}", specs) == []
    assert "brnch" in check_template("{{ event.payload.brnch }}", specs)[0]
    # events that are not ours are not checked
    assert expected_specs(["prefect.flow-run.Completed"]) is None
    assert len(expected_specs(["stacks.pull-request.*"])) == 4
