"""Error mapping of the HTTP helper: a final 4xx goes through the caller's describe_error
(or becomes the client's error class), and no message carries a secret."""

from __future__ import annotations

import httpx
import pytest

from prefect_stacks._internal.http import HttpClient, HttpResult, HTTPServiceError

API = "https://api.example.test"
TOKEN = "tok_secret_1234567890"


class ServiceError(HTTPServiceError):
    pass


def answering(response: httpx.Response, **kwargs) -> HttpClient:
    return HttpClient(
        base_url=API,
        service="Example",
        headers={"Authorization": f"Bearer {TOKEN}"},
        secrets=[TOKEN],
        error_class=ServiceError,
        transport=httpx.MockTransport(lambda request: response),
        **kwargs,
    )


def test_a_4xx_without_describe_error_raises_the_error_class_with_the_message():
    http = answering(httpx.Response(409, json={"message": "conflict"}))
    with pytest.raises(ServiceError) as caught:
        http.request("PUT", "/things/1", what="putting thing 1")
    error = caught.value
    assert str(error) == "Example answered HTTP 409 to putting thing 1: conflict"
    assert (error.status, error.method, error.service_message) == (409, "PUT", "conflict")
    assert error.url == f"{API}/things/1"


def test_describe_error_gets_the_result_and_its_message_is_redacted():
    got: list[tuple[HttpResult, str]] = []

    def describe(result: HttpResult, what: str) -> Exception:
        got.append((result, what))
        return ServiceError(f"no access with {TOKEN} to {what}", status=result.status)

    http = answering(httpx.Response(403, json={"message": "forbidden"}), describe_error=describe)
    with pytest.raises(ServiceError) as caught:
        http.request("GET", "/things", params={"q": "a"})
    result, what = got[0]
    assert (result.status, result.data, what) == (403, {"message": "forbidden"}, "GET /things?q=a")
    assert TOKEN not in str(caught.value) and "no access with ***" in str(caught.value)


def test_the_repr_never_shows_the_headers():
    http = answering(httpx.Response(200))
    assert repr(http) == f"HttpClient(Example, {API})"
    assert TOKEN not in repr(http)
