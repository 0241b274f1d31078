"""CDN blocks: ``CloudflareZone`` and ``FastlyService``, purged through the one HTTP helper.

* **Cloudflare** (``POST /zones/{zone_id}/purge_cache``, ``Authorization: Bearer``): purge
  everything, or URLs (``files``) in chunks of the block's ``max_per_call`` (the public
  docs say 30 per call on Free/Pro/Business plans), or cache tags, hosts, URL prefixes
  (chunked the same way). Every answer is Cloudflare's envelope ``{"success", "errors":
  [{"code", "message"}], "messages", "result": {"id"}}``.
* **Fastly** (``Fastly-Key`` header): ``POST /service/{id}/purge_all``, ``POST
  /service/{id}/purge/{surrogate_key}`` for one key, the batch ``POST
  /service/{id}/purge`` with ``{"surrogate_keys": [...]}`` (at most 256 per call) for
  several; optionally soft (``Fastly-Soft-Purge: 1``: marked stale, not evicted).

A 429 is waited out as its ``Retry-After`` says (the helper's policy, each wait logged)
within the block's ``max_rate_limit_wait``. A purge is idempotent, so a 5xx or a broken
connection is retried too. Each call's outcome lands in a :class:`CdnReport` (per URL,
tag or key: purged with the purge id, failed with what to fix, or not tried after a
refusal that the next calls would meet too); nothing is raised from ``purge()``.

One module per CDN (:mod:`.cloudflare`, :mod:`.fastly`) and the report and error
description they share (:mod:`.report`).
"""

from prefect_stacks.blocks.cdn.cloudflare import CloudflareZone, purge_cloudflare
from prefect_stacks.blocks.cdn.fastly import FastlyService, purge_fastly
from prefect_stacks.blocks.cdn.report import CdnReport, PurgeCall

__all__ = [
    "CdnReport",
    "CloudflareZone",
    "FastlyService",
    "PurgeCall",
    "purge_cloudflare",
    "purge_fastly",
]
