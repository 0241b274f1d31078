"""Retries of the HTTP helper: backoff, Retry-After, 5xx and connection errors, and
requests that are not idempotent (driven through httpx.MockTransport, no network)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from prefect_stacks._internal.http import (
    HttpClient,
    HTTPServiceError,
    backoff_delay,
    retry_after_seconds,
)
from prefect_stacks._internal.http.errors import Failure
from prefect_stacks._internal.http.retry import Retries

API = "https://api.example.test"


def client(
    answers: Iterator[httpx.Response | Exception],
    sleeps: list[float],
    seen: list[httpx.Request],
    **kwargs,
) -> HttpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    kwargs.setdefault("max_retries", 3)
    return HttpClient(
        base_url=API,
        service="Example",
        sleep=sleeps.append,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def answers(*items: httpx.Response | Exception) -> Iterator[httpx.Response | Exception]:
    return iter(items)


@pytest.mark.parametrize(
    ("base", "attempt", "low"), [(1.0, 0, 1.0), (1.0, 3, 8.0), (0.5, 2, 2.0), (1.0, 10, 30.0)]
)
def test_backoff_doubles_with_up_to_ten_percent_jitter_and_is_capped(base, attempt, low):
    delays = [backoff_delay(base, attempt) for _ in range(50)]
    assert all(low <= d <= low * 1.1 for d in delays)


def test_retry_after_is_read_as_seconds_or_an_http_date():
    def with_headers(**headers: str) -> httpx.Response:
        return httpx.Response(503, headers={k.replace("_", "-"): v for k, v in headers.items()})

    assert retry_after_seconds(with_headers(retry_after="5")) == 5.0
    assert retry_after_seconds(with_headers(retry_after="-3")) == 0.0
    assert retry_after_seconds(with_headers(retry_after="soon")) is None
    assert retry_after_seconds(with_headers()) is None
    # an HTTP date is compared with the server's own clock (its Date header)
    answer = with_headers(
        retry_after="Wed, 21 Oct 2015 07:30:00 GMT", date="Wed, 21 Oct 2015 07:28:00 GMT"
    )
    assert retry_after_seconds(answer) == 120.0


def test_5xx_is_retried_with_backoff_until_it_succeeds(caplog):
    sleeps: list[float] = []
    seen: list[httpx.Request] = []
    http = client(
        answers(httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": 1})),
        sleeps,
        seen,
        retry_backoff=1.0,
    )
    with caplog.at_level(logging.WARNING), http:
        result = http.request("GET", "/things")
    assert result.status == 200 and result.data == {"ok": 1}
    assert len(seen) == 3
    assert 1.0 <= sleeps[0] <= 1.1 and 2.0 <= sleeps[1] <= 2.2
    assert "Example answered HTTP 503 to GET /things; retrying in" in caplog.text
    assert "(retry 2 of 3)" in caplog.text


def test_a_short_retry_after_on_a_5xx_is_honoured_a_long_one_is_not():
    sleeps: list[float] = []
    http = client(
        answers(
            httpx.Response(503, headers={"Retry-After": "7"}),
            httpx.Response(503, headers={"Retry-After": "3600"}),
            httpx.Response(204),
        ),
        sleeps,
        [],
        retry_backoff=0.1,
    )
    assert http.request("GET", "/things").status == 204
    assert sleeps[0] == 7.0
    assert sleeps[1] < 1.0  # the backoff, not an hour


def test_exhausted_retries_raise_naming_the_attempts_and_the_message():
    seen: list[httpx.Request] = []
    failing = (httpx.Response(502, json={"message": "bad gateway"}) for _ in range(10))
    http = client(failing, [], seen, max_retries=2)
    with pytest.raises(HTTPServiceError) as caught:
        http.request("GET", "/things", what="the things")
    assert len(seen) == 3
    error = caught.value
    assert error.status == 502 and error.service_message == "bad gateway"
    assert not error.ambiguous
    assert "Example answered HTTP 502: bad gateway to the things after 3 attempts" in str(error)


def test_a_post_is_not_repeated_after_a_5xx_it_is_ambiguous():
    seen: list[httpx.Request] = []
    http = client(answers(httpx.Response(500), httpx.Response(201)), [], seen)
    with pytest.raises(HTTPServiceError) as caught:
        http.request("POST", "/things", json_body={"a": 1})
    assert len(seen) == 1
    assert caught.value.ambiguous and caught.value.status == 500
    assert "may or may not have been carried out" in str(caught.value)


def test_a_post_that_never_reached_the_server_is_retried():
    seen: list[httpx.Request] = []
    http = client(
        answers(httpx.ConnectError("refused"), httpx.Response(201, json={"id": 3})), [], seen
    )
    assert http.request("POST", "/things", json_body={"a": 1}).data == {"id": 3}
    assert len(seen) == 2


def test_a_post_whose_connection_broke_after_sending_is_ambiguous_and_hides_httpx():
    seen: list[httpx.Request] = []
    http = client(answers(httpx.ReadTimeout("timed out"), httpx.Response(201)), [], seen)
    with pytest.raises(HTTPServiceError) as caught:
        http.request("POST", "/things", json_body={"a": 1})
    assert len(seen) == 1 and caught.value.ambiguous
    assert "ReadTimeout: timed out" in str(caught.value)
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


def test_connection_errors_on_a_get_end_with_a_message_naming_the_api():
    seen: list[httpx.Request] = []
    failing = (httpx.ConnectError("refused") for _ in range(10))
    http = client(failing, [], seen, max_retries=1)
    with pytest.raises(HTTPServiceError, match=r"after 2 attempts; check the network") as caught:
        http.request("GET", "/things")
    assert API in str(caught.value) and len(seen) == 2


def test_retries_counts_and_lets_answers_below_500_through():
    failure = Failure("Example", API, "PUT", f"{API}/x", "putting x")
    retries = Retries(failure, max_retries=1, retry_backoff=0.0, idempotent=True)
    assert retries.after_response(httpx.Response(404)) is None
    pause = retries.after_response(httpx.Response(500))
    assert pause is not None and pause.seconds == 0.0 and retries.attempt == 1
    assert (
        pause.message == "Example answered HTTP 500 to putting x; retrying in 0.0 s (retry 1 of 1)."
    )
    with pytest.raises(HTTPServiceError, match="after 2 attempts"):
        retries.after_response(httpx.Response(500))
