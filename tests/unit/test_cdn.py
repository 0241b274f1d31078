"""The CDN blocks against their contract fakes (real HTTP on 127.0.0.1, no mocks), and the
pure parts of the Varnish block (ban expressions, hit/miss from headers, validation)."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from pydantic import ValidationError

from prefect_stacks.blocks.cdn import CloudflareZone, FastlyService
from prefect_stacks.blocks.varnish import Ban, VarnishPool, bans_for, served_from_cache
from prefect_stacks.exceptions import ConfigurationError, VarnishError
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.fastly import FakeFastly

CF_TOKEN = "cf-token-Zq8mX2pLw9"
FASTLY_TOKEN = "fastly-token-Hk3vR7yN"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
SERVICE = "SU1Z0isxPaozGVKXdv0eY"


def urls(n: int) -> list[str]:
    return [f"https://www.example.com/page/{i}" for i in range(n)]


@pytest.fixture
def cf():
    with FakeCloudflare(tokens={CF_TOKEN: [ZONE]}) as fake:
        yield fake


@pytest.fixture
def fastly():
    with FakeFastly(
        tokens={FASTLY_TOKEN: {"purge_all", "purge_select"}, "select-only-Tq9": {"purge_select"}},
        services=[SERVICE],
    ) as fake:
        yield fake


def zone(cf: FakeCloudflare, **kw) -> CloudflareZone:
    values = {"zone_id": ZONE, "api_token": CF_TOKEN, "api_url": cf.api_url}
    return CloudflareZone(**{**values, **kw})


def service(fake: FakeFastly, **kw) -> FastlyService:
    values = {"service_id": SERVICE, "api_token": FASTLY_TOKEN, "api_url": fake.base_url}
    return FastlyService(**{**values, **kw})


# ------------------------------------------------------------------ Cloudflare
def test_urls_are_chunked_to_the_per_call_limit_and_every_url_is_purged_once(cf):
    asked = urls(65)
    report = zone(cf).purge(files=asked)
    assert report.ok
    sent = [r.body["files"] for r in cf.requests]
    assert [len(s) for s in sent] == [30, 30, 5]
    assert cf.purged("files") == asked  # each once, in order
    assert [c.what for c in report.calls] == [
        "files 1-30 of 65",
        "files 31-60 of 65",
        "files 61-65 of 65",
    ]
    ids = {c.purge_id for c in report.calls}
    assert len(ids) == 3 and all(ids)
    rows = [line for line in report.markdown().splitlines() if "www.example.com/page" in line]
    assert len(rows) == 65 and all("✅" in r for r in rows)


def test_the_chunk_size_is_the_block_field(cf):
    zone(cf, max_per_call=10).purge(files=urls(25))
    assert [len(r.body["files"]) for r in cf.requests] == [10, 10, 5]


def test_a_chunk_over_the_zone_limit_is_refused_and_the_error_names_max_per_call(cf):
    report = zone(cf, max_per_call=40).purge(files=urls(45))
    assert not report.ok
    first, second = report.calls
    assert (
        first.error and "max_per_call (40)" in first.error and "only purge up to 30" in first.error
    )
    assert second.ok  # a refused chunk does not stop the next one
    assert cf.purged("files") == urls(45)[40:]


def test_everything_tags_hosts_and_prefixes_send_the_api_bodies(cf):
    z = zone(cf)
    assert z.purge(everything=True).ok
    report = z.purge(
        tags=["product-1", "product-2"],
        hosts=["img.example.com"],
        prefixes=["www.example.com/blog/"],
    )
    assert report.ok
    bodies = [r.body for r in cf.requests]
    assert bodies == [
        {"purge_everything": True},
        {"tags": ["product-1", "product-2"]},
        {"hosts": ["img.example.com"]},
        {"prefixes": ["www.example.com/blog/"]},
    ]
    assert cf.purged("everything") == ["*"]


def test_a_429_is_waited_out_as_retry_after_says_and_the_wait_is_logged(cf, caplog):
    caplog.set_level(logging.INFO)
    cf.rate_limit(1, retry_after=1)
    report = zone(cf).purge(files=urls(3))
    assert report.ok and cf.purged("files") == urls(3)
    limited, accepted = cf.requests
    assert limited.status == 429 and accepted.status == 200
    assert accepted.at - limited.at >= 1.0
    assert "rate limit exceeded" in caplog.text and "waiting 1 s (Retry-After)" in caplog.text


def test_a_rate_limit_longer_than_the_budget_fails_and_the_rest_is_reported_not_tried(cf):
    cf.rate_limit(5, retry_after=30)
    started = time.monotonic()
    report = zone(cf, max_rate_limit_wait=5).purge(files=urls(40))
    assert time.monotonic() - started < 5  # not waited: the budget said no at once
    first, rest = report.calls
    assert "max_rate_limit_wait" in (first.error or "")
    assert not rest.tried
    assert cf.purged("files") == []
    assert any("not tried" in f for f in report.failures())


@pytest.mark.parametrize(
    "token, status, code",
    [("unknown-token-Xy12", 403, "10000: Authentication error"), ("key+not/a.token", 400, "6111")],
)
def test_a_bad_token_names_the_block_field_and_never_appears(cf, token, status, code):
    z = CloudflareZone(zone_id=ZONE, api_token=token, api_url=cf.api_url)
    report = z.purge(files=urls(35), tags=["t"])
    first, *rest = report.calls
    assert first.error and f"HTTP {status}" in first.error and code in first.error
    assert "api_token" in first.error
    assert rest and not any(c.tried for c in rest)  # every later call would be refused too
    assert token not in report.markdown() and token not in " ".join(report.failures())
    assert cf.purges == []


def test_an_unknown_zone_names_the_zone_id_field(cf):
    report = zone(cf, zone_id="0" * 32).purge(tags=["a"])
    assert "7003" in report.failures()[0] and "zone_id" in report.failures()[0]


def test_a_server_error_is_retried_then_succeeds(cf):
    cf.fail(1, status=500)
    assert zone(cf).purge(tags=["a"]).ok
    assert [r.status for r in cf.requests] == [500, 200]


# ------------------------------------------------------------------ Fastly
def test_fastly_purge_all_one_key_and_a_batch(fastly):
    s = service(fastly)
    assert s.purge(purge_all=True).ok
    assert s.purge(keys=["product-42"]).ok
    report = s.purge(keys=["a", "b", "c"])
    assert report.ok and all(f"{k}=" in report.calls[0].purge_id for k in "abc")
    assert [r.path for r in fastly.requests] == [
        f"/service/{SERVICE}/purge_all",
        f"/service/{SERVICE}/purge/product-42",
        f"/service/{SERVICE}/purge",
    ]
    assert fastly.purged_all() == 1 and fastly.purged_keys() == ["product-42", "a", "b", "c"]
    assert not any(p.soft for p in fastly.purges)


def test_fastly_soft_purge_is_the_block_field_and_purge_all_is_never_soft(fastly):
    s = service(fastly, soft_purge=True)
    s.purge(keys=["k1", "k2"])
    s.purge(purge_all=True)
    assert [p.soft for p in fastly.purges] == [True, False]


def test_fastly_batches_at_most_256_keys_per_call(fastly):
    keys = [f"k{i}" for i in range(300)]
    report = service(fastly).purge(keys=keys)
    assert report.ok and [len(p.keys) for p in fastly.purges] == [256, 44]
    assert fastly.purged_keys() == keys


def test_fastly_429_then_success(fastly, caplog):
    caplog.set_level(logging.INFO)
    fastly.rate_limit(2, retry_after=1)
    assert service(fastly).purge(keys=["a"]).ok
    assert [r.status for r in fastly.requests] == [429, 429, 200]
    assert fastly.requests[2].at - fastly.requests[0].at >= 2.0
    assert caplog.text.count("waiting 1 s") == 2


@pytest.mark.parametrize(
    "token, keys, purge_all, status, field",
    [
        ("wrong-token-Pq7", ["a"], False, 401, "api_token"),
        ("select-only-Tq9", [], True, 403, "purge_all"),
    ],
)
def test_fastly_refusals_name_what_to_fix(fastly, token, keys, purge_all, status, field):
    report = service(fastly, api_token=token).purge(keys=keys, purge_all=purge_all)
    (failure,) = report.failures()
    assert f"HTTP {status}" in failure and field in failure and token not in failure
    assert fastly.purges == []


def test_fastly_unknown_service_names_service_id(fastly):
    (failure,) = service(fastly, service_id="nope").purge(keys=["a"]).failures()
    assert "Record not found" in failure and "service_id" in failure


def test_tokens_are_secret_in_the_block():
    z = CloudflareZone(zone_id=ZONE, api_token=CF_TOKEN)
    assert CF_TOKEN not in repr(z) and z.api_url == "https://api.cloudflare.com/client/v4"
    assert FastlyService(service_id=SERVICE, api_token=FASTLY_TOKEN).api_url == (
        "https://api.fastly.com"
    )
    with pytest.raises(ValidationError):
        CloudflareZone(zone_id=ZONE, api_token=CF_TOKEN, api_url="api.cloudflare.com")
    for pasted in (" ", "two words", "line\nbreak"):  # would be an illegal header
        with pytest.raises(ValidationError, match="api_token"):
            CloudflareZone(zone_id=ZONE, api_token=pasted)
        with pytest.raises(ValidationError, match="api_token"):
            FastlyService(service_id=SERVICE, api_token=pasted)


# ------------------------------------------------------------------ Varnish, pure parts
def test_bans_for_patterns_hosts_and_both():
    assert bans_for(["^/a/", r"\.css$"], []) == [Ban(url="^/a/"), Ban(url=r"\.css$")]
    (host_only,) = bans_for([], ["WWW.Example.com"])
    assert host_only.url is None and host_only.host == r"(?i)^www\.example\.com(:[0-9]+)?$"
    both = bans_for(["^/a/"], ["a.example.com", "b.example.com"])
    assert [(b.url, r"b\.example" in (b.host or "")) for b in both] == [
        ("^/a/", False),
        ("^/a/", True),
    ]


@pytest.mark.parametrize(
    "patterns, hosts, word",
    [(["^/a b"], [], "whitespace"), ([], ["https://www.example.com/"], "host name")],
)
def test_bans_for_refuses_what_varnish_cannot_take(patterns, hosts, word):
    with pytest.raises(ConfigurationError, match=word):
        bans_for(patterns, hosts)


@pytest.mark.parametrize(
    "headers, hit",
    [
        ({"X-Varnish": "32773 3"}, True),
        ({"X-Varnish": "32770", "Age": "0"}, False),
        ({"X-Cache": "HIT, MISS"}, True),
        ({"X-Cache": "MISS"}, False),
        ({"Age": "12"}, True),
        ({"Age": "0"}, False),
    ],
)
def test_hit_or_miss_from_the_headers(headers, hit):
    assert served_from_cache(httpx.Headers(headers), "n") is hit


def test_an_answer_without_cache_headers_is_an_error_naming_the_node():
    with pytest.raises(VarnishError, match="no X-Varnish") as caught:
        served_from_cache(httpx.Headers({"Server": "nginx"}), "http://10.0.0.5:6081")
    assert caught.value.node == "http://10.0.0.5:6081"


def test_varnish_pool_validates_instances():
    pool = VarnishPool(instances=["http://10.0.0.5:6081/", "http://10.0.0.5:6081"])
    assert pool.instances == ["http://10.0.0.5:6081"]
    for bad in ([], ["10.0.0.5:6081"]):
        with pytest.raises(ValidationError):
            VarnishPool(instances=bad)
