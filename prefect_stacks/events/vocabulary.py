"""The event vocabulary: every event name with its resource and payload (``VOCABULARY``),
and the builders that make those events (``git_commit``, ``pull_request`` ...).

Longer than 400 lines because the names and the builders that fill exactly their payloads
are one contract.

Watchers (polling) and the webhook receiver build their events with the functions here,
so a verified delivery is exactly the event a watcher would emit: same name, same
resource, same payload, same id. The id is derived from what changed (name, resource,
version), so the same change seen twice — by two watcher runs, or by a watcher and a
webhook — carries the same id, and Prefect's triggers act on an event id once.

The vocabulary is also what automation templates are checked against
(:mod:`prefect_stacks.events.automations`) and what ``docs/events.md`` documents.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from prefect.events import Event

from prefect_stacks.exceptions import ConfigurationError

EVENT_ID_NAMESPACE = uuid.UUID("6b1f5f0e-5c4e-4d55-9a57-0c2f8f1e7a10")

# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class EventSpec:
    """One event name: what its resource carries and what its payload holds."""

    name: str
    description: str
    resource_id: str  # a pattern, for the docs
    labels: Mapping[str, str]  # resource labels besides prefect.resource.id/name
    payload: Mapping[str, str]  # field -> description
    example: Mapping[str, Any] = field(default_factory=dict)


_GIT_LABELS = {
    "stacks.repository": "Normalized repository, e.g. `github.com/acme/shop`.",
    "stacks.branch": "Branch name, e.g. `main` or `feature/login`.",
}
_PR_PAYLOAD = {
    "repository": "Normalized repository.",
    "number": "Pull (merge) request number.",
    "title": "Title.",
    "author": "Login of the author.",
    "head_ref": "Source branch.",
    "head_sha": "Commit at the head of the source branch.",
    "base_ref": "Target branch.",
    "url": "Web page of the pull request.",
    "action": "opened, updated, closed or merged.",
}
_PR_LABELS = {
    "stacks.repository": "Normalized repository.",
    "stacks.pull-request.number": "The number, as a string.",
    "stacks.branch": "Source branch.",
}
_ENV_PAYLOAD = {
    "name": "Environment name.",
    "kind": "demo, pr, static ...",
    "state": "provisioning, ready, destroying, destroyed or failed.",
    "url": "URL of the environment, if any.",
    "owner": "Who it is for.",
    "expires_at": "ISO time of expiry, or null when kept.",
}

VOCABULARY: dict[str, EventSpec] = {}


def _spec(spec: EventSpec) -> None:
    VOCABULARY[spec.name] = spec


_spec(
    EventSpec(
        name="stacks.git.commit",
        description="A branch head moved to a new commit (or a branch appeared).",
        resource_id="stacks.git.<repository>@<branch>",
        labels=_GIT_LABELS,
        payload={
            "repository": "Normalized repository.",
            "branch": "Branch name.",
            "sha": "The new head commit.",
            "before": "The previous head known to the sender, or null for a new branch.",
        },
        example={"repository": "github.com/acme/shop", "branch": "main", "sha": "9f2c…"},
    )
)
for _action, _what in (
    (
        "opened",
        "A pull request was opened or reopened, or may have become eligible (ready for "
        "review, labels or base changed).",
    ),
    ("updated", "New commits were pushed to a pull request's branch."),
    ("closed", "A pull request was closed without merging."),
    ("merged", "A pull request was merged."),
):
    _spec(
        EventSpec(
            name=f"stacks.pull-request.{_action}",
            description=_what,
            resource_id="stacks.pull-request.<repository>#<number>",
            labels=_PR_LABELS,
            payload=_PR_PAYLOAD,
            example={"repository": "github.com/acme/shop", "number": 42, "head_ref": "login"},
        )
    )
_spec(
    EventSpec(
        name="stacks.image.updated",
        description="A tag in a container registry points at a new manifest.",
        resource_id="stacks.image.<registry>/<repository>:<tag>",
        labels={
            "stacks.registry": "Registry host[:port].",
            "stacks.image.repository": "Repository in the registry, e.g. `acme/shop`.",
            "stacks.image.tag": "Tag.",
        },
        payload={
            "registry": "Registry host[:port].",
            "repository": "Repository in the registry.",
            "tag": "Tag.",
            "digest": "Manifest digest (sha256:…).",
            "image": "Pullable reference `<registry>/<repository>@<digest>`.",
        },
        example={"registry": "127.0.0.1:5000", "repository": "acme/shop", "tag": "1.4.0"},
    )
)
_spec(
    EventSpec(
        name="stacks.release.published",
        description="A release (or tag, for sources without releases) was published.",
        resource_id="stacks.release.<repository>",
        labels={"stacks.repository": "Normalized repository."},
        payload={
            "repository": "Normalized repository.",
            "tag": "Release tag, e.g. `v1.4.0`.",
            "name": "Release title.",
            "url": "Web page of the release.",
            "prerelease": "True for a pre-release.",
        },
        example={"repository": "github.com/acme/shop", "tag": "v1.4.0"},
    )
)
_spec(
    EventSpec(
        name="stacks.stack.applied",
        description="A stack-apply run applied a stack into a workspace (or found nothing "
        "to change); its resource name carries the page URL, so `prefect deployment run "
        "--watch` shows it.",
        resource_id="stacks.stack.<stack>/<workspace>",
        labels={
            "stacks.stack": "Name of the TerraformStack block.",
            "stacks.workspace": "Terraform workspace.",
        },
        payload={
            "stack": "Name of the TerraformStack block.",
            "workspace": "Terraform workspace.",
            "url": "The `url` output of the stack, or null.",
            "add": "Resources created (replacements count here too).",
            "change": "Resources updated in place.",
            "destroy": "Resources destroyed (replacements count here too).",
        },
        example={"stack": "local-webapp", "workspace": "default", "url": "http://127.0.0.1:8080/"},
    )
)
_STACK_LABELS = {
    "stacks.stack": "Name of the TerraformStack block.",
    "stacks.workspace": "Terraform workspace.",
}
_spec(
    EventSpec(
        name="stacks.stack.drifted",
        description="A drift check found the real infrastructure differing from the stack "
        "(once when it starts, and again only when what differs changes).",
        resource_id="stacks.stack.<stack>/<workspace>",
        labels=_STACK_LABELS,
        payload={
            "stack": "Name of the TerraformStack block.",
            "workspace": "Terraform workspace.",
            "resources": "Addresses of the resources that differ (at most 50).",
            "count": "How many resources differ.",
            "digest": "Identifies this drift: the same drift, the same digest.",
        },
        example={"stack": "iam", "workspace": "default", "count": 1},
    )
)
_spec(
    EventSpec(
        name="stacks.stack.drift-resolved",
        description="A drift check found a stack that had drifted back in sync.",
        resource_id="stacks.stack.<stack>/<workspace>",
        labels=_STACK_LABELS,
        payload={"stack": "Name of the TerraformStack block.", "workspace": "Terraform workspace."},
        example={"stack": "iam", "workspace": "default"},
    )
)
_DEPLOY_LABELS = {
    "stacks.cluster": "Name of the KubernetesCluster block.",
    "stacks.namespace": "Namespace.",
    "stacks.workload": "Workload, e.g. `deployment/web`.",
}
_spec(
    EventSpec(
        name="stacks.deploy.succeeded",
        description="An image was deployed to a Kubernetes target, rolled out and passed "
        "its checks and watch window: it is the target's known-good image now.",
        resource_id="stacks.deploy.<cluster>/<namespace>/<workload>",
        labels=_DEPLOY_LABELS,
        payload={
            "target": "`<cluster>/<namespace>/<workload>`.",
            "image": "Reference deployed, `<repository>[:<tag>]@<digest>`.",
            "digest": "Manifest digest deployed.",
            "tag": "Tag it was pushed as, or null.",
            "method": "kubectl, terraform-kubernetes or terraform-helm.",
        },
        example={"target": "prod/shop/deployment/web", "digest": "sha256:…"},
    )
)
_spec(
    EventSpec(
        name="stacks.deploy.rolled-back",
        description="A target went back to an earlier image: a deploy failed its rollout, "
        "a check or its watch window (the failed digest is quarantined for the target), or "
        "someone ran the rollback deployment (the target is pinned).",
        resource_id="stacks.deploy.<cluster>/<namespace>/<workload>",
        labels=_DEPLOY_LABELS,
        payload={
            "target": "`<cluster>/<namespace>/<workload>`.",
            "image": "Reference now running, `<repository>[:<tag>]@<digest>`.",
            "digest": "Digest now running (the known-good one).",
            "failed_digest": "Digest rolled back from, or null.",
            "reason": "Why: the failure, or the reason given for a manual rollback.",
            "stage": "rollout, check, alerts, or manual.",
            "quarantined": "True when the failed digest was quarantined.",
            "pinned": "True when the target is pinned to this digest.",
        },
        example={"target": "prod/shop/deployment/web", "stage": "rollout"},
    )
)
for _state, _what in (
    ("created", "An environment is ready (applied)."),
    ("expiring", "An environment expires soon (the janitor's warning)."),
    ("destroyed", "An environment was torn down."),
    ("teardown-failed", "A teardown failed; it is retried with backoff."),
):
    _spec(
        EventSpec(
            name=f"stacks.environment.{_state}",
            description=_what,
            resource_id="stacks.environment.<name>",
            labels={
                "stacks.environment": "Environment name.",
                "stacks.environment.kind": "demo, pr, static ...",
            },
            payload=_ENV_PAYLOAD,
            example={"name": "demo-7f3a", "kind": "demo", "state": "ready"},
        )
    )

EVENT_NAMES = frozenset(VOCABULARY)


def spec(name: str) -> EventSpec:
    try:
        return VOCABULARY[name]
    except KeyError:
        raise ConfigurationError(
            f"{name!r} is not a prefect-stacks event; known: {', '.join(sorted(VOCABULARY))}"
        ) from None


# --------------------------------------------------------------------------- builders

_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?([\w.-]+):(?!//)(.+)$")


def normalize_repository(url: str) -> str:
    """One name for a repository however it is written: ``https://github.com/Acme/shop.git``,
    ``git@github.com:Acme/shop`` and ``ssh://git@github.com/Acme/shop`` are all
    ``github.com/acme/shop``; a local path or ``file://`` URL is ``file/<absolute path>``.
    Credentials in the URL are dropped (they must never reach an event)."""
    text = url.strip()
    if not text:
        raise ConfigurationError("a repository URL is empty")
    if text.startswith("/") or text.startswith("file://"):
        path = text.removeprefix("file://")
        host, rest = "file", path
    elif "://" in text:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        if parts.port:
            host = f"{host}:{parts.port}"
        rest = parts.path
    elif match := _SCP_LIKE.match(text):
        host, rest = match.group(1).lower(), match.group(2)
    else:
        raise ConfigurationError(f"{url!r} is not a repository URL (https://, ssh://, git@, /path)")
    rest = rest.strip("/").removesuffix(".git").rstrip("/")
    if host != "file":
        rest = rest.lower()
    if not host or not rest:
        raise ConfigurationError(f"{url!r} names no repository")
    return f"{host}/{rest}"


def event_id(name: str, resource_id: str, version: str) -> uuid.UUID:
    """Stable id: the same change is the same event wherever it was seen."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{name}\n{resource_id}\n{version}")


def _event(
    name: str,
    resource: dict[str, str],
    payload: dict[str, Any],
    version: str,
    occurred: datetime | None = None,
    related: list[dict[str, str]] | None = None,
) -> Event:
    spec(name)
    missing = set(VOCABULARY[name].payload) - set(payload)
    extra = set(payload) - set(VOCABULARY[name].payload)
    if missing or extra:  # a programming error: the vocabulary is the contract
        raise ValueError(f"{name}: payload missing {sorted(missing)}, unexpected {sorted(extra)}")
    kwargs: dict[str, Any] = {}
    if occurred is not None:
        kwargs["occurred"] = occurred
    if related:
        kwargs["related"] = related
    return Event(
        event=name,
        resource=resource,
        payload=payload,
        id=event_id(name, resource["prefect.resource.id"], version),
        **kwargs,
    )


def git_commit(repository: str, branch: str, sha: str, before: str | None = None) -> Event:
    repo = normalize_repository(repository)
    if before and set(before) == {"0"}:
        before = None  # GitHub/GitLab's "no previous commit"
    return _event(
        "stacks.git.commit",
        {
            "prefect.resource.id": f"stacks.git.{repo}@{branch}",
            "prefect.resource.name": f"{repo}@{branch}",
            "stacks.repository": repo,
            "stacks.branch": branch,
        },
        {"repository": repo, "branch": branch, "sha": sha, "before": before},
        version=sha,
    )


def transition_instant(value: datetime | str | None) -> str | None:
    """One spelling of a lifecycle transition's time, however the sender wrote it
    (``2026-12-01T20:42:56Z``, ``…+00:00``, GitLab's ``2026-12-01 20:42:56 UTC``, a
    datetime): UTC, to the second. ``None`` when there is none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip().replace(" UTC", "+00:00")
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The pull request field that says when each lifecycle transition happened (GitHub's
# names; the same in the REST API and in webhook payloads): part of the event's id.
PR_TRANSITION_FIELDS = {"opened": "updated_at", "closed": "closed_at", "merged": "merged_at"}


def pull_request(
    action: str,
    *,
    repository: str,
    number: int,
    head_ref: str,
    head_sha: str,
    base_ref: str,
    title: str = "",
    author: str = "",
    url: str = "",
    at: datetime | str | None = None,
) -> Event:
    """A pull request event. Its id is derived from the head commit and, for the
    lifecycle transitions (``opened``, ``closed``, ``merged``), from ``at``: when the
    pull request became open or eligible (its ``updated_at`` then), was closed
    (``closed_at``) or merged (``merged_at``). So a reopen, or a second close, is a new
    event, while one transition seen twice (a redelivery, a watcher and a webhook) is one.
    ``updated`` is identified by the new head commit alone."""
    repo = normalize_repository(repository)
    instant = transition_instant(at) if action != "updated" else None
    version = f"{head_sha}@{instant}" if instant else head_sha
    name = f"stacks.pull-request.{action}"
    return _event(
        name,
        {
            "prefect.resource.id": f"stacks.pull-request.{repo}#{number}",
            "prefect.resource.name": f"{repo}#{number}",
            "stacks.repository": repo,
            "stacks.pull-request.number": str(number),
            "stacks.branch": head_ref,
        },
        {
            "repository": repo,
            "number": number,
            "title": title,
            "author": author,
            "head_ref": head_ref,
            "head_sha": head_sha,
            "base_ref": base_ref,
            "url": url,
            "action": action,
        },
        version=version,
    )


def image_updated(registry: str, repository: str, tag: str, digest: str) -> Event:
    registry = registry.lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    ref = f"{registry}/{repository}:{tag}"
    return _event(
        "stacks.image.updated",
        {
            "prefect.resource.id": f"stacks.image.{ref}",
            "prefect.resource.name": ref,
            "stacks.registry": registry,
            "stacks.image.repository": repository,
            "stacks.image.tag": tag,
        },
        {
            "registry": registry,
            "repository": repository,
            "tag": tag,
            "digest": digest,
            "image": f"{registry}/{repository}@{digest}",
        },
        version=digest,
    )


def release_published(
    repository: str, tag: str, name: str = "", url: str = "", prerelease: bool = False
) -> Event:
    repo = normalize_repository(repository)
    return _event(
        "stacks.release.published",
        {
            "prefect.resource.id": f"stacks.release.{repo}",
            "prefect.resource.name": repo,
            "stacks.repository": repo,
        },
        {"repository": repo, "tag": tag, "name": name or tag, "url": url, "prerelease": prerelease},
        version=tag,
    )


def stack_applied(
    stack: str,
    workspace: str,
    url: str | None,
    *,
    add: int,
    change: int,
    destroy: int,
    flow_run_id: str,
    flow_run_name: str = "",
) -> Event:
    """One apply by one flow run (the run is the version, and a related resource, so
    the event shows among the run's own in `--watch` and the UI)."""
    where = f"{stack}/{workspace}"
    return _event(
        "stacks.stack.applied",
        {
            "prefect.resource.id": f"stacks.stack.{where}",
            "prefect.resource.name": f"{where} {url}" if url else where,
            "stacks.stack": stack,
            "stacks.workspace": workspace,
        },
        {
            "stack": stack,
            "workspace": workspace,
            "url": url,
            "add": add,
            "change": change,
            "destroy": destroy,
        },
        version=flow_run_id,
        related=_flow_run_related(flow_run_id, flow_run_name),
    )


def stack_drifted(stack: str, workspace: str, resources: list[str], digest: str) -> Event:
    where = f"{stack}/{workspace}"
    return _event(
        "stacks.stack.drifted",
        {
            "prefect.resource.id": f"stacks.stack.{where}",
            "prefect.resource.name": where,
            "stacks.stack": stack,
            "stacks.workspace": workspace,
        },
        {
            "stack": stack,
            "workspace": workspace,
            "resources": resources[:50],
            "count": len(resources),
            "digest": digest,
        },
        version=digest,
    )


def stack_drift_resolved(stack: str, workspace: str, digest: str) -> Event:
    """``digest``: the drift that is over (one resolution per drift)."""
    where = f"{stack}/{workspace}"
    return _event(
        "stacks.stack.drift-resolved",
        {
            "prefect.resource.id": f"stacks.stack.{where}",
            "prefect.resource.name": where,
            "stacks.stack": stack,
            "stacks.workspace": workspace,
        },
        {"stack": stack, "workspace": workspace},
        version=f"resolved-{digest}",
    )


def _flow_run_related(flow_run_id: str | None, name: str = "") -> list[dict[str, str]]:
    """The flow run an event is about, as a related resource: the event then shows in
    that run's own event feed (the UI, `prefect deployment run --watch`)."""
    if not flow_run_id:
        return []
    return [
        {
            "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
            "prefect.resource.role": "flow-run",
            "prefect.resource.name": name or flow_run_id,
        }
    ]


def environment_event(
    what: str,
    *,
    name: str,
    kind: str,
    state: str,
    url: str | None,
    owner: str | None,
    expires_at: datetime | None,
    version: str,
    flow_run_id: str | None = None,
) -> Event:
    return _event(
        f"stacks.environment.{what}",
        {
            "prefect.resource.id": f"stacks.environment.{name}",
            "prefect.resource.name": f"{name} {url}" if url else name,
            "stacks.environment": name,
            "stacks.environment.kind": kind,
        },
        {
            "name": name,
            "kind": kind,
            "state": state,
            "url": url,
            "owner": owner,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        version=version,
        related=_flow_run_related(flow_run_id),
    )


def _deploy_resource(target: str) -> dict[str, str]:
    cluster, namespace, workload = target.split("/", 2)
    return {
        "prefect.resource.id": f"stacks.deploy.{target}",
        "prefect.resource.name": target,
        "stacks.cluster": cluster,
        "stacks.namespace": namespace,
        "stacks.workload": workload,
    }


def deploy_succeeded(
    target: str, image: str, digest: str, tag: str | None, method: str, flow_run_id: str | None
) -> Event:
    return _event(
        "stacks.deploy.succeeded",
        _deploy_resource(target),
        {"target": target, "image": image, "digest": digest, "tag": tag, "method": method},
        version=f"{digest}\n{flow_run_id}",
        related=_flow_run_related(flow_run_id),
    )


def deploy_rolled_back(
    target: str,
    image: str,
    digest: str,
    *,
    failed_digest: str | None,
    reason: str,
    stage: str,
    quarantined: bool,
    pinned: bool,
    flow_run_id: str | None,
) -> Event:
    return _event(
        "stacks.deploy.rolled-back",
        _deploy_resource(target),
        {
            "target": target,
            "image": image,
            "digest": digest,
            "failed_digest": failed_digest,
            "reason": reason,
            "stage": stage,
            "quarantined": quarantined,
            "pinned": pinned,
        },
        version=f"{failed_digest}->{digest}\n{flow_run_id}",
        related=_flow_run_related(flow_run_id),
    )
