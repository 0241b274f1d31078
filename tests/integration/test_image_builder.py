"""The image-builder flow on a real Docker engine, a real Distribution registry, real git
and a Prefect test server: tags from each rule, the digest the registry holds for each
tag, the artifact, Docker's build lines in the log as they happen, secrets in none of
the image's history / config / layers nor in the logs, and the clean failures."""

from __future__ import annotations

import http.server
import inspect
import json
import os
import secrets
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter
from prefect.logging.handlers import APILogWorker

from prefect_stacks._internal.git import auth_env
from prefect_stacks.blocks.terraform import artifact_key
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError
from prefect_stacks.flows.images import image_builder
from tests.conftest import GitRepo, git

pytestmark = pytest.mark.integration

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture
def docker_host(prefect_harness, dockerd) -> str:
    from prefect_docker import DockerHost

    name = f"docker-{uuid.uuid4().hex[:6]}"
    DockerHost(base_url=dockerd).save(name)
    return name


@pytest.fixture
def engine(dockerd):
    import docker

    client = docker.DockerClient(base_url=dockerd)
    yield client
    client.close()


def repo_with(root: Path, files: dict[str, str], branch: str = "main") -> tuple[GitRepo, str]:
    """A bare repository whose ``branch`` holds ``files``; (repo, the commit's SHA)."""
    repo = GitRepo(root)
    git("checkout", "-q", "-B", branch, cwd=repo.work)
    for name, text in files.items():
        (repo.work / name).write_text(text)
    git("add", "-A", cwd=repo.work)
    git("commit", "-q", "-m", "image", cwd=repo.work)
    git("push", "-q", "origin", branch, cwd=repo.work)
    return repo, git("rev-parse", "HEAD", cwd=repo.work)


def secret_block(value: str) -> str:
    from prefect.blocks.system import Secret

    name = f"token-{uuid.uuid4().hex[:6]}"
    Secret(value=value).save(name)
    return name


def registry_tags(registry: str, repo: str, auth=None) -> list[str]:
    answer = httpx.get(f"http://{registry}/v2/{repo}/tags/list", auth=auth, timeout=10)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return sorted(answer.json().get("tags") or [])


def registry_digest(registry: str, repo: str, tag: str, auth=None) -> str:
    head = httpx.head(
        f"http://{registry}/v2/{repo}/manifests/{tag}",
        headers={"Accept": MANIFEST_TYPES},
        auth=auth,
        timeout=10,
    )
    assert head.status_code == 200, (tag, head.status_code)
    return head.headers["Docker-Content-Digest"]


def run_logs(flow_run_id) -> list[str]:
    drained = APILogWorker.drain_all()
    assert not inspect.isawaitable(drained)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id={"any_": [flow_run_id]}), limit=200)
    return [log.message for log in logs]


def artifact(key: str):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    return found[0]


def build(**parameters):
    """Run the flow; (final state, its result or exception, the run's log lines)."""
    state = image_builder(**parameters, return_state=True)
    try:
        outcome = state.result()
    except Exception as exc:
        outcome = exc
    return state, outcome, run_logs(state.state_details.flow_run_id)


def no_traceback(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text and "Encountered exception" not in text, text


# ------------------------------------------------------------------ tags, digest, artifact
def test_tags_from_every_rule_share_the_digest_the_registry_holds(
    docker_host, registry, engine, tmp_path
):
    repo, sha = repo_with(
        tmp_path,
        {"Dockerfile": "FROM scratch\nCOPY version.txt /version.txt\n", "version.txt": "1"},
    )
    git("tag", "-a", "v1.4.2", "-m", "release 1.4.2", cwd=repo.work)
    git("push", "-q", "origin", "v1.4.2", cwd=repo.work)
    committed = datetime.fromisoformat(git("log", "-1", "--format=%cI", cwd=repo.work))
    date = committed.astimezone(timezone.utc).strftime("%Y%m%d")
    image = f"{registry}/shop/web-{uuid.uuid4().hex[:6]}"
    rules = ["sha", "sha7", "describe", "semver", "semver-minor", "semver-major"]
    rules += ["{branch}-{sha7}", "{date}-{sha7}", "{tag}"]
    state, result, lines = build(
        image=image,
        url=str(repo.bare),
        ref="main",
        tag_rules=rules,
        docker_host=docker_host,
        pull=False,
    )
    assert state.is_completed(), result
    sha7 = sha[:7]
    expected = [sha, sha7, "v1.4.2", "1.4.2", "1.4", "1", f"main-{sha7}", f"{date}-{sha7}"]
    assert result["tags"] == expected  # {tag} gave v1.4.2 again: one tag
    path = image.split("/", 1)[1]
    assert registry_tags(registry, path) == sorted(expected)
    digest = result["digest"]
    assert digest.startswith("sha256:")
    assert {registry_digest(registry, path, tag) for tag in expected} == {digest}
    assert result["reference"] == f"{image}@{digest}"
    assert (result["revision"], result["branch"], result["source"]) == (sha, "main", str(repo.bare))
    assert state.name == "Completed"

    labels = engine.images.get(result["image_id"]).labels
    assert labels["org.opencontainers.image.revision"] == sha
    assert labels["org.opencontainers.image.source"] == str(repo.bare)
    assert labels["org.opencontainers.image.version"] == sha
    assert labels["org.opencontainers.image.created"].startswith(f"{date[:4]}-{date[4:6]}-")

    found = artifact(artifact_key("image", image))
    assert found.type == "markdown"
    assert f"`{image}@{digest}`" in found.data
    assert all(f"`{image}:{tag}`" in found.data for tag in expected)
    # a stage line each, and the run is named after the image and the ref
    assert any(line.startswith(f"checkout: {repo.bare} at main") for line in lines)
    assert any(line == f"commit: {sha} (branch main)" for line in lines)
    assert any(line.startswith("tags: ") for line in lines)
    assert any(line.startswith(f"docker push {image}:1.4") for line in lines)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == f"build-{path.replace('/', '-')}-main"


def test_describe_counts_the_commits_since_the_tag_and_missing_rules_are_skipped(
    docker_host, registry, tmp_path
):
    repo, first = repo_with(tmp_path, {"Dockerfile": "FROM scratch\nCOPY a.txt /\n", "a.txt": "a"})
    git("tag", "v0.9.0", cwd=repo.work)  # a lightweight tag, one commit back
    git("push", "-q", "origin", "v0.9.0", cwd=repo.work)
    second = repo.commit("main")
    image = f"{registry}/shop/describe-{uuid.uuid4().hex[:6]}"
    state, result, lines = build(
        image=image,
        url=f"file://{repo.bare}",
        tag_rules=["describe", "semver", "{tag}-x"],
        docker_host=docker_host,
        pull=False,
    )
    assert state.is_completed(), result
    assert result["tags"] == [f"v0.9.0-1-g{second[:7]}"]
    assert result["branch"] == "main"  # the default branch, no ref given
    assert any("tag rule 'semver' skipped: no semver tag points at the commit" in x for x in lines)
    assert any("tag rule '{tag}-x' skipped: no {tag}" in x for x in lines)
    assert first != second


def test_a_tag_as_ref_and_push_off(docker_host, registry, engine, tmp_path):
    repo, sha = repo_with(tmp_path, {"Dockerfile": "FROM scratch\nCOPY a.txt /\n", "a.txt": "a"})
    git("tag", "-a", "v2.0.0-rc.1", "-m", "rc", cwd=repo.work)
    git("push", "-q", "origin", "v2.0.0-rc.1", cwd=repo.work)
    repo.commit("main")  # the branch moved on; the tag did not
    image = f"{registry}/shop/rc-{uuid.uuid4().hex[:6]}"
    state, result, lines = build(
        image=image,
        url=str(repo.bare),
        ref="v2.0.0-rc.1",
        tag_rules=["semver", "semver-minor", "{branch}-{sha7}", "sha7"],
        docker_host=docker_host,
        push=False,
        pull=False,
    )
    assert state.is_completed(), result
    assert result["tags"] == ["2.0.0-rc.1", sha[:7]]  # prerelease: no 2.0 alias
    assert result["revision"] == sha and result["branch"] is None
    assert result["digest"] is None and result["reference"] is None
    assert registry_tags(registry, image.split("/", 1)[1]) == []  # nothing pushed
    assert set(engine.images.get(result["image_id"]).tags) == {
        f"{image}:2.0.0-rc.1",
        f"{image}:{sha[:7]}",
    }
    assert any("'semver-minor' skipped: 2.0.0-rc.1 is a prerelease" in x for x in lines)
    assert any("'{branch}-{sha7}' skipped: no {branch}: the ref is a tag" in x for x in lines)


# ------------------------------------------------------------------ the log as it happens
class SlowFile(http.server.BaseHTTPRequestHandler):
    """Answers after a pause, so that one build step takes that long."""

    pause = 2.0
    asked_at: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        SlowFile.asked_at.append(time.monotonic())
        time.sleep(self.pause)
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_dockers_build_steps_reach_the_log_while_the_build_runs(docker_host, registry, tmp_path):
    import logging

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    repo, _ = repo_with(
        tmp_path,
        {
            "Dockerfile": f"FROM scratch\nADD http://127.0.0.1:{port}/slow /slow\n"
            "COPY a.txt /a.txt\n",
            "a.txt": "a",
        },
    )
    seen: list[tuple[float, str]] = []

    class Clock(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((time.monotonic(), record.getMessage()))

    handler = Clock()
    logging.getLogger("prefect.flow_runs").addHandler(handler)
    try:
        state, result, lines = build(
            image=f"{registry}/shop/slow-{uuid.uuid4().hex[:6]}",
            url=str(repo.bare),
            docker_host=docker_host,
            pull=False,
        )
    finally:
        logging.getLogger("prefect.flow_runs").removeHandler(handler)
        server.shutdown()
    assert state.is_completed(), result

    def when(prefix: str) -> float:
        return next(t for t, message in seen if message.startswith(prefix))

    asked = SlowFile.asked_at[0]
    # the ADD step reached the log while Docker was still fetching its file (the server
    # answers after 2 s), the next step only after the file came
    assert any(m.startswith("build: Step 2/") and "ADD http://127.0.0.1" in m for _, m in seen)
    assert when("build: Step 2/") < asked + SlowFile.pause - 0.5
    assert when("build: Step 3/") >= asked + SlowFile.pause - 0.1
    assert when("build: Successfully built") < when("docker push")
    # and the run's logs on the server hold them
    assert any(line.startswith("build: Step 1/") and "FROM scratch" in line for line in lines)
    assert any(line.startswith("push: ") for line in lines)


# ------------------------------------------------------------------ secrets
class PrivateGit(http.server.BaseHTTPRequestHandler):
    """git's smart HTTP (real ``git http-backend``) for the repositories under ``root``,
    answering 401 to any request without ``Authorization: <expected>``."""

    root: Path
    expected: str
    refused: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._backend()

    def do_POST(self) -> None:  # noqa: N802
        self._backend()

    def _backend(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            PrivateGit.refused.append(self.path)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
        status = next((v.strip() for k, v in headers if k.lower() == "status"), "200 OK")
        self.send_response(int(status.split()[0]))
        for name, value in headers:
            if name.lower() != "status":
                self.send_header(name, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def private_git(tmp_path):
    """(serve(repo, token) -> the repository's http:// URL that wants that token)."""
    servers = []

    def serve(repo: GitRepo, token: str) -> str:
        _, (_, header, _) = auth_env(token)
        handler = type("Handler", (PrivateGit,), {"root": repo.bare.parent})
        handler.expected = header.removeprefix("Authorization: ")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{repo.bare.name}"

    yield serve
    for server in servers:
        server.shutdown()


def test_no_secret_in_the_image_history_config_layers_or_logs(
    docker_host, registry_with_login, engine, private_git, tmp_path
):
    """The git token (of a GitHubRepository block, for a repository served over HTTP that
    answers 401 without it) and the registry password: the checkout's .git goes into the
    image whole (COPY . /src), yet neither secret is in `docker history --no-trunc`, the
    image config, any layer of the saved image, the run's log lines, the result or the
    artifact."""
    from prefect_docker import DockerRegistryCredentials

    from prefect_stacks.blocks.github import GitHubRepository

    address, user, password = registry_with_login
    token = "ghp_" + secrets.token_hex(18)
    repo, sha = repo_with(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY . /src\n",
            "app.txt": "app",
        },
    )
    git("tag", "-a", "v3.1.0", "-m", "release", cwd=repo.work)
    git("push", "-q", "origin", "v3.1.0", cwd=repo.work)
    url = private_git(repo, token)
    # without the token the repository cannot be read
    state, error, _ = build(image="localhost:5000/shop/web", url=url, tag_rules=["sha7"])
    assert state.is_failed() and "could not fetch" in state.message
    assert PrivateGit.refused
    block = f"gh-{uuid.uuid4().hex[:6]}"
    GitHubRepository(owner="acme", repo="shop", token=token, clone_url=url).save(block)
    creds = f"creds-{uuid.uuid4().hex[:6]}"
    DockerRegistryCredentials(
        username=user, password=password, registry_url=f"http://{address}"
    ).save(creds)
    image = f"{address}/shop/secret-{uuid.uuid4().hex[:6]}"
    state, result, lines = build(
        image=image,
        repository=block,
        tag_rules=["sha", "describe", "semver"],  # ls-remote and a fetch, with the token
        build_args={"GREETING": "hello"},
        registry_credentials=creds,
        docker_host=docker_host,
        pull=False,
    )
    assert state.is_completed(), result
    assert result["tags"] == [sha, "v3.1.0", "3.1.0"]
    assert (
        registry_digest(address, image.split("/", 1)[1], sha, auth=(user, password))
        == (result["digest"])
    )

    _, token_forms = auth_env(token)  # the token, the header, its base64
    forbidden = [*token_forms, password]
    pulled = engine.images.get(result["image_id"])
    history = json.dumps(pulled.history())
    config = json.dumps(pulled.attrs)
    saved = b"".join(pulled.save(named=True))
    assert "LABEL greeting=hello" in history  # what history does show
    assert b"src/.git/config" in saved and b"src/app.txt" in saved  # .git was copied
    everything = "\n".join([*lines, json.dumps(result), artifact_text(image)])
    for value in forbidden:
        assert value not in history
        assert value not in config
        assert value.encode() not in saved
        assert value not in everything
    assert pulled.labels["org.opencontainers.image.source"] == url


def artifact_text(image: str) -> str:
    return artifact(artifact_key("image", image)).data


def test_a_build_argument_that_is_a_secret_is_refused_before_anything_runs(
    docker_host, registry, tmp_path
):
    token = "tok-" + secrets.token_hex(12)
    repo, _ = repo_with(tmp_path, {"Dockerfile": "FROM scratch\n"})
    image = f"{registry}/shop/refused-{uuid.uuid4().hex[:6]}"
    common = {"image": image, "url": str(repo.bare), "docker_host": docker_host, "pull": False}
    state, error, lines = build(**common, build_args={"NPM_TOKEN": token})
    assert state.is_failed()
    assert isinstance(error, ConfigurationError)
    assert "'NPM_TOKEN' look like secrets" in str(error) and "docker history" in str(error)
    assert not any(line.startswith("checkout:") for line in lines)  # nothing cloned

    state, error, lines = build(
        **common, token_block=secret_block(token), build_args={"NOTE": f"x{token}"}
    )
    assert isinstance(error, ConfigurationError)
    assert "build argument 'NOTE' holds a secret" in str(error)
    assert token not in str(error) and not any(token in line for line in lines)
    no_traceback(lines)
    assert registry_tags(registry, image.split("/", 1)[1]) == []


# ------------------------------------------------------------------ clean failures
def test_a_failing_dockerfile_fails_in_one_line_and_pushes_nothing(docker_host, registry, tmp_path):
    repo, _ = repo_with(tmp_path, {"Dockerfile": "FROM scratch\nCOPY missing.txt /\n"})
    image = f"{registry}/shop/broken-{uuid.uuid4().hex[:6]}"
    state, error, lines = build(
        image=image, url=str(repo.bare), docker_host=docker_host, pull=False
    )
    assert state.is_failed()
    assert isinstance(error, PrefectStacksError)
    assert "docker build of" in state.message and "missing.txt" in state.message
    assert sum(line.startswith("docker build of") for line in lines) == 1  # one ERROR line
    no_traceback(lines)
    assert registry_tags(registry, image.split("/", 1)[1]) == []


def test_a_registry_that_wants_a_login_without_credentials_names_the_parameter(
    docker_host, registry_with_login, tmp_path
):
    address, user, password = registry_with_login
    repo, _ = repo_with(tmp_path, {"Dockerfile": "FROM scratch\nCOPY a.txt /\n", "a.txt": "a"})
    image = f"{address}/shop/login-{uuid.uuid4().hex[:6]}"
    state, error, lines = build(
        image=image, url=str(repo.bare), docker_host=docker_host, pull=False
    )
    assert state.is_failed()
    assert "registry wants a login" in state.message
    assert "registry_credentials" in state.message
    no_traceback(lines)
    assert registry_tags(address, image.split("/", 1)[1], auth=(user, password)) == []


def test_a_branch_with_shell_characters_is_built_and_tagged_safely(
    docker_host, registry, tmp_path, monkeypatch
):
    branch = "feat/$(touch${IFS}pwned);x`id`"
    monkeypatch.chdir(tmp_path)
    repo, sha = repo_with(
        tmp_path, {"Dockerfile": "FROM scratch\nCOPY a.txt /\n", "a.txt": "a"}, branch=branch
    )
    image = f"{registry}/shop/branch-{uuid.uuid4().hex[:6]}"
    state, result, _ = build(
        image=image,
        url=str(repo.bare),
        ref=branch,
        tag_rules=["{branch}-{sha7}"],
        docker_host=docker_host,
        pull=False,
    )
    assert state.is_completed(), result
    assert result["tags"] == [f"feat-touch-IFS-pwned-x-id-{sha[:7]}"]
    assert result["branch"] == branch
    assert registry_tags(registry, image.split("/", 1)[1]) == result["tags"]
    assert not list(tmp_path.rglob("pwned")) and not Path("/pwned").exists()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name.endswith("-feat-touch-IFS-pwned-x-id")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "either as repository .* or as url"),
        ({"repository": "a", "url": "/x"}, "not both"),
        (
            {"url": "https://u:ghp_x@github.com/a/b"},
            "url 'https://\\*\\*\\*@github.com/a/b' carries",
        ),
        ({"url": "/x", "tag_rules": ["sha9"]}, "unknown tag rule 'sha9'"),
        ({"url": "/x", "tag_rules": ["{nope}"]}, "unknown placeholder \\{nope\\}"),
        ({"url": "/x", "token_block": "no-such-secret"}, "no Secret block named 'no-such-secret'"),
        ({"repository": "no-such-repo"}, "no GitHubRepository block named 'no-such-repo'"),
        ({"url": "/x", "context": "../up"}, "context: .*inside the repository"),
    ],
)
def test_bad_parameters_are_one_clear_error_before_any_clone(prefect_harness, parameters, message):
    with pytest.raises(ConfigurationError, match=message):
        image_builder(image="localhost:5000/shop/web", **parameters)


def test_a_ref_that_does_not_exist_fails_in_one_line(prefect_harness, tmp_path):
    repo, _ = repo_with(tmp_path, {"Dockerfile": "FROM scratch\n"})
    state, error, lines = build(image="localhost:5000/shop/web", url=str(repo.bare), ref="nope")
    assert state.is_failed()
    assert f"could not fetch nope of {repo.bare}" in state.message
    no_traceback(lines)
