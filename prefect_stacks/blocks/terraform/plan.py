"""What a Terraform plan will do, read from ``terraform show -json`` of the plan file.

:func:`summarize_plan_json` counts resources the way ``terraform plan`` prints them and,
for each resource updated or replaced, keeps the attributes that change as text fit to
publish (the plan summary becomes a markdown artifact and the approval form): values
marked sensitive in the plan (``before_sensitive`` / ``after_sensitive``) become
``(sensitive)``, values computed at apply time ``(known after apply)``, long values are
cut. Terraform does not mark everything derived from a secret (``terraform_data``'s
``output`` of a sensitive ``input`` is not), so a value that contains the value of a
sensitive variable, or one of the ``secrets`` given, is ``(sensitive)`` too. The raw plan
(which holds every variable value, secrets included) is never kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

MAX_VALUE_CHARS = 60  # a value longer than this is cut, so that a table stays readable
MAX_ATTRIBUTES = 12  # attribute changes listed per resource; the rest are counted
SENSITIVE = "(sensitive)"
UNKNOWN = "(known after apply)"
ABSENT = "(none)"

# https://developer.hashicorp.com/terraform/internals/json-format#resource_changes
REASONS = {
    "replace_because_cannot_update": "an attribute that cannot be updated in place changes",
    "replace_because_tainted": "the resource is tainted",
    "replace_by_request": "replacement was requested (-replace)",
    "replace_by_triggers": "a replace_triggered_by reference changed",
    "delete_because_no_resource_config": "it is no longer in the configuration",
    "delete_because_no_module": "its module is no longer in the configuration",
    "delete_because_wrong_repetition": "its count/for_each form changed",
    "delete_because_count_index": "its count index is out of range",
    "delete_because_each_key": "its for_each key is gone",
    "read_because_config_unknown": "its configuration is known only after apply",
    "read_because_dependency_pending": "a dependency has pending changes",
}


class AttributeChange(BaseModel):
    """One attribute of a resource that changes, as text safe to publish."""

    path: str = Field(description="Attribute path, e.g. `input` or `tags.env`.")
    before: str = Field(description="Value before, `(sensitive)` or `(none)`.")
    after: str = Field(description="Value after, `(sensitive)`, `(known after apply)` ...")
    forces_replacement: bool = Field(False, description="Listed in the plan's replace_paths.")


class ResourceChange(BaseModel):
    """One resource in a plan and what Terraform will do to it."""

    address: str = Field(description="Resource address, e.g. `terraform_data.web`.")
    actions: list[str] = Field(description="Terraform actions: create, update, delete ...")
    action_reason: str | None = Field(
        None, description="Terraform's reason code, e.g. replace_because_cannot_update."
    )
    replace_paths: list[str] = Field(
        default_factory=list, description="Attributes whose change forces the replacement."
    )
    changes: list[AttributeChange] = Field(
        default_factory=list, description="Attributes that change (updates and replaces)."
    )
    more_changes: int = Field(0, description="Changing attributes left out of `changes`.")

    @property
    def action(self) -> str:
        if self.actions == ["delete", "create"] or self.actions == ["create", "delete"]:
            return "replace"
        return "+".join(self.actions)

    def reason(self) -> str:
        """Why Terraform does this, in words: the reason code, and what forces a replace."""
        parts = []
        if self.action_reason:
            parts.append(REASONS.get(self.action_reason, self.action_reason.replace("_", " ")))
        if self.replace_paths:
            parts.append("forced by " + ", ".join(f"`{p}`" for p in self.replace_paths))
        return "; ".join(parts)


class PlanSummary(BaseModel):
    """What a plan will do, read from ``terraform show -json`` of the plan file."""

    stack: str = Field(description="Name of the stack block.")
    workspace: str = Field(description="Terraform workspace the plan is for.")
    add: int = Field(0, description="Resources to create (replacements count here too).")
    change: int = Field(0, description="Resources to update in place.")
    destroy: int = Field(0, description="Resources to destroy (replacements count here too).")
    resources: list[ResourceChange] = Field(
        default_factory=list, description="Every resource with an action other than no-op."
    )
    output_changes: list[str] = Field(
        default_factory=list, description="Names of root outputs that change."
    )
    plan_file: str | None = Field(None, description="Path of the saved plan file.")
    is_destroy: bool = Field(False, description="Whether this is a destroy plan.")

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy or self.output_changes)

    def headline(self) -> str:
        if not self.has_changes:
            return f"{self.stack}/{self.workspace}: no changes."
        return (
            f"{self.stack}/{self.workspace}: {self.add} to add, {self.change} to change, "
            f"{self.destroy} to destroy."
        )

    def to_markdown(self) -> str:
        lines = [f"### Terraform plan: `{self.stack}` / `{self.workspace}`", ""]
        lines.append(
            "| to add | to change | to destroy |\n|---:|---:|---:|\n"
            f"| {self.add} | {self.change} | {self.destroy} |"
        )
        lines.append("")
        if self.resources:
            lines.append("| resource | action |\n|---|---|")
            for rc in self.resources:
                lines.append(f"| `{rc.address}` | {rc.action} |")
        else:
            lines.append("No resource changes.")
        for rc in self.resources:
            if rc.changes or rc.reason():
                lines += ["", *_resource_details(rc)]
        if self.output_changes:
            lines.append("")
            lines.append("Outputs changing: " + ", ".join(f"`{o}`" for o in self.output_changes))
        return "\n".join(lines)


def _resource_details(rc: ResourceChange) -> list[str]:
    """A heading per updated/replaced resource (with the reason) and a small table of
    its attributes, before -> after; an attribute that forces the replacement is marked."""
    lines = [f"#### `{rc.address}`: {rc.action}"]
    if rc.reason():
        lines += ["", f"Why: {rc.reason()}."]
    if rc.changes:
        lines += ["", "| attribute | before → after |", "|---|---|"]
        for ch in rc.changes:
            mark = " (forces replacement)" if ch.forces_replacement else ""
            lines.append(f"| `{ch.path}`{mark} | {_cell(ch.before)} → {_cell(ch.after)} |")
        if rc.more_changes:
            lines.append(f"| … and {rc.more_changes} more | |")
    return lines


def _cell(text: str) -> str:
    if text in (SENSITIVE, UNKNOWN, ABSENT):
        return f"_{text}_"
    # a table cell: no pipes or newlines; backticks would end the code span early
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def summarize_plan_json(
    plan: dict[str, Any], *, stack: str, workspace: str, secrets: Iterable[str] = ()
) -> PlanSummary:
    """Count a ``terraform show -json`` plan the way ``terraform plan`` prints it: a
    replacement counts once in "add" and once in "destroy"; reads and no-ops not at all.
    ``secrets``: values never to show (the block's secret variables, credentials)."""
    summary = PlanSummary(stack=stack, workspace=workspace)
    hidden = _secret_values(plan, secrets)
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode") == "data":
            continue
        change = rc.get("change") or {}
        actions = list(change.get("actions") or [])
        if not actions or actions == ["no-op"] or actions == ["read"]:
            continue
        if "create" in actions:
            summary.add += 1
        if "delete" in actions:
            summary.destroy += 1
        if "update" in actions:
            summary.change += 1
        summary.resources.append(_resource_change(rc, change, actions, hidden))
    for name, oc in (plan.get("output_changes") or {}).items():
        actions = (oc or {}).get("actions") or []
        if actions and actions != ["no-op"]:
            summary.output_changes.append(name)
    return summary


def _secret_values(plan: dict[str, Any], secrets: Iterable[str]) -> list[str]:
    """The given secrets and the values of the variables the configuration declares
    sensitive (as text), longest first."""
    found = {s for s in secrets if isinstance(s, str) and s}
    declared = ((plan.get("configuration") or {}).get("root_module") or {}).get("variables")
    for name, var in (declared or {}).items():
        if (var or {}).get("sensitive"):
            value = ((plan.get("variables") or {}).get(name) or {}).get("value")
            if value not in (None, ""):
                found.add(value if isinstance(value, str) else json.dumps(value))
    # as they appear in a JSON-rendered value too (quotes, backslashes escaped)
    found |= {json.dumps(s, ensure_ascii=False)[1:-1] for s in found}
    return sorted(found, key=len, reverse=True)


def _resource_change(
    rc: dict[str, Any], change: dict[str, Any], actions: list[str], secrets: list[str]
) -> ResourceChange:
    result = ResourceChange(
        address=rc.get("address", "?"),
        actions=actions,
        action_reason=rc.get("action_reason") or None,
        replace_paths=[_path_text(p) for p in change.get("replace_paths") or []],
    )
    if "update" in actions or ("create" in actions and "delete" in actions):
        found = _diff(change, secrets)
        for ch in found:
            ch.forces_replacement = any(
                ch.path == p or ch.path.startswith((p + ".", p + "[")) for p in result.replace_paths
            )
        # what forces a replacement first, then the rest in plan order
        found.sort(key=lambda ch: not ch.forces_replacement)
        result.changes = found[:MAX_ATTRIBUTES]
        result.more_changes = max(0, len(found) - MAX_ATTRIBUTES)
    return result


def _path_text(steps: Any) -> str:
    """``["tags", "env"]`` -> ``tags.env``; ``["rule", 0, "port"]`` -> ``rule[0].port``."""
    if not isinstance(steps, list):
        return str(steps)
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


class _Missing:
    pass


_MISSING = _Missing()


def _diff(change: dict[str, Any], secrets: list[str]) -> list[AttributeChange]:
    found: list[AttributeChange] = []
    _walk(
        [],
        change.get("before"),
        change.get("after"),
        change.get("before_sensitive", False),
        change.get("after_sensitive", False),
        change.get("after_unknown", False),
        found,
    )
    for ch in found:  # secrets first, on the whole text; then cut to length
        for side in ("before", "after"):
            text = getattr(ch, side)
            if any(secret in text for secret in secrets):
                text = SENSITIVE
            elif len(text) > MAX_VALUE_CHARS:
                text = text[: MAX_VALUE_CHARS - 1] + "…"
            setattr(ch, side, text)
    return found


def _child(mask: Any, key: Any) -> Any:
    """The part of a sensitive/unknown mask (True, False, or the value's shape) at key."""
    if isinstance(mask, bool):
        return mask
    if isinstance(mask, dict):
        return mask.get(key, False)
    if isinstance(mask, list) and isinstance(key, int) and key < len(mask):
        return mask[key]
    return False


def _any_true(mask: Any) -> bool:
    if isinstance(mask, dict):
        return any(_any_true(v) for v in mask.values())
    if isinstance(mask, list):
        return any(_any_true(v) for v in mask)
    return mask is True


def _walk(
    path: list[Any],
    before: Any,
    after: Any,
    before_sensitive: Any,
    after_sensitive: Any,
    after_unknown: Any,
    found: list[AttributeChange],
) -> None:
    masks = (before_sensitive, after_sensitive, after_unknown)
    both_maps = isinstance(before, dict) and isinstance(after, dict)
    both_lists = isinstance(before, list) and isinstance(after, list)
    # descend into maps always (attribute names are what a reader looks for) and into
    # lists of the same length (a changed element is then named rule[1].port)
    if (both_maps or (both_lists and len(before) == len(after))) and not any(
        m is True for m in masks
    ):
        keys = (
            list(after) + [k for k in before if k not in after] if both_maps else range(len(after))
        )
        for key in keys:
            _walk(
                [*path, key],
                _get(before, key),
                _get(after, key),
                *(_child(m, key) for m in masks),
                found,
            )
        return
    if not path and (before is None or after is None):
        return  # the whole object is absent on one side (create/delete)
    before = None if before is _MISSING else before
    after = None if after is _MISSING else after
    unknown = _any_true(after_unknown)
    if not unknown and before == after:
        return
    found.append(
        AttributeChange(
            path=_path_text(path) or "(resource)",
            before=_render(before, before_sensitive),
            after=UNKNOWN if unknown else _render(after, after_sensitive),
        )
    )


def _get(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except (KeyError, IndexError, TypeError):
        return _MISSING


def _render(value: Any, sensitive: Any) -> str:
    if _any_true(sensitive):
        return SENSITIVE
    if value is None:
        return ABSENT
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


__all__ = [
    "AttributeChange",
    "PlanSummary",
    "ResourceChange",
    "summarize_plan_json",
]
