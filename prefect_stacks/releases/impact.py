"""Which stacks a Terraform or provider release concerns: every shipped stack and every
configured ``TerraformStack`` block whose ``required_version`` (for Terraform) or
``required_providers`` entry (for a provider) speaks of it, and whether the new version
would be allowed there.

Stacks are read only when such a release is new, once per run (:class:`StackCatalog`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect_stacks._internal.data import stacks_dir
from prefect_stacks._internal.semver import Version, terraform_allows
from prefect_stacks.blocks.base import stored_blocks
from prefect_stacks.blocks.terraform import TerraformStack
from prefect_stacks.blocks.terraform.requirements import Requirements, read_requirements
from prefect_stacks.exceptions import PrefectStacksError


@dataclass(frozen=True)
class StackVerdict:
    stack: str
    constraint: str  # as written ("" when the stack uses it without a constraint)
    allowed: bool


@dataclass(frozen=True)
class Impact:
    """What a release of ``component`` (``terraform`` or a provider address) means for the
    stacks that use it."""

    component: str
    version: str
    verdicts: list[StackVerdict]
    unread: dict[str, str]  # stack -> why its requirements could not be read

    def line(self) -> str:
        """One line for people, e.g. ``Stacks: allowed by k8s-app (>= 1.4); not allowed by
        legacy (~> 1.5.0)``."""
        what = "Terraform" if self.component == "terraform" else self.component
        allowed = [v for v in self.verdicts if v.allowed]
        refused = [v for v in self.verdicts if not v.allowed]
        parts = []
        if allowed:
            parts.append("allowed by " + _names(allowed))
        if refused:
            parts.append("*not allowed* by " + _names(refused))
        if not parts:
            parts.append(f"no shipped or configured stack uses {what}")
        if self.unread:
            parts.append("could not read " + ", ".join(sorted(self.unread)))
        return f"Stacks ({what} {self.version}): " + "; ".join(parts)


def _names(verdicts: list[StackVerdict]) -> str:
    return ", ".join(
        f"{v.stack} ({v.constraint})" if v.constraint else f"{v.stack} (any version)"
        for v in verdicts
    )


@dataclass
class StackCatalog:
    """The requirements of the shipped stacks and the configured TerraformStack blocks,
    read on first use."""

    _stacks: dict[str, Requirements] | None = None
    _unread: dict[str, str] = field(default_factory=dict)

    def stacks(self) -> dict[str, Requirements]:
        if self._stacks is None:
            self._stacks = self._read()
        return self._stacks

    def _read(self) -> dict[str, Requirements]:
        found: dict[str, Requirements] = {}
        for path in sorted(p for p in stacks_dir().iterdir() if p.is_dir()):
            label = f"stacks/{path.name}"
            try:
                found[label] = read_requirements(path, name=label)
            except PrefectStacksError as exc:
                self._unread[label] = str(exc)
        blocks, invalid = stored_blocks(TerraformStack)
        self._unread.update(invalid)
        for name, block in sorted(blocks.items()):
            try:
                found[name] = block.requirements()
            except PrefectStacksError as exc:
                self._unread[name] = str(exc)
        return found

    def impact(self, component: str, tag: str) -> Impact | None:
        """The impact of ``component`` at ``tag``; None when the tag is not a version."""
        version = Version.parse(tag)
        if version is None:
            return None
        verdicts = []
        for stack, requirements in self.stacks().items():
            constraints = (
                requirements.terraform
                if component == "terraform"
                else requirements.providers.get(component)
            )
            if component != "terraform" and constraints is None:
                continue  # the stack does not use this provider
            if not constraints:  # any version; a prerelease only ever by an exact `=`
                verdicts.append(StackVerdict(stack, "", not version.is_prerelease))
                continue
            try:
                allowed = all(terraform_allows(c, version) for c in constraints)
            except ValueError as exc:
                self._unread[stack] = str(exc)
                continue
            verdicts.append(StackVerdict(stack, ", ".join(constraints), allowed))
        return Impact(component, str(version), verdicts, dict(self._unread))


__all__ = ["Impact", "StackCatalog", "StackVerdict"]
