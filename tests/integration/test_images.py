"""Image builds through prefect-docker on a real Docker engine, pushed to a real
Distribution registry: the pinned reference, Docker's errors, and blocks named wrong."""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from pathlib import Path

import httpx
import pytest

from prefect_stacks.blocks.docker import ImageBuild, build_image
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError
from tests.conftest import free_port

pytestmark = pytest.mark.integration

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log() -> tuple[logging.Logger, Captured]:
    logger = logging.getLogger(f"test-images-{uuid.uuid4().hex[:6]}")
    logger.setLevel(logging.INFO)
    handler = Captured()
    logger.addHandler(handler)
    return logger, handler


@pytest.fixture
def docker_host_block(prefect_harness, dockerd) -> str:
    from prefect_docker import DockerHost

    name = f"docker-{uuid.uuid4().hex[:6]}"
    DockerHost(base_url=dockerd).save(name)
    return name


def _checkout(root: Path, dockerfile: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def _tags(registry: str, repo: str) -> list[str]:
    response = httpx.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return response.json().get("tags") or []


def test_build_and_push_gives_a_reference_pinned_by_the_registry_digest(
    docker_host_block, registry, tmp_path, log
):
    sha = secrets.token_hex(20)
    repo = f"shop/web-{uuid.uuid4().hex[:6]}"
    checkout = _checkout(
        tmp_path / "repo",
        "FROM scratch\nARG GREETING\nCOPY version.txt /version.txt\n",
        {"version.txt": sha},
    )
    logger, captured = log
    built = build_image(
        ImageBuild(
            image=f"{registry}/{repo}",
            docker_host=docker_host_block,
            pull=False,
            build_args={"GREETING": "hi"},
        ),
        checkout,
        sha,
        labels={"org.opencontainers.image.revision": sha},
        logger=logger,
    )
    assert built.digest and built.digest.startswith("sha256:")
    assert built.reference == f"{registry}/{repo}:{sha}@{built.digest}"
    # the registry holds that tag, and its manifest is the digest we pinned
    assert _tags(registry, repo) == [sha]
    head = httpx.head(
        f"http://{registry}/v2/{repo}/manifests/{sha}",
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == built.digest
    # the image carries the commit as labels, on the engine that built it
    import docker

    client = docker.DockerClient(base_url=_engine(docker_host_block))
    try:
        labels = client.images.get(built.image_id).labels
    finally:
        client.close()
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.version"] == sha
    # progress reached the log: Docker's build steps and the push
    assert any(re.match(r"build: Step \d+/\d+ : COPY version.txt", x) for x in captured.lines)
    assert any(line.startswith("push: ") for line in captured.lines)


def _engine(block: str) -> str:
    from prefect_docker import DockerHost

    return DockerHost.load(block).base_url


def test_a_failing_build_names_dockers_error_and_pushes_nothing(
    docker_host_block, registry, tmp_path, log
):
    repo = f"shop/broken-{uuid.uuid4().hex[:6]}"
    checkout = _checkout(tmp_path / "repo", "FROM scratch\nCOPY missing.txt /\n", {})
    with pytest.raises(PrefectStacksError, match=r"docker build of .* failed: .*missing\.txt"):
        build_image(
            ImageBuild(image=f"{registry}/{repo}", docker_host=docker_host_block, pull=False),
            checkout,
            "abc123",
            logger=log[0],
        )
    assert _tags(registry, repo) == []


def test_a_registry_that_is_down_fails_the_push_with_its_address(docker_host_block, tmp_path, log):
    down = f"127.0.0.1:{free_port()}"
    checkout = _checkout(tmp_path / "repo", "FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    with pytest.raises(PrefectStacksError, match=rf"docker push of {down}/app:t1 failed"):
        build_image(
            ImageBuild(image=f"{down}/app", docker_host=docker_host_block, pull=False),
            checkout,
            "t1",
            logger=log[0],
        )


def test_a_registry_that_wants_a_login(docker_host_block, registry_with_login, tmp_path, log):
    """No credentials: the push fails and says to set them; a wrong password: the login
    is refused, naming the block; the right one: pushed. The password reaches no log
    line and no error message."""
    from prefect_docker import DockerRegistryCredentials

    address, user, password = registry_with_login
    repo = f"shop/auth-{uuid.uuid4().hex[:6]}"
    checkout = _checkout(tmp_path / "repo", "FROM scratch\nCOPY a.txt /\n", {"a.txt": "a"})
    logger, captured = log
    spec = {"image": f"{address}/{repo}", "docker_host": docker_host_block, "pull": False}
    with pytest.raises(PrefectStacksError, match="set ImageBuild.registry_credentials"):
        build_image(ImageBuild(**spec), checkout, "v0", logger=logger)

    wrong, right = f"wrong-{uuid.uuid4().hex[:6]}", f"right-{uuid.uuid4().hex[:6]}"
    bad_password = "nope-" + secrets.token_hex(8)
    DockerRegistryCredentials(
        username=user, password=bad_password, registry_url=f"http://{address}"
    ).save(wrong)
    with pytest.raises(ConfigurationError, match=f"refused the login of '{user}'.*{wrong}") as err:
        build_image(ImageBuild(**spec, registry_credentials=wrong), checkout, "v1", logger=logger)
    assert bad_password not in str(err.value)

    DockerRegistryCredentials(
        username=user, password=password, registry_url=f"http://{address}"
    ).save(right)
    built = build_image(
        ImageBuild(**spec, registry_credentials=right), checkout, "v2", logger=logger
    )
    assert built.digest
    listing = httpx.get(f"http://{address}/v2/{repo}/tags/list", auth=(user, password), timeout=10)
    assert listing.json()["tags"] == ["v2"]
    assert captured.lines
    assert not any(password in line or bad_password in line for line in captured.lines)


def test_blocks_named_wrong_and_an_unreachable_engine_are_clear_errors(
    prefect_harness, tmp_path, log
):
    from prefect_docker import DockerHost

    checkout = _checkout(tmp_path / "repo", "FROM scratch\n", {})
    with pytest.raises(ConfigurationError, match="no DockerHost block named 'nope'"):
        build_image(ImageBuild(image="app", docker_host="nope"), checkout, "t", logger=log[0])
    gone = f"unix://{tmp_path / 'no-docker.sock'}"
    name = f"gone-{uuid.uuid4().hex[:6]}"
    DockerHost(base_url=gone).save(name)
    with pytest.raises(ConfigurationError, match=f"cannot reach the Docker host {gone}"):
        build_image(ImageBuild(image="app", docker_host=name), checkout, "t", logger=log[0])


def test_paths_outside_the_checkout_are_refused_before_docker_is_asked(tmp_path, log):
    checkout = _checkout(tmp_path / "repo", "FROM scratch\n", {})
    (tmp_path / "outside").mkdir()
    (checkout / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(ConfigurationError, match="not a directory of the repository"):
        build_image(ImageBuild(image="app", context="link"), checkout, "t", logger=log[0])
    with pytest.raises(ConfigurationError, match="no Dockerfile at 'Dockerfile.prod'"):
        build_image(
            ImageBuild(image="app", dockerfile="Dockerfile.prod"), checkout, "t", logger=log[0]
        )
