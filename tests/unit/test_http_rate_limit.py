"""Rate limits of the HTTP helper: what a policy reads from an answer (the default 429 +
Retry-After, GitHub's X-RateLimit-* and secondary limits), the per-operation wait budget,
and the client waiting them out (httpx.MockTransport, a recorded sleep: no real waits)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import httpx
import pytest

from prefect_stacks._internal.http import (
    HttpClient,
    HTTPServiceError,
    RateLimitPolicy,
    WaitBudget,
)
from prefect_stacks.blocks.github import GitHubRateLimitPolicy

API = "https://api.example.test"
DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_EPOCH = int(datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc).timestamp())


def client(responses: list[httpx.Response], sleeps: list[float], **kwargs) -> HttpClient:
    queue = list(responses)
    return HttpClient(
        base_url=API,
        service="Example",
        sleep=sleeps.append,
        transport=httpx.MockTransport(lambda request: queue.pop(0)),
        **kwargs,
    )


def test_default_policy_knows_429_with_and_without_retry_after():
    policy = RateLimitPolicy()
    wait = policy.classify(httpx.Response(429, headers={"Retry-After": "3"}), 0)
    assert wait is not None and (wait.seconds, wait.limit, wait.reason) == (
        3.0,
        "rate limit",
        "Retry-After",
    )
    wait = policy.classify(httpx.Response(429), 2)
    assert wait is not None and (wait.seconds, wait.reason) == (4.0, "backoff")
    assert policy.classify(httpx.Response(403), 0) is None
    assert policy.classify(httpx.Response(503, headers={"Retry-After": "3"}), 0) is None


def test_wait_budget_allows_up_to_its_maximum():
    budget = WaitBudget(10)
    assert budget.allows(10) and not budget.allows(10.5)
    budget.spend(6)
    assert budget.allows(4) and not budget.allows(5)


def github_answer(status: int = 403, message: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message}, headers={"Date": DATE, **headers})


def test_github_primary_limit_waits_until_reset_by_the_servers_clock():
    answer = github_answer(
        message="API rate limit exceeded",
        **{
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(DATE_EPOCH + 30),
            "X-RateLimit-Resource": "core",
        },
    )
    wait = GitHubRateLimitPolicy().classify(answer, 0)
    assert wait is not None
    assert wait.seconds == 31.0 and wait.limit == "primary rate limit (core)"
    assert wait.reset_at == datetime.fromtimestamp(DATE_EPOCH + 30, timezone.utc)


def test_github_secondary_limit_without_retry_after_waits_a_minute_doubling():
    policy = GitHubRateLimitPolicy()
    answer = github_answer(message="You have exceeded a secondary rate limit")
    assert policy.classify(answer, 0).seconds == 60.0
    assert policy.classify(answer, 1).seconds == 120.0
    assert policy.classify(answer, 20).seconds == 60.0 * 64  # capped doubling
    told = github_answer(message="secondary rate limit", **{"Retry-After": "9"})
    wait = policy.classify(told, 0)
    assert (wait.seconds, wait.limit, wait.reset_at) == (9.0, "secondary rate limit", None)


def test_github_403_without_limit_signs_is_a_permission_problem():
    answer = github_answer(message="Resource not accessible by integration")
    assert GitHubRateLimitPolicy().classify(answer, 0) is None
    assert GitHubRateLimitPolicy().classify(github_answer(404), 0) is None


def test_client_waits_a_limit_out_and_logs_it_at_info(caplog):
    sleeps: list[float] = []
    http = client(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=[1])],
        sleeps,
    )
    with caplog.at_level(logging.INFO):
        assert http.request("GET", "/things").data == [1]
    assert sleeps == [2.0]
    assert (
        "Example: rate limit exceeded on GET /things (HTTP 429); waiting 2 s (Retry-After) "
        "[0 of 900 s waited]." in caplog.messages
    )


def test_a_wait_beyond_the_budget_raises_without_sleeping():
    sleeps: list[float] = []
    answer = httpx.Response(429, headers={"Retry-After": "100"}, json={"message": "slow down"})
    http = client([answer], sleeps, max_rate_limit_wait=10)
    with pytest.raises(HTTPServiceError) as caught:
        http.request("GET", "/things", what="the things")
    assert sleeps == []
    error = caught.value
    assert error.rate_limited and error.status == 429 and error.service_message == "slow down"
    assert (
        "rate limit exceeded on the things: waiting 100 s more would exceed the wait budget of 10 s"
        in str(error)
    )


def test_one_budget_is_shared_by_the_requests_of_an_operation():
    sleeps: list[float] = []
    limited = httpx.Response(429, headers={"Retry-After": "3"})
    http = client([limited, httpx.Response(200), limited, httpx.Response(200), limited], sleeps)
    budget = WaitBudget(7)
    http.request("GET", "/a", budget=budget)
    http.request("GET", "/b", budget=budget)
    with pytest.raises(HTTPServiceError, match=r"already waited 6 s"):
        http.request("GET", "/c", budget=budget)
    assert sleeps == [3.0, 3.0] and budget.spent == 6.0


def test_rate_limit_waits_do_not_use_up_the_retries():
    sleeps: list[float] = []
    limited = httpx.Response(429, headers={"Retry-After": "1"})
    http = client([limited, limited, limited, httpx.Response(200)], sleeps, max_retries=0)
    assert http.request("GET", "/things").status == 200
    assert sleeps == [1.0, 1.0, 1.0]
