"""``cache-flush``: empty the caches in front of a site, one click, inside out.

The steps: check the parameters and load every block named (a mistake stops the run
before anything is purged) → ban on every Varnish instance of the pool, then check that
each URL to verify is a miss on each of them → purge the Cloudflare zone → purge the
Fastly service → one markdown artifact, per node and per URL, of what was purged and
what failed → a Slack notice → the run fails, naming each failure and what to fix, if
anything failed. The inner cache goes first: a CDN that refetches right after its
purge then gets the fresh object from Varnish, not the stale one.

Every target is tried even when an earlier one failed: nothing half-done is left
unreported.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.parameters import NO_TEXT, Text
from prefect_stacks.blocks.base import load_block
from prefect_stacks.blocks.cdn import CloudflareZone, FastlyService, purge_cloudflare, purge_fastly
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.terraform import artifact_key
from prefect_stacks.blocks.varnish import VarnishPool, ban_varnish, bans_for
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError

__all__ = ["cache_flush"]


@flow(name="cache-flush")
@fails_cleanly
def cache_flush(
    varnish: Text = NO_TEXT,
    ban_url_patterns: list[str] = [],  # noqa: B006 - never mutated
    ban_hosts: list[str] = [],  # noqa: B006
    verify_urls: list[str] = [],  # noqa: B006
    cloudflare: Text = NO_TEXT,
    cloudflare_purge_everything: bool = False,
    cloudflare_urls: list[str] = [],  # noqa: B006
    cloudflare_tags: list[str] = [],  # noqa: B006
    cloudflare_hosts: list[str] = [],  # noqa: B006
    cloudflare_prefixes: list[str] = [],  # noqa: B006
    fastly: Text = NO_TEXT,
    fastly_purge_all: bool = False,
    fastly_surrogate_keys: list[str] = [],  # noqa: B006
    slack: Text = NO_TEXT,
) -> dict[str, Any]:
    """Flush Varnish (a ban on every instance, then a check for a miss) and purge
    Cloudflare and Fastly. Give at least one target; leave the others empty.

    Args:
        varnish: Name of a VarnishPool block (every instance is banned); empty: no Varnish.
        ban_url_patterns: Varnish: regexes on the URL path, e.g. ^/products/ or \\.css$
            (no spaces: write \\s).
        ban_hosts: Varnish: host names, e.g. www.example.com; with patterns, each pattern
            is banned on these hosts only; alone, everything of these hosts.
        verify_urls: Varnish: URLs that must be a miss on every instance after the bans,
            e.g. https://www.example.com/products/1 (or a path).
        cloudflare: Name of a CloudflareZone block; empty: no Cloudflare.
        cloudflare_purge_everything: Cloudflare: purge every cached file of the zone.
        cloudflare_urls: Cloudflare: full URLs to purge (sent in chunks the API accepts).
        cloudflare_tags: Cloudflare: cache tags to purge.
        cloudflare_hosts: Cloudflare: host names to purge everything of.
        cloudflare_prefixes: Cloudflare: URL prefixes, e.g. www.example.com/blog/.
        fastly: Name of a FastlyService block; empty: no Fastly.
        fastly_purge_all: Fastly: purge everything of the service.
        fastly_surrogate_keys: Fastly: surrogate keys to purge.
        slack: Name of a SlackChannel block to tell when done; empty: no message.
    """
    logger = get_run_logger()
    plan = _plan(locals())
    targets = _load_targets(plan)
    reports: list[Any] = []

    if "varnish" in targets:
        reports.append(ban_varnish(targets["varnish"], plan["bans"], plan["verify"], varnish))
    if "cloudflare" in targets:
        reports.append(purge_cloudflare(targets["cloudflare"], cloudflare, **plan["cloudflare"]))
    if "fastly" in targets:
        reports.append(purge_fastly(targets["fastly"], fastly, **plan["fastly"]))

    failures = [line for report in reports for line in report.failures()]
    _publish(reports, failures)
    for report in reports:
        (logger.info if report.ok else logger.error)("%s", report.summary())
    if "slack" in targets:
        targets["slack"].post_or_warn(_notice(reports, failures))
    result = {"ok": not failures, "summary": [r.summary() for r in reports], "failures": failures}
    if failures:
        message = f"cache-flush: {len(failures)} failure(s):\n" + "\n".join(
            f"- {f}" for f in failures
        )
        logger.error("%s", message)
        return Failed(message=message, data=PrefectStacksError(message))
    return result


# ------------------------------------------------------------------ the steps' helpers
def _clean(items: list[str] | None) -> list[str]:
    return [i.strip() for i in items or [] if i and i.strip()]


def _plan(p: dict[str, Any]) -> dict[str, Any]:
    """What to do, from the parameters; a ConfigurationError before anything is done."""
    plan: dict[str, Any] = {}
    patterns, hosts = _clean(p["ban_url_patterns"]), _clean(p["ban_hosts"])
    verify = _clean(p["verify_urls"])
    if p["varnish"]:
        if not (patterns or hosts):
            raise ConfigurationError(
                f"varnish={p['varnish']!r} needs ban_url_patterns and/or ban_hosts: what to ban"
            )
        plan["bans"], plan["verify"] = bans_for(patterns, hosts), verify
    elif patterns or hosts or verify:
        raise ConfigurationError(
            "ban_url_patterns, ban_hosts and verify_urls are for Varnish: give the name of "
            "a VarnishPool block as varnish"
        )
    lists = {k: _clean(p[f"cloudflare_{k}"]) for k in ("tags", "hosts", "prefixes")}
    lists["files"] = _clean(p["cloudflare_urls"])
    everything = bool(p["cloudflare_purge_everything"])
    if p["cloudflare"]:
        if everything == any(lists.values()):
            raise ConfigurationError(
                f"cloudflare={p['cloudflare']!r}: set cloudflare_purge_everything, or give "
                "cloudflare_urls / _tags / _hosts / _prefixes"
                + (" (not both: Cloudflare takes one or the other)" if everything else "")
            )
        plan["cloudflare"] = {"everything": everything, **lists}
    elif everything or any(lists.values()):
        raise ConfigurationError(
            "the cloudflare_* parameters need cloudflare: the name of a CloudflareZone block"
        )
    keys, purge_all = _clean(p["fastly_surrogate_keys"]), bool(p["fastly_purge_all"])
    if p["fastly"]:
        if purge_all == bool(keys):
            raise ConfigurationError(
                f"fastly={p['fastly']!r}: set fastly_purge_all, or give fastly_surrogate_keys"
                + (" (not both)" if purge_all else "")
            )
        plan["fastly"] = {"purge_all": purge_all, "keys": keys}
    elif purge_all or keys:
        raise ConfigurationError(
            "fastly_purge_all and fastly_surrogate_keys need fastly: the name of a "
            "FastlyService block"
        )
    if not any(p[t] for t in ("varnish", "cloudflare", "fastly")):
        raise ConfigurationError(
            "nothing to flush: give varnish (a VarnishPool block), cloudflare (a "
            "CloudflareZone block) and/or fastly (a FastlyService block)"
        )
    plan["names"] = {t: p[t] for t in ("varnish", "cloudflare", "fastly", "slack") if p[t]}
    return plan


_BLOCKS = {
    "varnish": (VarnishPool, "Varnish Pool"),
    "cloudflare": (CloudflareZone, "Cloudflare Zone"),
    "fastly": (FastlyService, "Fastly Service"),
    "slack": (SlackChannel, "Slack Channel"),
}


def _load_targets(plan: dict[str, Any]) -> dict[str, Any]:
    """Every block named, loaded before anything is purged (a missing one: the run stops)."""
    loaded = {}
    for target, name in plan["names"].items():
        block_type, shown = _BLOCKS[target]
        loaded[target] = load_block(
            block_type, name, create=f"create it (Blocks > {shown}) or leave {target} empty"
        )
    return loaded


def _publish(reports: list[Any], failures: list[str]) -> None:
    head = "## cache-flush: " + ("done" if not failures else f"{len(failures)} failure(s)")
    body = "\n\n".join(r.markdown() for r in reports)
    if failures:
        body += "\n### What failed, and what to fix\n\n" + "\n".join(f"- {f}" for f in failures)
    create_markdown_artifact(
        key=artifact_key("cache-flush"),
        markdown=f"{head}\n\n{body}\n",
        description="cache-flush: " + "; ".join(r.summary() for r in reports),
    )


def _notice(reports: list[Any], failures: list[str]) -> str:
    lines = [":broom: *cache-flush* " + ("done" if not failures else "FAILED")]
    lines += [f"• {r.summary()}" for r in reports]
    lines += [f"✗ {f}" for f in failures[:10]]
    if len(failures) > 10:
        lines.append(f"… and {len(failures) - 10} more (see the run's artifact)")
    return "\n".join(lines)
