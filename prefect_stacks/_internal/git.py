"""git, the way every part of prefect-stacks calls it: argv only, no prompt, a token sent
as an HTTP header through ``GIT_CONFIG_*`` environment variables (never in argv or a
URL), output masked. :func:`clone` is the one clone of the package (a stack's git source,
a pull request's head commit); :func:`ls_remote_heads` reads branch heads;
:func:`read_revision` tells what a clone checked out (commit, branch, tags, describe)."""

from __future__ import annotations

import base64
import logging
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from prefect_stacks._internal.process import ProcessResult, run_process
from prefect_stacks.exceptions import ConfigurationError, GitError, PrefectStacksError


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


_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def _runner(
    cwd: Path,
    token: str | None,
    secrets: Iterable[str],
    logger: logging.Logger | logging.LoggerAdapter | None,
    timeout: float | None = None,
):
    """``run(*argv, stream=...)``: git in ``cwd`` with the token as a header in its
    environment and every secret masked (what :func:`clone` and :func:`read_revision`
    run their commands with)."""
    git = git_binary()
    env, token_values = auth_env(token)
    masked = [*secrets, *token_values]

    def run(*argv: str, stream: bool = False) -> ProcessResult:
        return run_process(
            [git, *argv],
            cwd=cwd,
            env=env,
            secrets=masked,
            logger=logger,
            stream=stream,
            timeout=timeout,
        )

    return run


def clone(
    url: str,
    dest: Path,
    *,
    ref: str | None = None,
    token: str | None = None,
    secrets: Iterable[str] = (),
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    stream: bool = True,
) -> Path:
    """A shallow clone of ``url`` into ``dest`` (created if missing; it must be empty),
    with the commit checked out detached; ``dest/.git`` is kept. Returns ``dest``.

    Args:
        url: the repository (https, ssh, file:// or a local path).
        ref: branch, tag or commit sha to check out (a sha must be one the server lets a
            client fetch, e.g. a pull request head); none: the remote's default branch.
        token: sent as an HTTP header (:func:`auth_env`), never in argv or a URL.
        secrets: more values to mask in argv and the logged output.
        logger: where git's output goes (default: :func:`run_process`'s).
        stream: log git's output lines as they come.

    Raises :class:`GitError` when a step fails (``dest`` is then removed), and
    ``ConfigurationError`` when git is not installed.
    """
    git = _runner(dest, token, secrets, logger)

    def run(*argv: str, quiet: bool = False) -> ProcessResult:
        return git(*argv, stream=stream and not quiet)

    def fail(step: str, result: ProcessResult) -> GitError:
        shutil.rmtree(dest, ignore_errors=True)
        shown = ref[:12] if ref and _SHA_RE.match(ref) else ref or "the default branch"
        what = f"{shown} of {redact_url(url)}"
        return GitError(
            f"could not {step} {what} (exit {result.returncode}): {result.stderr_tail()}",
            step=step,
            result=result,
        )

    dest.mkdir(parents=True, exist_ok=True)
    fetch = ["fetch", "-q", "--depth", "1", "origin"]
    for argv in (
        ["init", "-q"],
        ["remote", "add", "origin", "--", url],
        fetch + ["--", ref] if ref else fetch,
    ):
        result = run(*argv)
        if result.returncode != 0:
            raise fail("fetch", result)
    if not ref:
        # No ref given: the remote's default branch.
        head = run("ls-remote", "--symref", "origin", "HEAD", quiet=True)
        match = re.search(r"ref: refs/heads/(\S+)\s+HEAD", head.stdout)
        if match:
            run(*fetch, "--", match.group(1))
    result = run("-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD")
    if result.returncode != 0:
        raise fail("checkout", result)
    return dest


@dataclass(frozen=True)
class Revision:
    """What a :func:`clone` checked out: the commit, its committer date, the branch the
    ref named (the remote's default branch when none was given; None for a tag or a
    commit), and, when :func:`read_revision` was asked for them, the tags pointing at the
    commit and ``git describe --tags --always``."""

    sha: str
    committed_at: datetime
    branch: str | None = None
    tags: tuple[str, ...] = ()
    describe: str | None = None


def read_revision(
    checkout: Path,
    *,
    ref: str | None,
    token: str | None = None,
    tags: bool = False,
    describe: bool = False,
    secrets: Iterable[str] = (),
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    timeout: float = 600,
) -> Revision:
    """The :class:`Revision` of ``checkout``, a clone made by :func:`clone` with ``ref``.

    One ``git ls-remote`` of the clone's origin names the branch (and, with ``tags``, the
    tags whose commit is the checked-out one, annotated tags peeled): nothing is
    fetched. ``describe`` needs the commit's history and the tags, so it fetches them
    (``git fetch --unshallow --tags``: the clone stops being shallow) and runs
    ``git describe --tags --always``. The token goes as :func:`clone` sends it.

    Raises :class:`GitError` when a git command fails."""
    git = _runner(checkout, token, secrets, logger, timeout)

    def run(*argv: str) -> ProcessResult:
        result = git(*argv)
        if result.returncode != 0:
            raise GitError(
                f"git {argv[0]} in the checkout failed (exit {result.returncode}): "
                f"{result.stderr_tail()}",
                step=argv[0],
                result=result,
            )
        return result

    sha = run("rev-parse", "HEAD").stdout.strip()
    stamp = run("log", "-1", "--format=%cI", "HEAD").stdout.strip()
    wanted = ["HEAD"] if ref is None else [f"refs/heads/{ref.removeprefix('refs/heads/')}"]
    listing = run("ls-remote", "--symref", "origin", *wanted, *(["refs/tags/*"] if tags else []))
    branch, at_commit = _branch_and_tags(listing.stdout, ref, sha)
    described = None
    if describe:
        shallow = run("rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        run("fetch", "-q", *(["--unshallow"] if shallow else []), "--tags", "origin", "--", sha)
        described = run("describe", "--tags", "--always", "HEAD").stdout.strip() or None
    return Revision(
        sha=sha,
        committed_at=datetime.fromisoformat(stamp),
        branch=branch,
        tags=at_commit if tags else (),
        describe=described,
    )


def _branch_and_tags(listing: str, ref: str | None, sha: str) -> tuple[str | None, tuple[str, ...]]:
    """From ``git ls-remote --symref`` output: the branch ``ref`` names (the default
    branch for None), and the tags whose (peeled) commit is ``sha``."""
    branch = None
    tag_commits: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in listing.splitlines():
        left, _, name = line.partition("\t")
        if left.startswith("ref: ") and name == "HEAD" and ref is None:
            branch = left.removeprefix("ref: refs/heads/")
        elif name.startswith("refs/heads/") and ref is not None:
            if name == f"refs/heads/{ref.removeprefix('refs/heads/')}":
                branch = name.removeprefix("refs/heads/")
        elif name.startswith("refs/tags/"):
            tag = name.removeprefix("refs/tags/")
            if tag.endswith("^{}"):
                peeled[tag.removesuffix("^{}")] = left
            else:
                tag_commits[tag] = left
    tags = tuple(sorted(t for t, c in tag_commits.items() if peeled.get(t, c) == sha))
    return branch, tags
