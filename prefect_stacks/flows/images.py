"""The docker builder stack: ``image-builder`` builds a commit of a git repository into a
container image and pushes it under the tags its rules give.

The steps: check the parameters (nothing is cloned for a bad one) → clone the ref (the
one clone, ``_internal.git.clone``: the token as an HTTP header in git's environment) →
read what was checked out (commit, branch; tags and ``git describe`` only when a rule
needs them) → the tags (:mod:`prefect_stacks.blocks.image_tags`) → build once, tag, push
each tag (:func:`prefect_stacks.blocks.docker.build_image`, the per-PR build path) → the
result as the run's return value and a markdown artifact.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import ValidationError

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.git import (
    Revision,
    clone,
    read_revision,
    redact_url,
    refuse_credentials_in_url,
)
from prefect_stacks._internal.parameters import NO_TEXT, NO_VARIABLES, Text, Variables
from prefect_stacks.blocks.base import load_block, secret_value
from prefect_stacks.blocks.docker import BuiltImage, ImageBuild, build_image
from prefect_stacks.blocks.github import GitHubRepository
from prefect_stacks.blocks.image_tags import (
    DEFAULT_TAG_RULES,
    image_tags,
    parse_tag_rules,
    tag_safe,
)
from prefect_stacks.blocks.terraform import artifact_key
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError

__all__ = ["image_builder"]


@dataclass(frozen=True)
class _Source:
    url: str  # what git clones
    token: str | None
    shown: str  # the URL without credentials: logs, the source label, the result


def _run_name() -> str:
    """``build-<image path>-<ref>`` in tag-safe characters, e.g. ``build-shop-web-main``."""
    parameters = flow_run.parameters or {}
    image = str(parameters.get("image") or "image")
    first, _, rest = image.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
    ref = tag_safe(str(parameters.get("ref") or "")) or "default-branch"
    return f"build-{tag_safe(path.replace('/', '-'))[:60]}-{ref[:60]}"


@flow(name="image-builder", flow_run_name=_run_name)
@fails_cleanly
def image_builder(
    image: str,
    repository: Text = NO_TEXT,
    url: Text = NO_TEXT,
    token_block: Text = NO_TEXT,
    ref: Text = NO_TEXT,
    dockerfile: str = "Dockerfile",
    context: str = ".",
    build_args: Variables = NO_VARIABLES,
    docker_host: Text = NO_TEXT,
    registry_credentials: Text = NO_TEXT,
    tag_rules: list[str] = list(DEFAULT_TAG_RULES),  # noqa: B006 - never mutated
    push: bool = True,
    pull: bool = True,
) -> dict[str, Any]:
    """Build a container image of a git commit and push it under tags made from the commit.

    Args:
        image: Image repository in the registry, without a tag, e.g.
            registry.example.com:5000/shop/web.
        repository: Name of a GitHubRepository block to clone (its token is used). Or
            give url instead.
        url: Git URL to clone (https://, ssh://, file:// or a path) when there is no
            GitHubRepository block; never put a token in it.
        token_block: Name of a Secret block holding the HTTPS token for url (private
            repositories).
        ref: Branch, tag or commit SHA to build; empty: the default branch.
        dockerfile: Dockerfile, relative to the build context.
        context: Build context directory, relative to the repository root.
        build_args: Docker build arguments (visible in the image's history: no secrets;
            names with TOKEN, PASSWORD, SECRET or KEY are refused).
        docker_host: Name of a prefect-docker DockerHost block; empty: the worker's
            Docker (DOCKER_HOST or the local socket).
        registry_credentials: Name of a prefect-docker DockerRegistryCredentials block
            to log in with; empty for a registry without login.
        tag_rules: One tag each: sha, sha7, describe, semver (1.2.3), semver-minor
            (1.2), semver-major (1), or a template such as {branch}-{sha7} (placeholders
            {branch} {sha} {sha7} {tag} {describe} {date}). A rule with nothing to give
            (no tag at the commit) is skipped.
        push: Push every tag to the registry (off: build and tag only).
        pull: Pull newer base images while building.
    """
    logger = get_run_logger()
    spec = _image_build(
        image=image,
        dockerfile=dockerfile,
        context=context,
        build_args={str(k): str(v) for k, v in (build_args or {}).items()},
        docker_host=docker_host or None,
        registry_credentials=registry_credentials or None,
        push=push,
        pull=pull,
    )
    rules = parse_tag_rules(tag_rules)
    source = _source(repository, url, token_block)
    workdir = Path(tempfile.mkdtemp(prefix="prefect-stacks-image-"))
    try:
        logger.info("checkout: %s at %s", source.shown, ref or "the default branch")
        clone(source.url, workdir, ref=ref or None, token=source.token, stream=False)
        revision = read_revision(
            workdir,
            ref=ref or None,
            token=source.token,
            tags=any(rule.needs_tags for rule in rules),
            describe=any(rule.needs_describe for rule in rules),
        )
        logger.info("commit: %s%s", revision.sha, _on(revision))
        tags = image_tags(rules, revision, logger)
        logger.info("tags: %s", ", ".join(tags))
        built = build_image(
            spec,
            workdir,
            tags,
            labels=_labels(revision, source),
            logger=logger,
            secrets=[source.token] if source.token else [],
        )
    except ConfigurationError:
        raise
    except PrefectStacksError as exc:  # git's or Docker's own message: one line, no trace
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = _result(built, revision, source)
    _publish(result)
    return result


def _image_build(**fields: Any) -> ImageBuild:
    try:
        return ImageBuild(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigurationError(problems) from None


def _source(repository: str, url: str, token_block: str) -> _Source:
    if bool(repository) == bool(url):
        raise ConfigurationError(
            "give the repository to build either as repository (a GitHubRepository "
            "block) or as url (with token_block for a private one)"
            + (", not both" if repository else "")
        )
    if repository:
        if token_block:
            raise ConfigurationError(
                "token_block goes with url: the GitHubRepository block "
                f"{repository!r} brings its own token"
            )
        block = load_block(
            GitHubRepository,
            repository,
            create="create it (Blocks > GitHub Repository), or give url instead",
        )
        clone_url = block.get_clone_url()
        return _Source(clone_url, block.git_token(), redact_url(clone_url))
    refuse_credentials_in_url(url, "url")
    return _Source(url, secret_value(token_block, field="token_block"), redact_url(url))


def _on(revision: Revision) -> str:
    if revision.branch:
        return f" (branch {revision.branch})"
    return f" (tags {', '.join(revision.tags)})" if revision.tags else ""


def _labels(revision: Revision, source: _Source) -> dict[str, str]:
    """OCI labels. ``created`` is the commit's time, not the build's: a rebuild of one
    commit from Docker's cache is then the same image, with the same digest."""
    created = revision.committed_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "org.opencontainers.image.revision": revision.sha,
        "org.opencontainers.image.source": source.shown,
        "org.opencontainers.image.created": created,
    }


def _result(built: BuiltImage, revision: Revision, source: _Source) -> dict[str, Any]:
    return {
        "image": built.repository,
        "tags": list(built.tags),
        "digest": built.digest,
        "reference": built.pinned,
        "image_id": built.image_id,
        "revision": revision.sha,
        "branch": revision.branch,
        "source": source.shown,
    }


def _publish(result: dict[str, Any]) -> None:
    def code(value: Any) -> str:
        return f"`{str(value).replace('`', '')}`" if value else "(not pushed)"

    rows = [
        ("reference", code(result["reference"])),
        ("tags", ", ".join(code(f"{result['image']}:{t}") for t in result["tags"])),
        ("digest", code(result["digest"])),
        ("revision", code(result["revision"])),
        ("branch", code(result["branch"]) if result["branch"] else "-"),
        ("source", code(result["source"]).replace("|", "\\|")),
    ]
    create_markdown_artifact(
        key=artifact_key("image", result["image"]),
        markdown=f"### Image {code(result['image'])}\n\n| | |\n|---|---|\n"
        + "\n".join(f"| {name} | {value} |" for name, value in rows)
        + "\n",
        description=f"image-builder: {result['image']} ({', '.join(result['tags'])})",
    )
