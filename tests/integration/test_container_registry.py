"""The ContainerRegistry block against a real Distribution registry (Debian's
docker-registry 2.8): digests by HEAD for every manifest type, conditional HEADs,
basic auth, the tag policies and what each costs in requests. Images are pushed through
the registry API itself (tests/oci.py), so the pushed digest is known exactly."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prefect_docker.credentials import DockerRegistryCredentials
from pydantic import SecretStr

from prefect_stacks.blocks.registry import (
    ContainerRegistry,
    MutableTag,
    NewestBuildPolicy,
    RegexPolicy,
    SemverPolicy,
    resolve,
)
from prefect_stacks.exceptions import RegistryError
from tests.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Pusher

pytestmark = pytest.mark.integration


def repo() -> str:
    return f"team/app-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def block(registry: str) -> ContainerRegistry:
    return ContainerRegistry(url=f"http://{registry}", requests_per_second=100)


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_the_digest_is_the_pushed_manifests_for_images(registry, block, media_type):
    name = repo()
    pushed = Pusher(registry).image(name, "v1", media_type=media_type)
    with block.get_client() as client:
        assert client.digest(name, "v1") == pushed
    # what a client without the Accept list gets: not that digest (Distribution refuses)
    bare = httpx.head(f"http://{registry}/v2/{name}/manifests/v1")
    assert bare.headers.get("docker-content-digest") != pushed


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_the_digest_of_a_multi_platform_tag_is_the_index(registry, block, media_type):
    name = repo()
    pushed = Pusher(registry).index(name, "v1", media_type=media_type)
    with block.get_client() as client:
        assert client.digest(name, "v1") == pushed
        media, manifest, digest = client.manifest(name, "v1")
    assert media == media_type and digest == pushed
    assert manifest["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}


def test_an_unchanged_tag_answers_304_and_a_moved_tag_its_new_digest(registry, block):
    name = repo()
    push = Pusher(registry)
    first = push.image(name, "main", label="1")
    with block.get_client() as client:
        assert client.digest(name, "main") == first
        assert client.digest(name, "main") == first
        assert client.not_modified == 1  # the second HEAD was conditional, answered 304
        second = push.image(name, "main", label="2")
        assert client.digest(name, "main") == second
        assert client.not_modified == 1


def test_a_missing_tag_is_none_and_a_missing_repository_names_it(registry, block):
    name = repo()
    Pusher(registry).image(name, "v1")
    with block.get_client() as client:
        assert client.digest(name, "nope") is None
        with pytest.raises(RegistryError) as exc:
            client.tags("team/does-not-exist")
    assert exc.value.status == 404 and exc.value.code == "NAME_UNKNOWN"
    assert "team/does-not-exist" in str(exc.value) and "check the image name" in str(exc.value)


def test_a_tag_policy_costs_one_head_and_no_tag_list(registry, block):
    name = repo()
    pushed = Pusher(registry).image(name, "latest")
    with block.get_client() as client:
        found = resolve(client, name, MutableTag(tag="latest"))
        assert client.requests == 1
    assert found is not None and (found.tag, found.digest) == ("latest", pushed)


def test_semver_policy_picks_the_highest_allowed_tag(registry, block):
    name = repo()
    push = Pusher(registry)
    digests = {t: push.image(name, t) for t in ["v1.2.0", "v1.10.0", "v1.9.3", "v2.0.0-rc.1"]}
    push.image(name, "latest")
    with block.get_client() as client:
        stable = resolve(client, name, SemverPolicy(constraint="^1.2"))
        assert client.requests == 2  # the tag list, one HEAD
        pre = resolve(client, name, SemverPolicy(constraint=">=1", include_prereleases=True))
        none = resolve(client, name, SemverPolicy(constraint=">=3"))
    assert stable is not None and (stable.tag, stable.digest) == ("v1.10.0", digests["v1.10.0"])
    assert pre is not None and pre.tag == "v2.0.0-rc.1"
    assert none is None


def test_regex_policy_orders_by_the_named_group(registry, block):
    name = repo()
    push = Pusher(registry)
    for tag in ["main-9-abc1234", "main-10-def5678", "main-2-0123456", "feature-99-aaaaaaa"]:
        push.image(name, tag)
    numeric = RegexPolicy(pattern=r"^main-(?P<build>\d+)-[0-9a-f]{7}$", sort_by="build")
    lexical = numeric.model_copy(update={"order": "alphabetical"})
    with block.get_client() as client:
        assert resolve(client, name, numeric).tag == "main-10-def5678"
        assert resolve(client, name, lexical).tag == "main-9-abc1234"


def test_newest_build_policy_follows_the_image_built_last(registry, block):
    name = repo()
    push = Pusher(registry)
    push.image(name, "zzz-old", created="2026-01-01T00:00:00Z")
    newest = push.image(name, "aaa-new", created="2026-03-01T10:00:00.123456789Z")
    push.index(name, "mmm-mid", created="2026-02-01T00:00:00Z")
    with block.get_client() as client:
        found = resolve(client, name, NewestBuildPolicy())
        spent = client.requests
        again = resolve(client, name, NewestBuildPolicy())
        # a HEAD per tag; the tag list and the configs were read once by this client
        assert client.requests - spent == 4
    assert found is not None and (found.tag, found.digest) == ("aaa-new", newest)
    assert again == found


def test_basic_auth_without_wrong_and_right_credentials(registry_with_login):
    address, user, password = registry_with_login
    name = repo()
    Pusher(address, auth=(user, password)).image(name, "v1")
    url = f"http://{address}"

    def with_password(value: str) -> ContainerRegistry:
        creds = DockerRegistryCredentials(
            username=user, password=SecretStr(value), registry_url=address
        )
        return ContainerRegistry(url=url, credentials=creds)

    with ContainerRegistry(url=url).get_client() as client, pytest.raises(RegistryError) as none:
        client.digest(name, "v1")
    assert none.value.status == 401 and "`credentials`" in str(none.value)
    with with_password("wrong-" + password).get_client() as client:
        with pytest.raises(RegistryError) as wrong:
            client.digest(name, "v1")
    assert wrong.value.status == 401 and password not in str(wrong.value)
    with with_password(password).get_client() as client:
        assert client.digest(name, "v1", ) is not None  # fmt: skip
        assert client.tags(name) == ["v1"]
