"""How new releases are told: one Slack message per release, or one digest when a run
finds more than a few at once; and a markdown artifact of the run (what is new, the
impact on stacks, the repositories that could not be read)."""

from __future__ import annotations

from prefect_stacks.blocks.slack.text import clip, escape_mrkdwn, link
from prefect_stacks.releases.impact import Impact
from prefect_stacks.releases.models import NewRelease

KIND_MARK = {
    "major": ":rotating_light: major",
    "minor": ":sparkles: minor",
    "patch": ":wrench: patch",
    "prerelease": ":test_tube: prerelease",
    "release": ":package: release",
}
MESSAGE_LIMIT = 3000  # characters of a message's text we send (Slack's hard cap is 40,000)


def _one_line(new: NewRelease) -> str:
    notes = link(new.release.html_url, "release notes", limit=600)
    return (
        f"*{escape_mrkdwn(new.repository)}* `{escape_mrkdwn(new.release.tag_name)}` "
        f"({KIND_MARK[new.kind]}) {notes}"
    )


def release_message(new: NewRelease, impact: Impact | None) -> str:
    """``hashicorp/terraform v1.9.0 (minor) release notes`` and the impact line."""
    text = ":mega: New release: " + _one_line(new)
    name = (new.release.name or "").strip()
    if name and name != new.release.tag_name:
        text += f"\n_{escape_mrkdwn(name)}_"
    if impact is not None:
        text += "\n" + escape_mrkdwn(impact.line())
    return clip(text, MESSAGE_LIMIT)


def digest_message(found: list[NewRelease], impacts: dict[int, Impact]) -> str:
    """One message for many releases: a line each (with its impact line, if any)."""
    lines = [f":mega: {len(found)} new releases:"]
    for index, new in enumerate(found):
        lines.append("• " + _one_line(new))
        if index in impacts:
            lines.append("    " + escape_mrkdwn(impacts[index].line()))
    return clip("\n".join(lines), MESSAGE_LIMIT)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run_summary(
    found: list[NewRelease],
    impacts: dict[int, Impact],
    problems: dict[str, str],
    moved: dict[str, str],
    watched: int,
) -> str:
    """The run's markdown artifact."""
    lines = [f"# Release watcher: {len(found)} new release(s) in {watched} repositories", ""]
    if found:
        lines += ["| repository | release | kind | stacks |", "|---|---|---|---|"]
        for index, new in enumerate(found):
            release = f"[{_cell(new.title)}]({new.release.html_url})"
            impact = _cell(impacts[index].line()) if index in impacts else ""
            lines.append(f"| {new.repository} | {release} | {new.kind} | {impact} |")
        lines.append("")
    for old, new_name in sorted(moved.items()):
        lines.append(f"- **{old}** moved to **{new_name}**: put the new name in the list.")
    for repository, problem in sorted(problems.items()):
        lines.append(f"- **{repository}** not read: {_cell(problem)}")
    return "\n".join(lines) + "\n"


__all__ = ["digest_message", "release_message", "run_summary"]
