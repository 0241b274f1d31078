"""A contract fake of Slack: the Web API (``chat.postMessage``, ``auth.test``) and
incoming webhooks, as a real HTTP server on 127.0.0.1.

It follows Slack's public contract (paths, headers, status codes, error bodies), so
the code under test is the production code pointed at another base URL. Because it is a
real socket server, a flow running in another process (a Prefect worker's subprocess)
can post to it too::

    with FakeSlack(tokens=["xoxb-1"], channels=["platform"]) as slack:
        block = SlackChannel(bot_token="xoxb-1", channel="#platform", api_url=slack.api_url)
        block.post("hello")
        assert slack.find("hello")

Web API (``POST {api_url}<method>``), answered HTTP 200 with a JSON body:

* the token comes from ``Authorization: Bearer ...`` or a ``token`` form field (never
  from a JSON body, as on Slack): ``not_authed`` without one, ``invalid_auth`` for an
  unknown one, ``token_revoked`` for a revoked one;
* ``chat.postMessage``: ``channel_not_found`` for an unknown channel (name with or without
  ``#``, or id), ``not_in_channel`` for a channel the bot is not a member of,
  ``no_text`` without text and blocks, ``msg_too_long`` over 40,000 characters,
  ``invalid_blocks`` (with Slack's ``errors`` list) when blocks break Block Kit's limits:
  more than 50 blocks, a header over 150 characters, section text over 3000, a field
  over 2000, more than 10 fields, empty text, an unknown block type ...;
* ``auth.test``: team and user ids of the token.

Incoming webhooks (``POST /services/T.../B.../secret``, JSON body): ``200 ok``
(text/plain); ``403 invalid_token`` when the team and bot are known but the secret is
not, ``404 no_service`` for any other unknown path; ``400 invalid_payload`` for bad
JSON, ``400 no_text``, ``400 invalid_blocks``.

Switches for failure tests, each for the next N requests to any endpoint:
:meth:`rate_limit` (429 with ``Retry-After``), :meth:`fail` (HTTP 500) and
:meth:`drop` (the connection is closed without an answer), plus :meth:`api_error` (the
next Web API calls answer ``ok: false`` with a given error code).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes._server import FakeServer

MAX_BLOCKS = 50
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
MAX_BLOCK_ID = 255
MAX_MESSAGE_TEXT = 40_000

_BLOCK_TYPES = {
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
}
_HIDDEN_HEADERS = {"authorization", "cookie"}


@dataclass
class RecordedMessage:
    """A message the fake accepted."""

    kind: str  # "api" (chat.postMessage) or "webhook"
    channel: str | None  # channel id (Web API) or None (a webhook is bound to its channel)
    channel_name: str | None
    text: str | None
    blocks: list[dict] | None
    ts: str | None
    user: str | None  # bot user id of the token (Web API)
    payload: dict[str, Any]  # the request body as sent, minus any token
    headers: dict[str, str]  # request headers minus Authorization
    webhook: str | None = None  # webhook path

    def all_text(self) -> str:
        """Text and every string inside the blocks, for searching."""
        parts = [self.text or ""]
        parts.extend(_strings(self.blocks or []))
        return "\n".join(parts)


@dataclass
class RecordedRequest:
    """Any request the fake answered (or dropped), accepted or not."""

    path: str
    status: int | None  # None when the connection was dropped
    error: str | None  # Slack's error code, when it answered one
    at: float = field(default_factory=time.monotonic)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def check_blocks(blocks: Any) -> list[str]:
    """Block Kit's limits, worded like Slack's ``invalid_blocks`` errors; empty when valid."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:{where}]")
            continue
        kind = block.get("type")
        if kind not in _BLOCK_TYPES:
            errors.append(f"unsupported type: {kind!r} [json-pointer:{where}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None and (not isinstance(block_id, str) or len(block_id) > 255):
            errors.append(f"must be less than {MAX_BLOCK_ID + 1} characters [json-pointer:{where}]")
        if kind == "header":
            errors += _check_text(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, plain=True)
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                errors.append(f"must provide either text or fields [json-pointer:{where}]")
            if text is not None:
                errors += _check_text(text, f"{where}/text", MAX_SECTION_TEXT)
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
                    errors.append(
                        f"no more than {MAX_FIELDS} items allowed [json-pointer:{where}/fields]"
                    )
                else:
                    for j, f in enumerate(fields):
                        errors += _check_text(f, f"{where}/fields/{j}", MAX_FIELD_TEXT)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                errors.append(
                    f"must have 1 to {MAX_CONTEXT_ELEMENTS} items [json-pointer:{where}/elements]"
                )
            else:
                for j, el in enumerate(elements):
                    if isinstance(el, dict) and el.get("type") == "image":
                        continue
                    errors += _check_text(el, f"{where}/elements/{j}", MAX_SECTION_TEXT)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTION_ELEMENTS:
                errors.append(
                    f"must have 1 to {MAX_ACTION_ELEMENTS} items [json-pointer:{where}/elements]"
                )
            else:
                for j, el in enumerate(elements):
                    pointer = f"{where}/elements/{j}"
                    if not isinstance(el, dict) or el.get("type") != "button":
                        continue
                    errors += _check_text(
                        el.get("text"), f"{pointer}/text", MAX_BUTTON_TEXT, plain=True
                    )
                    url = el.get("url")
                    if url is not None and (not isinstance(url, str) or len(url) > MAX_URL):
                        errors.append(
                            f"must be less than {MAX_URL + 1} characters "
                            f"[json-pointer:{pointer}/url]"
                        )
    return errors


def _check_text(obj: Any, pointer: str, limit: int, *, plain: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{pointer}]"]
    allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        return [f"must be one of {', '.join(allowed)} [json-pointer:{pointer}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or len(text) == 0:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{pointer}/text]"]
    return []


class FakeSlack(FakeServer):
    """The fake server. Use it as a context manager, or call :meth:`start`/:meth:`stop`.

    Args:
        tokens: valid bot tokens (``xoxb-...``).
        revoked_tokens: tokens answered with ``token_revoked``.
        channels: channel names (``platform`` or ``#platform``), or a mapping name -> id;
            ids are made up (``C00000001`` ...) for a plain list.
        not_member: channels that exist but the bot is not a member of (``not_in_channel``).
        webhooks: webhook paths, ``/services/T.../B.../secret``.
        team_id: the workspace id.
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] = ("xoxb-fake-token",),
        revoked_tokens: Iterable[str] = (),
        channels: Iterable[str] | Mapping[str, str] = ("platform",),
        not_member: Iterable[str] = (),
        webhooks: Iterable[str] = ("/services/T000/B000/XXXX",),
        team_id: str = "T000",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._tokens = {t: f"U{i + 1:08d}" for i, t in enumerate(tokens)}
        self._revoked = set(revoked_tokens)
        if isinstance(channels, Mapping):
            named = {n.lstrip("#"): cid for n, cid in channels.items()}
        else:
            named = {n.lstrip("#"): f"C{i + 1:08d}" for i, n in enumerate(channels)}
        not_member = list(not_member)
        for extra in not_member:  # a channel the bot is not in still exists
            if extra.lstrip("#") not in named and extra not in named.values():
                named[extra.lstrip("#")] = f"C{len(named) + 1:08d}"
        self._channel_ids = named  # name -> id
        self._channel_names = {cid: n for n, cid in named.items()}  # id -> name
        self._not_member = {self._channel_id(c) or c.lstrip("#") for c in not_member}
        self._webhooks = {w if w.startswith("/") else f"/{w}" for w in webhooks}
        self.team_id = team_id
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._messages: list[RecordedMessage] = []
        self._requests: list[RecordedRequest] = []
        self._faults: list[tuple[str, Any]] = []  # ("429", retry_after) | ("500", None) | ...
        self._api_errors: list[str] = []
        self._seq = 0

    @property
    def api_url(self) -> str:
        """Base URL of the Web API, for ``SlackChannel(api_url=...)``."""
        return f"{self.base_url}/api/"

    def webhook_url(self, path: str | None = None) -> str:
        """Full URL of an incoming webhook (the first configured one by default)."""
        if path is None:
            path = sorted(self._webhooks)[0]
        return f"{self.base_url}{path if path.startswith('/') else '/' + path}"

    def channel_id(self, name: str) -> str:
        cid = self._channel_id(name)
        if cid is None:
            raise KeyError(name)
        return cid

    # ------------------------------------------------------------------ switches
    def rate_limit(self, count: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After``."""
        with self._lock:
            self._faults += [("429", retry_after)] * count

    def fail(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with an HTTP error (500 by default)."""
        with self._lock:
            self._faults += [("status", status)] * count

    def drop(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests without an answer."""
        with self._lock:
            self._faults += [("drop", None)] * count

    def api_error(self, error: str, count: int = 1) -> None:
        """Answer the next ``count`` Web API calls ``{"ok": false, "error": error}``."""
        with self._lock:
            self._api_errors += [error] * count

    def reset(self) -> None:
        """Forget recorded messages, requests and pending faults."""
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._faults.clear()
            self._api_errors.clear()

    # ------------------------------------------------------------------ records
    @property
    def messages(self) -> list[RecordedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        """Requests whose path ends with ``suffix`` (e.g. ``chat.postMessage``)."""
        return [r for r in self.requests if r.path.endswith(suffix)]

    def find(self, text: str) -> list[RecordedMessage]:
        """Accepted messages whose text or blocks contain ``text``."""
        return [m for m in self.messages if text in m.all_text()]

    def wait_for(self, text: str, *, timeout: float = 30.0) -> RecordedMessage:
        """Wait for a message containing ``text`` (posted, say, by a worker's flow run)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(text)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                seen = [m.text for m in self.messages]
                raise AssertionError(f"no Slack message containing {text!r}; seen: {seen!r}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ internals
    def _channel_id(self, value: str) -> str | None:
        value = value.strip()
        if value in self._channel_names:
            return value
        return self._channel_ids.get(value.lstrip("#"))

    def _next_fault(self) -> tuple[str, Any] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _next_api_error(self) -> str | None:
        with self._lock:
            return self._api_errors.pop(0) if self._api_errors else None

    def _next_ts(self) -> str:
        with self._lock:
            self._seq += 1
            return f"{int(time.time())}.{self._seq:06d}"

    def _record_request(self, path: str, status: int | None, error: str | None) -> None:
        with self._lock:
            self._requests.append(RecordedRequest(path=path, status=status, error=error))

    def _record_message(self, message: RecordedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    # --- Web API
    def _auth(self, token: str | None) -> tuple[str | None, str | None]:
        """(bot user id, error)"""
        if not token:
            return None, "not_authed"
        if token in self._revoked:
            return None, "token_revoked"
        user = self._tokens.get(token)
        if user is None:
            return None, "invalid_auth"
        return user, None

    def _web_api(self, method: str, token: str | None, body: dict, headers: dict) -> dict:
        user, error = self._auth(token)
        if error:
            return {"ok": False, "error": error}
        injected = self._next_api_error()
        if injected:
            return {"ok": False, "error": injected}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://fake.slack.test/",
                "team": "Fake Team",
                "user": "prefect-stacks",
                "team_id": self.team_id,
                "user_id": user,
                "bot_id": "B" + user[1:],
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            return self._post_message(user, body, headers)
        return {"ok": False, "error": "unknown_method", "req_method": method}

    def _post_message(self, user: str | None, body: dict, headers: dict) -> dict:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel.strip():
            return {"ok": False, "error": "channel_not_found"}
        cid = self._channel_id(channel)
        if cid is None:
            return {"ok": False, "error": "channel_not_found"}
        if cid in self._not_member:
            return {"ok": False, "error": "not_in_channel"}
        text, blocks = body.get("text"), body.get("blocks")
        if isinstance(blocks, str):  # form-encoded: blocks is a JSON string
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return {"ok": False, "error": "invalid_blocks_format"}
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        if blocks:
            problems = check_blocks(blocks)
            if problems:
                return {
                    "ok": False,
                    "error": "invalid_blocks",
                    "errors": problems,
                    "response_metadata": {"messages": [f"[ERROR] {p}" for p in problems]},
                }
        ts = self._next_ts()
        payload = {k: v for k, v in body.items() if k != "token"}
        self._record_message(
            RecordedMessage(
                kind="api",
                channel=cid,
                channel_name=self._channel_names.get(cid),
                text=text,
                blocks=blocks or None,
                ts=ts,
                user=user,
                payload=payload,
                headers=headers,
            )
        )
        message = {"type": "message", "user": user, "bot_id": "B" + (user or "")[1:], "ts": ts}
        message["text"] = text or ""
        if blocks:
            message["blocks"] = blocks
        return {"ok": True, "channel": cid, "ts": ts, "message": message}

    # --- webhooks
    def _webhook(self, path: str, raw: bytes, headers: dict) -> tuple[int, str]:
        if path not in self._webhooks:
            prefix = path.rsplit("/", 1)[0] + "/"
            if path.startswith("/services/") and any(w.startswith(prefix) for w in self._webhooks):
                return 403, "invalid_token"
            return 404, "no_service"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return 400, "invalid_payload"
        if not isinstance(body, dict):
            return 400, "invalid_payload"
        text, blocks = body.get("text"), body.get("blocks")
        if not text and not blocks:
            return 400, "no_text"
        if blocks and check_blocks(blocks):
            return 400, "invalid_blocks"
        self._record_message(
            RecordedMessage(
                kind="webhook",
                channel=None,
                channel_name=None,
                text=text,
                blocks=blocks or None,
                ts=None,
                user=None,
                payload=body,
                headers=headers,
                webhook=path,
            )
        )
        return 200, "ok"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSlack
    server_version = "FakeSlack/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet (and webhook paths are secrets)

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS}
        is_api = path.startswith("/api/")

        fault = fake._next_fault()
        if fault is not None:
            kind, arg = fault
            if kind == "drop":
                fake._record_request(path, None, None)
                self.close_connection = True
                return
            if kind == "429":
                fake._record_request(path, 429, "ratelimited")
                if is_api:
                    self._json(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": arg})
                else:
                    self._text(429, "rate_limited", {"Retry-After": arg})
                return
            fake._record_request(path, arg, None)
            self._text(arg, "Internal Server Error" if arg == 500 else "error")
            return

        if is_api:
            method = path[len("/api/") :]
            token, body = self._token_and_body(raw)
            if body is None:
                answer = {"ok": False, "error": "invalid_json"}
            else:
                answer = fake._web_api(method, token, body, headers)
            fake._record_request(path, 200, answer.get("error"))
            self._json(200, answer)
            return
        if path.startswith("/services/"):
            status, text = fake._webhook(path, raw, headers)
            fake._record_request(path, status, None if status == 200 else text)
            self._text(status, text)
            return
        fake._record_request(path, 404, "not_found")
        self._text(404, "not_found")

    def _token_and_body(self, raw: bytes) -> tuple[str | None, dict | None]:
        auth = self.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = json.loads(raw.decode("utf-8") or "{}")
            except (ValueError, UnicodeDecodeError):
                return token, None
            # As on Slack, a JSON body's "token" is not a credential.
            return token, body if isinstance(body, dict) else None
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        form = {**query, **form}
        return token or form.get("token"), form

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _text(self, status: int, body: str, headers: dict | None = None) -> None:
        self._send(status, body.encode(), "text/plain; charset=utf-8", headers)

    def _send(self, status: int, data: bytes, ctype: str, headers: dict | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    """Run the fake by hand: ``python -m tests.fakes.slack --token xoxb-1 --channel platform``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append", default=[])
    parser.add_argument("--channel", action="append", default=[])
    parser.add_argument("--webhook", action="append", default=[])
    args = parser.parse_args(argv)
    fake = FakeSlack(
        tokens=args.token or ["xoxb-fake-token"],
        channels=args.channel or ["platform"],
        webhooks=args.webhook or ["/services/T000/B000/XXXX"],
        port=args.port,
    )
    with fake:
        print(f"api_url={fake.api_url}", flush=True)
        print(f"webhook_url={fake.webhook_url()}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


FakeSlack.handler = _Handler


if __name__ == "__main__":
    main()
