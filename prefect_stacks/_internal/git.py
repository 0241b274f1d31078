"""git, the way every part of prefect-stacks calls it: argv only, no prompt, a token sent
as an HTTP header through ``GIT_CONFIG_*`` environment variables (never in argv or a
URL), output masked."""

from __future__ import annotations

import base64
import shutil
from urllib.parse import urlsplit, urlunsplit

from prefect_stacks._internal.process import run_process
from prefect_stacks.exceptions import ConfigurationError, PrefectStacksError


def git_binary() -> str:
    git = shutil.which("git")
    if not git:
        raise ConfigurationError("`git` is not installed on this worker (apt-get install git)")
    return git


def auth_env(token: str | None) -> tuple[dict[str, str], list[str]]:
    """Environment for a git child process, and the values to mask in its output."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    if not token:
        return env, []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    header = f"Authorization: Basic {basic}"
    env.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": header,
        }
    )
    return env, [token, header, basic]


def redact_url(url: str) -> str:
    """``https://user:secret@host/x`` -> ``https://***@host/x``."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def refuse_credentials_in_url(url: str, field: str) -> None:
    if "://" in url and urlsplit(url).password:
        raise ConfigurationError(
            f"{field} {redact_url(url)!r} carries a password or token: it would reach argv "
            "and logs. Put the token in a Secret block and name it instead."
        )


def ls_remote_heads(url: str, token: str | None = None, timeout: float = 120) -> dict[str, str]:
    """Branch heads of ``url``: {branch: sha}."""
    refuse_credentials_in_url(url, "repository")
    env, secrets = auth_env(token)
    result = run_process(
        [git_binary(), "ls-remote", "--heads", "--", url],
        env=env,
        secrets=secrets,
        stream=False,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise PrefectStacksError(
            f"git ls-remote {redact_url(url)} failed (exit {result.returncode}): "
            f"{result.stderr_tail()}; check the repository URL and the token"
        )
    heads: dict[str, str] = {}
    for line in result.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/") and sha:
            heads[ref.removeprefix("refs/heads/")] = sha
    return heads
