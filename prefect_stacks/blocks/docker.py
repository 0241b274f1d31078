"""Container images built from a checkout, through prefect-docker.

:class:`ImageBuild` is what a flow parameter says about the build (image repository,
Dockerfile, context, and the names of a prefect-docker ``DockerHost`` block and a
``DockerRegistryCredentials`` block); :func:`build_image` builds it once on that Docker
host with one or more tags (a commit SHA; the image-builder's tag rules,
:mod:`prefect_stacks.blocks.image_tags`), pushes each, and returns the one manifest digest
and the reference pinned by it (``registry/app:<sha>@sha256:...``) a deploy should use;
:func:`build_and_push` is that as a task, for a commit of an environment.

Secrets stay out of the image (:mod:`prefect_stacks.blocks.image_secrets`): no build
argument or label may hold one; the registry password goes only to Docker's login and
push authentication; Docker's output is masked before it reaches the log.

The Docker client comes from the ``DockerHost`` block (``get_client()``; none: Docker's
environment, ``DOCKER_HOST`` or the local socket). prefect-docker's ``build_docker_image``
/``push_docker_image`` steps talk to the environment's Docker and print to stdout, so
the build and push here stream the block's docker-py client to the run logger.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefect_stacks._internal.process import Redactor, default_logger
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.image_secrets import refuse_secret_names, refuse_secrets
from prefect_stacks.blocks.image_tags import is_repository, is_tag
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError


class ImageBuild(BaseModel):
    """Build a container image from each commit and push it (through prefect-docker).

    The image is tagged with the commit SHA and handed to the stack, pinned by digest,
    as the variable named in ``variable``."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a refused build arg's value

    image: str = Field(
        description="Image repository without a tag, e.g. registry.example.com:5000/shop/web "
        "(the tag is the commit SHA).",
        examples=["localhost:5000/shop/web"],
    )
    dockerfile: str = Field(
        default="Dockerfile", description="Dockerfile, relative to the build context."
    )
    context: str = Field(
        default=".", description="Build context directory, relative to the repository root."
    )
    docker_host: str | None = Field(
        default=None,
        description="Name of a prefect-docker DockerHost block; empty means Docker's "
        "environment (DOCKER_HOST or the local socket).",
    )
    registry_credentials: str | None = Field(
        default=None,
        description="Name of a prefect-docker DockerRegistryCredentials block to log in "
        "with before the push; empty for a registry without login.",
    )
    push: bool = Field(default=True, description="Push the image after building it.")
    pull: bool = Field(default=True, description="Pull newer base images while building.")
    build_args: dict[str, str] = Field(
        default_factory=dict,
        description="Docker build arguments. They are visible in the image (`docker "
        "history`): no secrets; names with TOKEN, PASSWORD, SECRET or KEY are refused.",
    )
    variable: str = Field(
        default="image",
        description="Stack variable that receives the pushed reference (image:sha@digest).",
    )

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not is_repository(value):
            raise ValueError(
                f"{value!r} is not an image repository: use lowercase path components, "
                "an optional registry host[:port]/ in front, and no tag or digest "
                "(e.g. localhost:5000/shop/web; the tags come from the commit)"
            )
        return value

    @field_validator("build_args")
    @classmethod
    def _check_build_arg_names(cls, value: dict[str, str]) -> dict[str, str]:
        refuse_secret_names(value)
        return value

    @field_validator("dockerfile", "context")
    @classmethod
    def _check_relative(cls, value: str) -> str:
        path = Path(value)
        if not value or path.is_absolute() or ".." in path.parts:
            raise ValueError(
                f"{value!r} must be a path inside the repository (relative, without '..')"
            )
        return value

    @field_validator("variable")
    @classmethod
    def _check_variable(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", value):
            raise ValueError(f"{value!r} is not a Terraform variable name")
        return value


@dataclass(frozen=True)
class BuiltImage:
    repository: str
    tag: str  # the first tag
    image_id: str
    digest: str | None  # the registry's manifest digest (one for every tag); None: not pushed
    tags: tuple[str, ...] = ()  # every tag, ``tag`` first

    def __post_init__(self) -> None:
        if not self.tags:
            object.__setattr__(self, "tags", (self.tag,))

    @property
    def reference(self) -> str:
        """``repository:tag@digest`` once pushed (pinned), else ``repository:tag``."""
        base = f"{self.repository}:{self.tag}"
        return f"{base}@{self.digest}" if self.digest else base

    @property
    def pinned(self) -> str | None:
        """``repository@digest`` once pushed: the image whatever its tags."""
        return f"{self.repository}@{self.digest}" if self.digest else None


def build_image(
    spec: ImageBuild,
    checkout: Path,
    tag: str | Sequence[str],
    labels: dict[str, str] | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    secrets: Iterable[str] = (),
) -> BuiltImage:
    """Build ``spec`` from ``checkout`` once as ``spec.image:<tag>`` for each tag (the
    first is also ``org.opencontainers.image.version`` unless ``labels`` say otherwise)
    and push each (unless ``spec.push`` is off). ``secrets`` (e.g. the git token) may be
    in no build argument or label and are masked in the log. Raises
    :class:`ConfigurationError` for what the user must fix before a build can run,
    :class:`PrefectStacksError` for a failed build or push (with Docker's message)."""
    log = logger or default_logger()
    tags = [tag] if isinstance(tag, str) else list(dict.fromkeys(tag))
    bad = [t for t in tags if not is_tag(t)] or ([] if tags else [""])
    if bad:
        raise ConfigurationError(f"{bad[0]!r} is not a valid image tag")
    context, dockerfile = _paths(spec, checkout)
    creds = _credentials(spec.registry_credentials)
    secret_values = [*secrets, *([creds.password.get_secret_value()] if creds else [])]
    labels = {"org.opencontainers.image.version": tags[0], **(labels or {})}
    refuse_secrets(spec.build_args, labels, secret_values)
    redact = Redactor(secret_values)

    import docker.errors

    client, where = _docker_client(spec.docker_host)
    with client:
        try:
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            raise _unreachable(where, exc) from exc
        # also before the build: a private base image is pulled with the same login
        auth = _login(client, creds, spec.registry_credentials)
        ref = f"{spec.image}:{tags[0]}"
        more = f" (+ {', '.join(tags[1:])})" if tags[1:] else ""
        log.info("docker build %s%s (context %s, %s)", ref, more, spec.context, spec.dockerfile)
        image_id = _build(client, spec, context, dockerfile, ref, labels, log, redact)
        for extra in tags[1:]:
            client.api.tag(image_id, spec.image, extra)
        digest = None
        if spec.push:
            digests = {}
            for each in tags:
                log.info("docker push %s:%s", spec.image, each)
                digests[each] = _push(client, spec.image, each, auth, log, redact)
            if len(set(digests.values())) != 1:
                raise PrefectStacksError(
                    f"the registry gave the tags of {spec.image} different digests: {digests}"
                )
            digest = digests[tags[0]]
    built = BuiltImage(spec.image, tags[0], image_id, digest, tuple(tags))
    log.info("image %s%s", built.reference, more)
    return built


@task(cache_policy=NO_CACHE, task_run_name="image-build")
def build_and_push(
    spec: ImageBuild, checkout: Path, sha: str, source: str, environment: str
) -> str:
    """The image of commit ``sha`` (from ``checkout``, a clone of ``source``) for
    ``environment``: tagged with the SHA, labelled (OCI revision and source, the
    environment) and pushed; returns ``image:sha@digest``."""
    built = build_image(
        spec,
        checkout,
        sha,
        labels={
            "org.opencontainers.image.revision": sha,
            "org.opencontainers.image.source": source,
            "dev.prefect-stacks.environment": environment,
        },
    )
    return built.reference


def _docker_client(block_name: str | None) -> tuple[Any, str]:
    from prefect_docker import DockerHost

    if block_name:
        host = load_block(
            DockerHost,
            block_name,
            create="create it in the UI under Blocks, or with DockerHost(base_url=...).save(name)",
        )
    else:
        host = DockerHost()
    where = host.base_url or "from the environment (DOCKER_HOST or the local socket)"
    try:
        return host.get_client(), where
    except Exception as exc:  # docker-py raises DockerException or plain errors
        raise _unreachable(where, exc) from exc


def _unreachable(where: str, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"cannot reach the Docker host {where}: {_short(exc)} (set the DockerHost "
        "block's base_url, or DOCKER_HOST for the worker)"
    )


def _paths(spec: ImageBuild, checkout: Path) -> tuple[Path, Path]:
    """The build context and the Dockerfile, both inside the checkout."""
    root = checkout.resolve()
    context = (root / spec.context).resolve()
    if not context.is_relative_to(root) or not context.is_dir():
        raise ConfigurationError(
            f"build context {spec.context!r} is not a directory of the repository"
        )
    dockerfile = (context / spec.dockerfile).resolve()
    if not dockerfile.is_relative_to(root) or not dockerfile.is_file():
        raise ConfigurationError(
            f"no Dockerfile at {spec.dockerfile!r} in the build context {spec.context!r} "
            "(ImageBuild.dockerfile is relative to ImageBuild.context)"
        )
    return context, dockerfile


def _credentials(block_name: str | None) -> Any:
    if not block_name:
        return None
    from prefect_docker import DockerRegistryCredentials

    return load_block(
        DockerRegistryCredentials,
        block_name,
        create="create it (Blocks > Docker Registry Credentials) or leave it empty",
    )


def _login(client: Any, creds: Any, block_name: str | None) -> dict[str, str] | None:
    if creds is None:
        return None
    import docker.errors

    auth = {
        "username": creds.username,
        "password": creds.password.get_secret_value(),
        "serveraddress": creds.registry_url,
    }
    try:
        client.login(
            username=auth["username"],
            password=auth["password"],
            registry=creds.registry_url,
            reauth=creds.reauth,
        )
    except docker.errors.APIError as exc:
        raise ConfigurationError(
            f"registry {creds.registry_url} refused the login of {creds.username!r} "
            f"(DockerRegistryCredentials block {block_name!r}): {_explain(exc)}"
        ) from exc
    return auth


def _build(
    client: Any,
    spec: ImageBuild,
    context: Path,
    dockerfile: Path,
    ref: str,
    labels: dict[str, str],
    log: logging.Logger | logging.LoggerAdapter,
    redact: Redactor,
) -> str:
    import docker.errors

    image_id = None
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=str(dockerfile.relative_to(context))
            if dockerfile.is_relative_to(context)
            else str(dockerfile),
            tag=ref,
            pull=spec.pull,
            rm=True,
            forcerm=True,
            buildargs=spec.build_args or None,
            labels=labels,
            decode=True,
        )
        for event in stream:
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise PrefectStacksError(
                    f"docker build of {ref} failed: {redact(str(detail).strip())}"
                )
            line = event.get("stream", "").rstrip()
            if line:
                log.info("build: %s", redact(line))
            aux = event.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise PrefectStacksError(f"docker build of {ref} failed: {redact(_explain(exc))}") from exc
    if not image_id:
        raise PrefectStacksError(f"docker build of {ref} returned no image id")
    return image_id


def _push(
    client: Any,
    repository: str,
    tag: str,
    auth: dict[str, str] | None,
    log: logging.Logger | logging.LoggerAdapter,
    redact: Redactor,
) -> str:
    """Push and return the manifest digest the registry answered with."""
    import docker.errors

    digest = None
    last = None
    try:
        for event in client.api.push(
            repository, tag=tag, auth_config=auth, stream=True, decode=True
        ):
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise PrefectStacksError(
                    f"docker push of {repository}:{tag} failed: {redact(str(detail).strip())}"
                    + (
                        " (the registry wants a login: set ImageBuild.registry_credentials, "
                        "the image-builder's registry_credentials, to a "
                        "DockerRegistryCredentials block)"
                        if "auth" in str(detail).lower()
                        else ""
                    )
                )
            aux = event.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
            status = event.get("status")
            line = f"{event.get('id', '')} {status}".strip() if status else ""
            # one line per layer state, not one per progress tick
            if line and line != last and not event.get("progressDetail"):
                log.info("push: %s", redact(line))
                last = line
    except docker.errors.APIError as exc:
        raise PrefectStacksError(
            f"docker push of {repository}:{tag} failed: {redact(_explain(exc))}"
        ) from exc
    if not digest:
        raise PrefectStacksError(
            f"docker push of {repository}:{tag} finished without a manifest digest"
        )
    return digest


def _explain(exc: Any) -> str:
    return str(getattr(exc, "explanation", None) or exc).strip()


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
