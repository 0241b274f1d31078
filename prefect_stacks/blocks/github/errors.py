"""The GitHub blocks' error, and the messages that turn GitHub's 4xx answers into what
to fix (kept apart so that models, API and block can all raise it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect_stacks._internal.http import HttpResult
from prefect_stacks._internal.process import Redactor
from prefect_stacks.exceptions import GitHubError

REQUIRED_PERMISSIONS = (
    "a fine-grained token needs, on this repository: Pull requests (read; write to "
    "comment), Commit statuses (read and write), Issues (read and write, for comments) and "
    "Contents (read); a classic token needs the `repo` scope (`public_repo` for a public "
    "repository); an organization using SAML SSO must also authorize the token"
)


def describe_error(
    result: HttpResult,
    what: str,
    *,
    block: str,
    owner: str,
    repo: str,
    has_token: bool,
    secrets: Iterable[str] = (),
) -> GitHubError:
    """The :class:`GitHubError` for GitHub's final non-success answer to ``what``, naming
    the ``block`` and the field to fix."""
    status = result.status
    message = result.service_message()
    data = result.data if isinstance(result.data, dict) else {}
    errors = data.get("errors") if isinstance(data.get("errors"), list) else []
    said = f"{status} {message}" if message else f"HTTP {status}"
    text = f"GitHubRepository {block!r}: " + _what_to_fix(
        status, said, what, errors, block=block, owner=owner, repo=repo, has_token=has_token
    )
    return GitHubError(
        Redactor(secrets)(text),
        status=status,
        method=result.method,
        url=result.url,
        service_message=message,
        errors=errors,
        location=result.headers.get("location") if status == 301 else None,
    )


def _what_to_fix(
    status: int,
    said: str,
    what: str,
    errors: list[Any],
    *,
    block: str,
    owner: str,
    repo: str,
    has_token: bool,
) -> str:
    if status == 301:
        return (
            f"GitHub answered 301 Moved Permanently to {what}: {owner}/{repo} was renamed "
            "or transferred; use its new name."
        )
    if status == 401 and has_token:
        return (
            f"GitHub answered {said} to {what}: bad credentials: check the token of block "
            f"{block!r} (field `token`: it may be expired, revoked or mistyped)."
        )
    if status == 401:
        return (
            f"GitHub answered {said} to {what}: it needs authentication: set the field "
            f"`token` of block {block!r}."
        )
    if status == 403:
        return (
            f"GitHub answered {said} to {what}: the token of block {block!r} is not allowed "
            f"to do this; {REQUIRED_PERMISSIONS}."
        )
    if status == 404:
        return (
            f"GitHub answered 404 Not Found to {what}: check the fields `owner` ({owner!r}) "
            f"and `repo` ({repo!r}) and the number asked for. GitHub also answers 404 when "
            "the repository is private and the token cannot see it (no `token`, or a token "
            f"without access to {owner}/{repo})."
        )
    if status == 422:
        details = "; ".join(format_error(e) for e in errors[:10])
        return f"GitHub rejected {what} ({said})" + (f": {details}" if details else "") + "."
    return f"GitHub answered {said} to {what}."


def format_error(error: Any) -> str:
    """One entry of GitHub's 422 ``errors``: a string, or {resource, field, code, message}."""
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return repr(error)
    if error.get("message"):
        where = ".".join(str(error[k]) for k in ("resource", "field") if error.get(k))
        return f"{where}: {error['message']}" if where else str(error["message"])
    parts = [f"{k}={error[k]}" for k in ("resource", "field", "code", "value") if k in error]
    return ", ".join(parts) or repr(error)


__all__ = ["REQUIRED_PERMISSIONS", "GitHubError", "describe_error", "format_error"]
