"""Slack text: mrkdwn escaping, Slack's documented limits, lengths as Slack counts them,
clipping and links; what every message layout needs."""

from __future__ import annotations

import re

# Slack's documented limits (Block Kit and chat.postMessage).
MAX_BLOCKS = 50
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_MESSAGE_TEXT = 40_000


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_length(text: str) -> int:
    """Length as Slack counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int, *, keep: str = "head") -> str:
    """Shorten ``text`` to at most ``limit`` characters, with "…" where it was cut, never
    cutting an escape (``&amp;``) in half. ``keep="tail"`` keeps the end (for logs)."""
    if slack_length(text) <= limit:
        return text
    room = max(limit - 1, 0)
    if keep == "tail":
        cut = text[-room:] if room else ""
        while cut and slack_length(cut) > room:
            cut = cut[1:]
        cut = re.sub(r"^[a-z]{0,3};", "", cut)  # the rest of a cut "&amp;"
        return "…" + cut
    cut = text[:room]
    while cut and slack_length(cut) > room:
        cut = cut[:-1]
    cut = re.sub(r"&[a-z]{0,3}$", "", cut)  # the start of a cut "&amp;"
    return cut + "…"


def link(url: str, label: str, *, limit: int) -> str:
    """A mrkdwn link, or the escaped text when the URL is not http(s) or too long."""
    if url.lower().startswith(("https://", "http://")):
        target = escape_mrkdwn(url).replace("|", "%7C")
        shown = clip(escape_mrkdwn(label), 200)
        markup = f"<{target}|{shown}>"
        if slack_length(markup) <= limit:
            return markup
    return clip(escape_mrkdwn(url), limit)
