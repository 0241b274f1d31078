"""Automations as code: ``deployments/automations/*.yaml`` applied idempotently.

File format (one or more automations per file)::

    automations:
      - name: plan-on-push                # unique: the key for create-or-update
        description: Plan the stack when main moves.
        enabled: true
        trigger:                          # a Prefect event trigger
          expect: [stacks.git.commit]     # names from prefect_stacks.events (wildcards ok)
          match: {stacks.repository: github.com/acme/stacks, stacks.branch: main}
          # posture (Reactive), threshold (1), within (0), after, for_each, match_related
        actions:
          - type: run-deployment
            deployment: stack-plan/local-webapp   # by name; resolved to its id
            parameters:
              workspace: "{{ event.payload.branch }}"

Prefect renders a template that names a missing field as nothing, silently (an
``InvalidJinja`` in a ``prefect.automation.action.failed`` event). So before anything is
sent, every template in the actions is parsed and each ``event.payload.<field>`` and
``event.resource[<label>]`` it reads is checked against the vocabulary of every event the
trigger expects; a bad one is refused with a message naming the file, the automation, the
parameter and the fields that do exist.

Applying is create-or-update by name: a rerun creates nothing new and updates what
changed (the automations carry the tag ``prefect-stacks``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes as jn
import yaml
from prefect import get_client
from prefect.events.actions import ActionTypes
from prefect.events.schemas.automations import AutomationCore, EventTrigger
from pydantic import TypeAdapter, ValidationError

from prefect_stacks._internal import prefect_api
from prefect_stacks.events.vocabulary import VOCABULARY, EventSpec
from prefect_stacks.exceptions import ConfigurationError

MANAGED_TAG = "prefect-stacks"
_EVENT_ATTRIBUTES = {"id", "event", "occurred", "received", "resource", "related", "payload"}
_RESOURCE_BUILTINS = {"id", "name", "prefect.resource.id", "prefect.resource.name"}


@dataclass
class AutomationFile:
    path: Path
    automations: list[dict[str, Any]]


def automations_dir() -> Path:
    from prefect_stacks._internal.data import deployments_dir

    return deployments_dir() / "automations"


def load_files(directory: Path) -> list[AutomationFile]:
    files = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("automations", []), list):
            raise ConfigurationError(f"{path}: expected a mapping with a list `automations:`")
        files.append(AutomationFile(path, data.get("automations") or []))
    return files


# --------------------------------------------------------------------------- templates


def _path_of(node: jn.Node) -> list[str] | None:
    """``event.payload.sha`` / ``event.resource["stacks.branch"]`` -> its parts."""
    if isinstance(node, jn.Name):
        return [node.name]
    if isinstance(node, jn.Getattr):
        base = _path_of(node.node)
        return None if base is None else [*base, node.attr]
    if isinstance(node, jn.Getitem) and isinstance(node.arg, jn.Const):
        base = _path_of(node.node)
        return None if base is None else [*base, str(node.arg.value)]
    return None


def template_references(template: str) -> list[list[str]]:
    """Longest ``event...`` attribute paths a template reads."""
    tree = jinja2.Environment().parse(template)  # TemplateSyntaxError on bad syntax
    paths = {
        tuple(path)
        for node in tree.find_all((jn.Getattr, jn.Getitem, jn.Name))
        if (path := _path_of(node)) and path[0] == "event"
    }
    # keep the longest: event.payload.sha, not also event.payload and event
    return [list(p) for p in sorted(paths) if not any(q[: len(p)] == p and q != p for q in paths)]


def expected_specs(expect: list[str] | set[str]) -> list[EventSpec] | None:
    """Specs of the events a trigger expects; None when any is not ours (unchecked)."""
    specs: list[EventSpec] = []
    for pattern in expect or []:
        matched = [s for n, s in VOCABULARY.items() if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            if pattern.startswith("stacks."):
                raise ConfigurationError(
                    f"trigger expects {pattern!r}, which is not a prefect-stacks event; "
                    f"known: {', '.join(sorted(VOCABULARY))}"
                )
            return None
        specs.extend(matched)
    return specs or None


def check_template(template: str, specs: list[EventSpec]) -> list[str]:
    """Problems with ``template`` for events of ``specs`` (empty when fine)."""
    try:
        refs = template_references(template)
    except jinja2.TemplateSyntaxError as exc:
        return [f"template {template!r} does not parse: {exc}"]
    problems = []
    for path in refs:
        if len(path) < 2:
            continue
        attr = path[1]
        if attr not in _EVENT_ATTRIBUTES:
            problems.append(
                f"`event.{attr}` does not exist (events have {sorted(_EVENT_ATTRIBUTES)})"
            )
            continue
        if len(path) < 3:
            continue
        for spec in specs:
            if attr == "payload" and path[2] not in spec.payload:
                problems.append(
                    f"`event.payload.{path[2]}` is not in {spec.name} "
                    f"(its payload: {', '.join(spec.payload)})"
                )
            elif attr == "resource" and path[2] not in {*spec.labels, *_RESOURCE_BUILTINS}:
                problems.append(
                    f"`event.resource[{path[2]!r}]` is not a label of {spec.name} "
                    f"(its labels: {', '.join(sorted({*spec.labels, *_RESOURCE_BUILTINS}))})"
                )
    return problems


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}[{i}]")]
    return []


# --------------------------------------------------------------------------- building


def build(raw: dict[str, Any], source: str, deployment_ids: dict[str, Any]) -> AutomationCore:
    """One automation from its YAML mapping; every problem is a ConfigurationError that
    names ``source`` and the automation."""
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"{source}: automation {name!r}"
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{source}: every automation needs a `name`")
    trigger_raw = dict(raw.get("trigger") or {})
    trigger_raw.setdefault("type", "event")
    trigger_raw.setdefault("posture", "Reactive")
    if not trigger_raw.get("expect"):
        raise ConfigurationError(f"{where}: trigger.expect names no event")
    try:
        trigger = EventTrigger.model_validate(trigger_raw)
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: invalid trigger: {exc}") from exc
    try:
        specs = expected_specs(trigger.expect)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    actions = []
    for i, action in enumerate(raw.get("actions") or []):
        action = dict(action)
        if action.get("type") == "run-deployment" and "deployment" in action:
            deployment = action.pop("deployment")
            if deployment not in deployment_ids:
                raise ConfigurationError(
                    f"{where}: action {i} runs deployment {deployment!r}, which does not "
                    "exist on the server; deploy it first (`prefect-stacks up` does)"
                )
            action.update(source="selected", deployment_id=str(deployment_ids[deployment]))
        if specs:
            for field_path, text in _strings(action.get("parameters") or {}, "parameters"):
                problems = check_template(text, specs)
                if problems:
                    raise ConfigurationError(
                        f"{where}: action {i} {field_path} = {text!r}: " + "; ".join(problems)
                    )
        actions.append(action)
    if not actions:
        raise ConfigurationError(f"{where}: no actions")
    try:
        parsed_actions = TypeAdapter(list[ActionTypes]).validate_python(actions)
        return AutomationCore(
            name=name,
            description=raw.get("description", ""),
            enabled=bool(raw.get("enabled", True)),
            tags=sorted({MANAGED_TAG, *raw.get("tags", [])}),
            trigger=trigger,
            actions=parsed_actions,
        )
    except ValidationError as exc:
        raise ConfigurationError(f"{where}: invalid: {exc}") from exc


def _deployment_names(raws: list[dict[str, Any]]) -> set[str]:
    return {
        a["deployment"]
        for raw in raws
        if isinstance(raw, dict)
        for a in raw.get("actions") or []
        if isinstance(a, dict) and "deployment" in a
    }


def _comparable(automation: Any) -> dict[str, Any]:
    data = automation.model_dump(mode="json")
    keep = ("name", "description", "enabled", "tags", "trigger", "actions")
    out = {k: data.get(k) for k in keep}
    trigger = dict(out["trigger"] or {})
    for key in ("after", "expect", "for_each"):  # sets: the order is not meaningful
        trigger[key] = sorted(trigger.get(key) or [])
    out["trigger"] = trigger
    out["tags"] = sorted(out["tags"] or [])
    return out


def apply(directory: Path | None = None, *, check_only: bool = False) -> dict[str, list[str]]:
    """Create or update every automation in ``directory`` (default: the package's
    ``deployments/automations``). All files are checked before anything is written."""
    directory = directory or automations_dir()
    files = load_files(directory)
    report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    with get_client(sync_client=True) as client:
        ids: dict[str, Any] = {}
        for name in {n for f in files for n in _deployment_names(f.automations)}:
            if found := prefect_api.deployment_id(client, name):
                ids[name] = found
        built: list[AutomationCore] = []
        names: set[str] = set()
        for file in files:
            for raw in file.automations:
                automation = build(raw, file.path.name, ids)
                if automation.name in names:
                    raise ConfigurationError(
                        f"{file.path.name}: automation name {automation.name!r} is used twice"
                    )
                names.add(automation.name)
                built.append(automation)
        if check_only:
            report["unchanged"] = [a.name for a in built]
            return report
        for automation in built:
            existing = client.read_automations_by_name(automation.name)
            if not existing:
                client.create_automation(automation)
                report["created"].append(automation.name)
                continue
            first, *duplicates = sorted(existing, key=lambda a: str(a.id))
            for extra in duplicates:  # left by an older, non-idempotent apply
                client.delete_automation(extra.id)
            if _comparable(first) == _comparable(automation) and not duplicates:
                report["unchanged"].append(automation.name)
            else:
                client.update_automation(first.id, automation)
                report["updated"].append(automation.name)
    return report
