"""What the per-source verifiers/translators share: the errors that become 4xx answers,
what a translation yields, strict JSON parsing, HMAC and header helpers, and typed field
access whose errors name the field (``pull_request.head.sha: expected a commit id``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect.events import Event
from starlette.datastructures import Headers

from prefect_stacks import events
from prefect_stacks.exceptions import (
    BadRequest,
    ConfigurationError,
    Unauthorized,
    UnsupportedMediaType,
)

# Longest string taken from a delivery into an event (titles, refs, URLs ...).
MAX_TEXT = 2048
# A pull/merge request number: a positive 32-bit integer.
MAX_NUMBER = 2**31 - 1

_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# Distribution's reference grammar (distribution/reference/regexp.go).
_REPOSITORY_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_HOST_RE = re.compile(r"^(?:[a-z0-9][a-z0-9.-]{0,252}|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")
# C0 controls but tab, newline, carriage return: NUL and friends break some databases.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


MISSING_SIGNATURE = "missing signature"
SIGNATURE_MISMATCH = "signature mismatch"


@dataclass
class Delivery:
    """One unit that is deduplicated: its id (per source) and the events it yields."""

    key: str
    events: list[Event]


@dataclass
class Translation:
    """What a verified request means: deliveries to emit, or why there is nothing."""

    deliveries: list[Delivery] = field(default_factory=list)
    ignored: str | None = None
    pong: bool = False


# --------------------------------------------------------------------------- headers


def header(headers: Headers, name: str) -> str | None:
    """The header's value when it is present exactly once (a repeated signature or id
    header is as good as none), else None."""
    values = headers.getlist(name)
    if len(values) != 1:
        return None
    return values[0]


def media_type(headers: Headers) -> str:
    value = header(headers, "content-type") or ""
    return value.split(";", 1)[0].strip().lower()


def delivery_id(value: str | None, name: str) -> str:
    """A delivery id from a header: printable ASCII, at most 200 characters."""
    if value is None:
        raise BadRequest(f"missing {name} header")
    value = value.strip()
    if not value or len(value) > 200 or not value.isascii() or not value.isprintable():
        raise BadRequest(f"{name}: expected a printable id of at most 200 characters")
    return value


def body_digest(body: bytes) -> str:
    """The delivery id of a sender that sent none: the body's digest (the same body is
    the same delivery)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------- secrets


def hmac_hex(secret: str, *parts: bytes) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest()


def _raw(value: str) -> bytes:
    # Starlette decodes header bytes as latin-1: this gives the bytes back, whatever they are
    return value.encode("latin-1", errors="replace")


def check_signature(given: str | None, expected_hex: str) -> None:
    """``given`` is a ``sha256=<hex>`` header value (or None when absent)."""
    if given is None or not given.strip():
        raise Unauthorized(MISSING_SIGNATURE)
    algorithm, _, digest = given.strip().partition("=")
    ok = hmac.compare_digest(_raw(digest.lower()), expected_hex.encode())
    if algorithm.lower() != "sha256" or not ok:
        raise Unauthorized(SIGNATURE_MISMATCH)


def check_token(given: str | None, secret: str) -> None:
    if given is None or not given:
        raise Unauthorized(MISSING_SIGNATURE)
    if not hmac.compare_digest(_raw(given), secret.encode()):
        raise Unauthorized(SIGNATURE_MISMATCH)


# --------------------------------------------------------------------------- bodies


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes | str) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity; anything unreadable is a 400."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return json.loads(text, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    except (ValueError, RecursionError):
        raise BadRequest("body is not valid JSON") from None


def expect_json(headers: Headers, *accepted: str) -> None:
    kind = media_type(headers)
    if kind not in accepted:
        raise UnsupportedMediaType(
            f"Content-Type {kind or '(none)'!r} is not accepted; send {' or '.join(accepted)}"
        )


# --------------------------------------------------------------------------- fields


def obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{path or 'body'}: expected a JSON object")
    return value


def get(data: Mapping[str, Any], path: str, *, required: bool = True) -> Any:
    """``data["a"]["b"]`` for ``path`` ``a.b``; a missing field is a 400 naming it (or
    None when not ``required``, also when an enclosing object is null)."""
    current: Any = data
    walked: list[str] = []
    for part in path.split("."):
        if current is None and walked and not required:
            return None
        if not isinstance(current, dict):
            raise BadRequest(f"{'.'.join(walked) or 'body'}: expected a JSON object")
        walked.append(part)
        if part not in current:
            if required:
                raise BadRequest(f"{path}: missing")
            return None
        current = current[part]
    return current


def text(
    value: Any,
    path: str,
    *,
    optional: bool = False,
    allow_empty: bool = False,
    max_len: int = MAX_TEXT,
) -> str:
    """A string field; ``optional`` turns a null/missing value into ``""``."""
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{path}: expected a string")
    if not value and not (allow_empty or optional):
        raise BadRequest(f"{path}: must not be empty")
    if len(value) > max_len:
        raise BadRequest(f"{path}: longer than {max_len} characters")
    if _CONTROL_RE.search(value):
        raise BadRequest(f"{path}: contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{path}: not valid Unicode") from None
    return value


def number(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_NUMBER:
        raise BadRequest(f"{path}: expected a positive integer")
    return value


def boolean(value: Any, path: str, *, default: bool | None = None) -> bool:
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{path}: expected true or false")
    return value


def sha(value: Any, path: str, *, optional: bool = False) -> str | None:
    """A full commit id (40 or 64 lowercase hex digits)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _SHA_RE.match(value):
        raise BadRequest(f"{path}: expected a full commit id (40 or 64 lowercase hex digits)")
    return value


def is_zero_sha(value: str | None) -> bool:
    return value is not None and value != "" and set(value) == {"0"}


def branch_of(ref: str, path: str) -> str | None:
    """``refs/heads/<branch>`` -> branch; None for any other ref (tags ...)."""
    if not ref.startswith("refs/heads/"):
        return None
    branch = ref.removeprefix("refs/heads/")
    if not branch:
        raise BadRequest(f"{path}: names no branch")
    return branch


def pushed_commit(
    key: str, data: Mapping[str, Any], branch: str, repository_path: str
) -> Translation:
    """A push to ``branch`` (GitHub's and GitLab's push payloads share ``after`` and
    ``before``): the ``stacks.git.commit`` event, or ignored when the branch was deleted
    (``after`` is all zeros)."""
    after = sha(get(data, "after"), "after")
    if is_zero_sha(after):
        return Translation(ignored="branch deleted")
    before = sha(get(data, "before", required=False), "before", optional=True)
    repository = repository_url(get(data, repository_path), repository_path)
    event = events.git_commit(repository, branch, after, before)  # type: ignore[arg-type]
    return Translation(deliveries=[Delivery(key, [event])])


def repository_url(value: Any, path: str) -> str:
    """A repository URL that :func:`events.normalize_repository` accepts."""
    url = text(value, path)
    try:
        events.normalize_repository(url)
    except (ConfigurationError, ValueError):
        raise BadRequest(f"{path}: not a repository URL") from None
    return url


def instant(data: Mapping[str, Any], path: str | None) -> str | None:
    """An optional time field (ISO 8601, or GitLab's ``… UTC``) in the one spelling of
    :func:`events.transition_instant`; None when absent or when there is no ``path``."""
    if path is None:
        return None
    value = text(get(data, path, required=False), path, optional=True, max_len=64)
    try:
        return events.transition_instant(value)
    except ValueError:
        raise BadRequest(f"{path}: not a time such as 2026-12-01T20:42:56Z") from None


def image_repository(value: Any, path: str) -> str:
    name = text(value, path, max_len=255)
    if not _REPOSITORY_RE.match(name):
        raise BadRequest(f"{path}: not a registry repository name such as `acme/shop`")
    return name


def image_tag(value: Any, path: str) -> str:
    tag = text(value, path, max_len=128)
    if not _TAG_RE.match(tag):
        raise BadRequest(f"{path}: not a tag (letters, digits, `_`, `.`, `-`; at most 128)")
    return tag


def image_digest(value: Any, path: str) -> str:
    digest = text(value, path, max_len=255)
    if not _DIGEST_RE.match(digest):
        raise BadRequest(f"{path}: not a digest such as `sha256:<hex>`")
    return digest


def registry_host(value: Any, path: str) -> str:
    host = text(value, path, max_len=260).lower()
    host = host.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not _HOST_RE.match(host):
        raise BadRequest(f"{path}: not a registry host[:port]")
    return host
