"""``cache-flush`` on a throwaway Prefect server, against two real varnishd instances
(running the package's own ban VCL, secret check on) in front of a counting backend,
and the Cloudflare, Fastly and Slack contract fakes."""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from prefect_stacks.blocks.cdn import CloudflareZone, FastlyService
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.blocks.varnish import VarnishPool
from prefect_stacks.exceptions import ConfigurationError
from prefect_stacks.flows.day2.cache_flush import cache_flush
from tests.fakes.cloudflare import FakeCloudflare
from tests.fakes.fastly import FakeFastly
from tests.fakes.slack import FakeSlack
from tests.varnishd import Backend, Varnish

pytestmark = pytest.mark.integration

SECRET = "ban-secret-" + uuid.uuid4().hex[:12]
CF_TOKEN = "cf-" + uuid.uuid4().hex
FASTLY_TOKEN = "fastly-" + uuid.uuid4().hex
SLACK_TOKEN = "xoxb-cache-flush"
ZONE = "9a7806061c88ada191ed06f989cc3dac"
SERVICE = "SU1Z0isxPaozGVKXdv0eY"


@pytest.fixture(scope="module")
def backend():
    origin = Backend()
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def pair(backend):
    """Two real varnishd instances of one pool (the module's only pair)."""
    first = Varnish(backend.port, secret=SECRET)
    try:
        second = Varnish(backend.port, secret=SECRET)
    except BaseException:
        first.stop()
        raise
    yield [first, second]
    first.stop()
    second.stop()


@pytest.fixture
def fakes():
    with (
        FakeCloudflare(tokens={CF_TOKEN: [ZONE]}) as cf,
        FakeFastly(tokens={FASTLY_TOKEN: {"purge_all", "purge_select"}}, services=[SERVICE]) as fa,
        FakeSlack(tokens=[SLACK_TOKEN], channels=["ops"]) as slack,
    ):
        yield cf, fa, slack


@pytest.fixture
def blocks(prefect_harness, pair, fakes):
    cf, fa, slack = fakes
    tag = uuid.uuid4().hex[:8]
    names = {k: f"{k}-{tag}" for k in ("varnish", "cloudflare", "fastly", "slack")}
    VarnishPool(instances=[v.url for v in pair], ban_secret=SECRET).save(names["varnish"])
    CloudflareZone(zone_id=ZONE, api_token=CF_TOKEN, api_url=cf.api_url).save(names["cloudflare"])
    FastlyService(service_id=SERVICE, api_token=FASTLY_TOKEN, api_url=fa.base_url).save(
        names["fastly"]
    )
    SlackChannel(bot_token=SLACK_TOKEN, channel="#ops", api_url=slack.api_url).save(names["slack"])
    return names


def warm(instances: list[Varnish], *urls: str) -> None:
    """Cache each URL on each instance, and check it is served from the cache."""
    for v in instances:
        for url in urls:
            v.get(url)
            assert v.is_hit(url), f"{url} not cached on {v.url}"


def artifact_of(state) -> str:
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return str(artifact.data)


def test_a_ban_reaches_every_instance_and_each_serves_a_miss(pair, backend, blocks, fakes):
    slack = fakes[2]
    run = uuid.uuid4().hex[:6]
    products, about = f"/products/{run}/1", f"/about-{run}"
    warm(pair, products, f"/products/{run}/2", about)
    state = cache_flush(
        varnish=blocks["varnish"],
        ban_url_patterns=[f"^/products/{run}/"],
        verify_urls=[products],
        slack=blocks["slack"],
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    assert result["ok"] and result["failures"] == []
    for v in pair:  # banned on EVERY instance: a miss, fetched anew from the backend
        assert not v.is_hit(f"/products/{run}/2")
        assert v.is_hit(about)  # outside the pattern: still cached
    key = f"127.0.0.1{products}"
    assert backend.fetches[key] == 4  # fetched once per instance to warm, once each after
    report = artifact_of(state)
    assert all(f"`{v.url}`" in report for v in pair)
    assert report.count(f"`{products}`: miss") == 2
    assert SECRET not in report
    (message,) = slack.messages
    assert "cache-flush* done" in (message.text or "") and SECRET not in message.all_text()


def test_a_host_ban_flushes_that_host_only(pair, blocks):
    run = uuid.uuid4().hex[:6]
    host = f"www-{run}.example.com"
    checked, mine, other = f"http://{host}/a", f"http://{host}/b", f"http://o-{run}.example.com/b"
    warm(pair, checked, mine, other)
    state = cache_flush(
        varnish=blocks["varnish"], ban_hosts=[host], verify_urls=[checked], return_state=True
    )
    assert state.is_completed(), state.message
    for v in pair:
        assert not v.is_hit(mine) and v.is_hit(other)
    assert artifact_of(state).count(f"`{checked}`: miss") == 2


def test_an_instance_down_fails_the_run_naming_it_after_the_others_were_banned(
    pair, backend, blocks, fakes, prefect_harness
):
    slack = fakes[2]
    third = Varnish(backend.port, secret=SECRET)
    run = uuid.uuid4().hex[:6]
    url = f"/down-{run}/page"
    warm([*pair, third], url)
    third.stop()
    name = f"pool3-{run}"
    VarnishPool(instances=[pair[0].url, third.url, pair[1].url], ban_secret=SECRET, retries=0).save(
        name
    )
    slack_block = blocks["slack"]
    state = cache_flush(
        varnish=name,
        ban_url_patterns=[f"^/down-{run}/"],
        verify_urls=[url],
        slack=slack_block,
        return_state=True,
    )
    assert state.is_failed()
    assert third.url in state.message and "unreachable" in state.message
    assert "instances" in state.message  # what to fix: start it or take it out
    assert pair[0].url not in state.message and pair[1].url not in state.message
    for v in pair:  # the one down did not stop the others
        assert v.is_hit(url)  # banned, then refetched by the check, so cached again
    assert backend.fetches[f"127.0.0.1{url}"] == 5  # 3 warm-ups + 1 refetch per live one
    report = artifact_of(state)
    assert "not checked (instance down)" in report and report.count(f"`{url}`: miss") == 2
    assert "FAILED" in (slack.messages[-1].text or "") and third.url in slack.messages[-1].text


def test_a_wrong_secret_is_refused_and_nothing_is_reported_done(pair, prefect_harness):
    run = uuid.uuid4().hex[:6]
    url = f"/secret-{run}"
    warm(pair, url)
    name = f"wrong-{run}"
    VarnishPool(instances=[v.url for v in pair], ban_secret="not-the-secret").save(name)
    state = cache_flush(varnish=name, ban_url_patterns=[f"^/secret-{run}"], return_state=True)
    assert state.is_failed()
    assert state.message.count("HTTP 403") == 2 and "ban_secret" in state.message
    assert "not-the-secret" not in state.message and "not-the-secret" not in artifact_of(state)
    for v in pair:
        assert v.is_hit(url)


def test_cdns_429_then_success_and_urls_over_the_limit_are_chunked(blocks, fakes, caplog):
    import logging

    caplog.set_level(logging.INFO)
    cf, fa, slack = fakes
    cf.rate_limit(1, retry_after=1)
    fa.rate_limit(1, retry_after=1)
    urls = [f"https://www.example.com/p/{i}" for i in range(45)]
    state = cache_flush(
        cloudflare=blocks["cloudflare"],
        cloudflare_urls=urls,
        fastly=blocks["fastly"],
        fastly_surrogate_keys=["product-1", "product-2"],
        slack=blocks["slack"],
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert [r.status for r in cf.requests] == [429, 200, 200]
    assert [len(r.body["files"]) for r in cf.requests] == [30, 30, 15]
    assert cf.requests[1].at - cf.requests[0].at >= 1.0  # Retry-After honoured
    assert cf.purged("files") == urls
    assert [r.status for r in fa.requests] == [429, 200] and fa.purged_keys() == [
        "product-1",
        "product-2",
    ]
    assert caplog.text.count("waiting 1 s (Retry-After)") == 2
    report = artifact_of(state)
    assert sum(1 for u in urls if f"`{u}` | ✅" in report) == 45
    assert CF_TOKEN not in report and FASTLY_TOKEN not in caplog.text


def test_a_refused_token_fails_the_run_after_every_other_target_was_done(
    pair, blocks, fakes, prefect_harness
):
    cf, fa, _ = fakes
    run = uuid.uuid4().hex[:6]
    warm(pair, f"/t-{run}")
    bad = f"cf-bad-{run}"
    CloudflareZone(zone_id=ZONE, api_token="cf-revoked-token", api_url=cf.api_url).save(bad)
    state = cache_flush(
        varnish=blocks["varnish"],
        ban_url_patterns=[f"^/t-{run}"],
        cloudflare=bad,
        cloudflare_purge_everything=True,
        fastly=blocks["fastly"],
        fastly_purge_all=True,
        return_state=True,
    )
    assert state.is_failed()
    assert "api_token" in state.message and "Cache Purge permission" in state.message
    assert "cf-revoked-token" not in state.message
    assert fa.purged_all() == 1  # Fastly, after the refusal, was still purged
    for v in pair:
        assert not v.is_hit(f"/t-{run}")  # and Varnish before it
    report = artifact_of(state)
    assert "What failed" in report and "✅ purge id" in report


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "nothing to flush"),
        ({"ban_url_patterns": ["^/"]}, "VarnishPool block as varnish"),
        ({"cloudflare": "no-such-zone", "cloudflare_tags": ["a"]}, "no CloudflareZone block"),
        ({"fastly": "x", "fastly_purge_all": True, "fastly_surrogate_keys": ["k"]}, "not both"),
    ],
)
def test_a_parameter_or_block_mistake_stops_before_anything_is_purged(
    prefect_harness, fakes, kwargs, words
):
    cf, fa, _ = fakes
    state = cache_flush(**kwargs, return_state=True)
    assert state.is_failed() and words in state.message
    with pytest.raises(ConfigurationError):
        state.result()
    assert cf.requests == [] and fa.requests == []
