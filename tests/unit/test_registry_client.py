"""The registry client against the hosted-registry contract fake (tests/fakes/oci_registry.py):
the bearer-token flow with a token service on another origin, anonymous and with
credentials; tag lists paginated by Link; a 429 waited out; requests paced."""

from __future__ import annotations

import pytest
from prefect_docker.credentials import DockerRegistryCredentials
from pydantic import SecretStr

from prefect_stacks.blocks.registry import ContainerRegistry, SemverPolicy, resolve
from prefect_stacks.blocks.registry.auth import parse_challenge
from prefect_stacks.exceptions import RegistryError
from tests.fakes.oci_registry import FakeOCIRegistry
from tests.oci import DOCKER_MANIFEST

MANIFEST = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {}, "layers": []}


@pytest.fixture
def fake():
    with FakeOCIRegistry(users={"ci": "s3cret-pw"}, public={"library/web"}) as server:
        yield server


def block(
    fake: FakeOCIRegistry, password: str | None = None, rps: float = 100
) -> ContainerRegistry:
    creds = None
    if password is not None:
        creds = DockerRegistryCredentials(
            username="ci", password=SecretStr(password), registry_url=fake.base_url
        )
    return ContainerRegistry(url=fake.base_url, credentials=creds, requests_per_second=rps)


def test_parse_challenge():
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer" and c.realm == "https://auth.example/token"
    assert c.params["scope"] == "repository:a/b:pull,push" and c.params["service"] == "reg"
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"
    assert parse_challenge("") is None


def test_an_anonymous_token_for_a_public_repository_is_fetched_once(fake):
    digest = fake.push("library/web", "1.0", DOCKER_MANIFEST, MANIFEST)
    with block(fake).get_client() as client:
        assert client.digest("library/web", "1.0") == digest
        assert client.digest("library/web", "1.0") == digest
    assert len(fake.tokens.requests) == 1  # the token is reused
    statuses = [r.status for r in fake.requests]
    assert statuses == [401, 200, 304]  # the challenge, the answer, then conditional


def test_a_private_repository_needs_credentials_and_names_them(fake):
    fake.push("acme/private", "1.0", DOCKER_MANIFEST, MANIFEST)
    with block(fake).get_client() as client, pytest.raises(RegistryError) as anonymous:
        client.digest("acme/private", "1.0")
    assert anonymous.value.status == 401 and "`credentials`" in str(anonymous.value)
    with block(fake, "wrong").get_client() as client, pytest.raises(RegistryError) as wrong:
        client.digest("acme/private", "1.0")
    assert "token service" in str(wrong.value) and "wrong" not in str(wrong.value)
    with block(fake, "s3cret-pw").get_client() as client:
        assert client.digest("acme/private", "1.0").startswith("sha256:")


def test_tags_are_read_page_by_page(fake):
    for i in range(250):
        fake.push("library/web", f"1.{i}.0", DOCKER_MANIFEST, {**MANIFEST, "i": i})
    with block(fake).get_client() as client:
        tags = client.tags("library/web")
        best = resolve(client, "library/web", SemverPolicy(constraint="^1"))
    assert len(tags) == 250 and len(set(tags)) == 250
    pages = [r for r in fake.requests if "/tags/list" in r.path and r.status == 200]
    assert len(pages) == 3  # 100 + 100 + 50, once: the policy shares the client's listing
    assert best is not None and best.tag == "1.249.0"


def test_a_429_is_waited_out_as_retry_after_says(fake):
    digest = fake.push("library/web", "1.0", DOCKER_MANIFEST, MANIFEST)
    with block(fake).get_client() as client:
        client.digest("library/web", "1.0")
        fake.rate_limit(1, retry_after=1)
        assert client.digest("library/web", "1.0") == digest
    limited = next(i for i, r in enumerate(fake.requests) if r.status == 429)
    after = fake.requests[limited + 1]
    assert after.at - fake.requests[limited].at >= 0.95  # waited, not retried at once


def test_requests_to_one_registry_are_spaced_never_a_burst(fake):
    fake.push("library/web", "1.0", DOCKER_MANIFEST, MANIFEST)
    with block(fake, rps=10).get_client() as a, block(fake, rps=10).get_client() as b:
        for client in (a, b, a, b, a, b):
            client.digest("library/web", "1.0")  # two clients, one budget
    times = [r.at for r in fake.requests]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.09, gaps
