"""Drift: whether the real infrastructure still is what a stack says, read from a plan
with refresh (``terraform plan -detailed-exitcode``; the plan is never applied).

:func:`read_drift` turns the plan into a :class:`Drift`: what an apply would change back
(the plan's resources, attribute by attribute), what changed outside Terraform (the
plan's ``resource_drift``, in words for access resources), minus the known-noise diffs
the ignore rules name. :class:`DriftRecord` (one Prefect Variable per stack and
workspace) remembers the drift last told, so a drift is told once when it starts (and
when what differs changes) and once when it is resolved, not on every run.

An ignore rule is ``ADDRESS`` or ``ADDRESS:ATTRIBUTE``, shell-style patterns:
``github_team.team[*]:description`` ignores a team's description edited on GitHub;
``postgresql_grant.grant["readers/*"]`` every drift of the readers' grants.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from prefect_stacks import events
from prefect_stacks._internal.prefect_api import current_flow_run_url
from prefect_stacks._internal.variables import VariableRecord
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import PlanSummary, ResourceChange
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.iam.summary import AccessChange, access_changes

DRIFT_PREFIX = "stacks-drift-"
DRIFT_TAG = "prefect-stacks:drift"


@dataclass(frozen=True)
class IgnoreRule:
    address: str
    attribute: str | None = None

    @classmethod
    def parse(cls, text: str) -> IgnoreRule:
        address, _, attribute = text.strip().partition(":")
        if not address.strip():
            raise ConfigurationError(
                f"ignore rule {text!r}: write ADDRESS or ADDRESS:ATTRIBUTE, e.g. "
                "`github_team.team[*]:description`"
            )
        return cls(address.strip(), attribute.strip() or None)

    def covers(self, address: str, attribute: str | None = None) -> bool:
        # `[` in an address is literal: escape it for fnmatch, keep * and ?
        pattern = re.sub(r"(\[)", "[[]", self.address)
        if not fnmatch.fnmatchcase(address, pattern):
            return False
        if self.attribute is None:
            return True
        return attribute is not None and fnmatch.fnmatchcase(attribute, self.attribute)


@dataclass
class Drift:
    """What differs between a stack and the real infrastructure."""

    stack: str
    workspace: str
    resources: list[ResourceChange] = field(default_factory=list)
    outside: list[AccessChange] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.resources)

    @property
    def digest(self) -> str:
        """The same drift, the same digest (resources, actions and attribute values)."""
        shape = [
            [rc.address, rc.action, [(c.path, c.before, c.after) for c in rc.changes]]
            for rc in self.resources
        ]
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def headline(self) -> str:
        where = f"{self.stack}/{self.workspace}"
        if not self.drifted:
            return f"{where} is in sync"
        return f"{where} has drifted: {len(self.resources)} resource(s) differ"

    def to_markdown(self) -> str:
        lines = [f"### Drift check: `{self.stack}` / `{self.workspace}`", "", self.headline()]
        if self.outside:
            lines += ["", "Changed outside Terraform:", ""]
            lines += [f"- {c.sentence}" for c in self.outside]
        if self.resources:
            lines += ["", "| resource | an apply would | attribute | real | stack says |"]
            lines.append("|---|---|---|---|---|")
            for rc in self.resources:
                rows = rc.changes or [None]
                for change in rows:
                    attribute, real, wanted = (
                        (change.path, change.before, change.after) if change else ("", "", "")
                    )
                    lines.append(
                        f"| `{rc.address}` | {rc.action} | {attribute} | {_cell(real)} "
                        f"| {_cell(wanted)} |"
                    )
        if self.ignored:
            lines += ["", "Ignored by rule: " + ", ".join(f"`{i}`" for i in self.ignored)]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def read_drift(plan: PlanSummary, plan_json: dict[str, Any], rules: list[IgnoreRule]) -> Drift:
    """The drift a refreshed plan shows, without what ``rules`` ignore."""
    drift = Drift(plan.stack, plan.workspace)
    for rc in plan.resources:
        if any(r.attribute is None and r.covers(rc.address) for r in rules):
            drift.ignored.append(rc.address)
            continue
        if rc.action == "update" and rc.changes and not rc.more_changes:
            kept = [c for c in rc.changes if not any(r.covers(rc.address, c.path) for r in rules)]
            if not kept:
                drift.ignored.append(rc.address)
                continue
            drift.ignored += [f"{rc.address}:{c.path}" for c in rc.changes if c not in kept]
            rc = rc.model_copy(update={"changes": kept})
        drift.resources.append(rc)
    kept_addresses = {rc.address for rc in drift.resources}
    drift.outside = [
        c for c in access_changes(plan_json, drift=True) if c.address in kept_addresses
    ]
    return drift


class DriftRecord(VariableRecord):
    """The drift last told for one stack and workspace, as a Prefect Variable
    (``stacks-drift-<stack>-<workspace>-<digest>``, value ``{digest, since, resources}``;
    no Variable: in sync)."""

    def __init__(self, stack: str, workspace: str) -> None:
        super().__init__(DRIFT_PREFIX, DRIFT_TAG, stack, workspace)

    def load(self) -> dict[str, Any] | None:
        value = super().load()
        return value if isinstance(value, dict) and value.get("digest") else None

    def save(self, drift: Drift) -> None:  # type: ignore[override]
        super().save(
            {
                "digest": drift.digest,
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "resources": [rc.address for rc in drift.resources][:50],
            }
        )


def tell_drift(drift: Drift, record: DriftRecord, channel: SlackChannel | None) -> str:
    """Tell a drift that starts or changes, and one that is over; stay quiet while it
    persists unchanged. The event goes first (it raises: the record is not written, and
    the next run tells again); Slack is a courtesy. Returns what was done: ``drifted``,
    ``changed``, ``resolved``, ``still drifted`` or ``in sync``."""
    before = record.load()
    where = f"{drift.stack}/{drift.workspace}"
    run = current_flow_run_url() or ""
    if not drift.drifted:
        if before is None:
            return "in sync"
        events.emit([events.stack_drift_resolved(drift.stack, drift.workspace, before["digest"])])
        record.clear()
        if channel is not None:
            channel.post_or_warn(f":white_check_mark: *{where}* is back in sync. {run}")
        return "resolved"
    if before is not None and before["digest"] == drift.digest:
        return "still drifted"
    addresses = [rc.address for rc in drift.resources]
    events.emit([events.stack_drifted(drift.stack, drift.workspace, addresses, drift.digest)])
    record.save(drift)
    if channel is not None:
        lines = [f"• {c.sentence}" for c in drift.outside[:20]] or [
            f"• `{rc.address}`: an apply would {rc.action} it" for rc in drift.resources[:20]
        ]
        verb = "has drifted" if before is None else "has drifted differently"
        channel.post_or_warn(
            f":warning: *{where}* {verb}: {len(addresses)} resource(s) differ from the "
            "stack (nothing was applied)\n" + "\n".join(lines) + f"\n{run}"
        )
    return "drifted" if before is None else "changed"


__all__ = ["Drift", "DriftRecord", "IgnoreRule", "read_drift", "tell_drift"]
