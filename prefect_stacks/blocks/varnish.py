"""The ``VarnishPool`` block: every instance of a pool of Varnish caches, banned over HTTP
through the one HTTP helper, then checked one by one.

**The VCL to install** on every instance ships with the package, as
``prefect_stacks/blocks/varnish_ban.vcl`` (:func:`ban_vcl_path`; docs/day2.md shows it).
It accepts a ``BAN`` request from an ACL (optionally with a shared secret) and turns it
into a lurker-friendly ban of Varnish's own::

    BAN / HTTP/1.1
    X-Ban-Url:  ^/products/            (a regex on the URL path and query)
    X-Ban-Host: (?i)^www\\.example\\.com(:[0-9]+)?$   (a regex on the Host)

answering ``200`` (banned), ``400`` with Varnish's reason (an invalid regex) or ``403``
(outside the ACL, wrong secret), and it marks every answer ``X-Cache: HIT``/``MISS``.

**What a flush does** (:meth:`VarnishPool.flush`): each ban is sent to EVERY instance;
an instance that is down or refuses is reported and the others still get their bans.
Then each URL to verify is requested from each instance that took its bans: a fresh
object is a miss (``X-Varnish`` carries one id; a hit carries two, its own and the
stored object's; else ``X-Cache``, else ``Age`` > 0 means a hit). The result is a
:class:`VarnishReport`, per node: bans sent, URLs checked, and what failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.http import HttpClient, HttpResult
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.exceptions import ConfigurationError, HTTPServiceError, VarnishError

_HOST_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_HEADER_RE = re.compile(r"^[A-Za-z0-9-]+$")


def ban_vcl_path() -> Path:
    """The VCL snippet to include on every instance (shipped with the package)."""
    return Path(__file__).with_name("varnish_ban.vcl")


@dataclass(frozen=True)
class Ban:
    """One ban: a regex on the URL, on the Host, or both (objects matching both)."""

    url: str | None = None
    host: str | None = None

    @property
    def label(self) -> str:
        parts = [f"url ~ {self.url}"] if self.url else []
        parts += [f"host ~ {self.host}"] if self.host else []
        return " && ".join(parts)


def host_pattern(host: str) -> str:
    """The ban regex of one host name: exact, any case, with or without a port."""
    return "(?i)^" + re.escape(host.lower()) + "(:[0-9]+)?$"


def bans_for(url_patterns: list[str], hosts: list[str]) -> list[Ban]:
    """The bans of a flush: each URL pattern (on each host, when hosts are given), or every
    object of each host. Raises ConfigurationError naming the parameter to fix."""
    patterns = [p.strip() for p in url_patterns if p and p.strip()]
    names = [h.strip().lower().rstrip(".") for h in hosts if h and h.strip()]
    for pattern in patterns:
        if re.search(r"\s", pattern):
            raise ConfigurationError(
                f"ban_url_patterns: {pattern!r} contains whitespace, which a Varnish ban "
                r"expression cannot hold; write \s (or [ ]) instead"
            )
    for name in names:
        if not _HOST_RE.match(name):
            raise ConfigurationError(
                f"ban_hosts: {name!r} is not a host name (write www.example.com: no "
                "scheme, path or port)"
            )
    if patterns and names:
        return [Ban(p, host_pattern(h)) for p in patterns for h in names]
    if patterns:
        return [Ban(url=p) for p in patterns]
    return [Ban(host=host_pattern(h)) for h in names]


# ------------------------------------------------------------------ the report
@dataclass
class NodeReport:
    """What one instance did: each ban (error or None), each URL checked."""

    node: str
    bans: list[tuple[str, str | None]] = field(default_factory=list)
    checks: list[tuple[str, str, str | None]] = field(default_factory=list)  # url, verdict, why
    errors: list[VarnishError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class VarnishReport:
    """Per node: the bans sent and the URLs verified; ``failures()`` says what to fix."""

    pool: str
    nodes: list[NodeReport]

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.nodes)

    def failures(self) -> list[str]:
        return [str(e) for n in self.nodes for e in n.errors]

    def summary(self) -> str:
        good = sum(1 for n in self.nodes if n.ok)
        return f"Varnish {self.pool}: {good} of {len(self.nodes)} instances flushed and verified"

    def markdown(self) -> str:
        lines = [
            f"### Varnish pool {self.pool}",
            "",
            "| instance | bans | verified (a miss after the ban) | result |",
            "|---|---|---|---|",
        ]
        for n in self.nodes:
            bans = "<br>".join(
                f"{'✅' if err is None else '❌'} `{_cell(label)}`" for label, err in n.bans
            )
            checks = "<br>".join(f"`{_cell(url)}`: {verdict}" for url, verdict, _ in n.checks)
            result = "ok" if n.ok else "<br>".join(_cell(str(e)) for e in n.errors)
            lines.append(f"| `{n.node}` | {bans or '-'} | {checks or '-'} | {result} |")
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


# ------------------------------------------------------------------ the block
class VarnishPool(StacksBlock):
    """Every instance of a pool of Varnish caches (each one is banned; a load balancer in
    front would reach only one), with the ban VCL of ``varnish_ban.vcl`` installed.

    Example:
        ```python
        from prefect_stacks.blocks.varnish import VarnishPool, bans_for

        pool = VarnishPool.load("BLOCK_NAME")
        report = pool.flush(bans_for(["^/products/"], []), verify=["/products/1"])
        print(report.summary())
        ```
    """

    _block_type_name = "Varnish Pool"
    _block_type_slug = "varnish-pool"
    _logo_url = "https://varnish-cache.org/_static/varnish-bunny.png"
    _documentation_url = "https://varnish-cache.org/docs/7.1/users-guide/purging.html"
    _description = (
        "A pool of Varnish instances that cache-flush bans (BAN by URL pattern / host, sent "
        "to every instance) and then checks for a miss."
    )

    instances: list[str] = Field(
        default=...,
        description="Base URL of every Varnish instance (not a load balancer), e.g. "
        "`http://10.0.0.5:6081`.",
    )
    ban_method: str = Field(
        default="BAN", description="HTTP method the installed VCL treats as a ban request."
    )
    ban_auth_header: str = Field(
        default="X-Ban-Secret",
        description="Header that carries ban_secret, when the VCL checks one.",
    )
    ban_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret the VCL checks on each ban (see varnish_ban.vcl); "
        "empty: the ACL alone decides.",
    )
    timeout: float = Field(default=5.0, gt=0, description="Seconds per request to an instance.")
    retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Retries of a request that could not connect (an instance restarting).",
    )

    @field_validator("instances")
    @classmethod
    def _check_instances(cls, value: list[str]) -> list[str]:
        cleaned = []
        for item in value:
            item = item.strip().rstrip("/")
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{item!r} is not an http(s) URL of a Varnish instance")
            if item not in cleaned:
                cleaned.append(item)
        if not cleaned:
            raise ValueError("name at least one Varnish instance")
        return cleaned

    @field_validator("ban_method", "ban_auth_header")
    @classmethod
    def _check_token(cls, value: str) -> str:
        if not _HEADER_RE.match(value.strip()):
            raise ValueError(f"{value!r} is not an HTTP method or header name")
        return value.strip()

    def label(self, name: str | None = None) -> str:
        return repr(name or getattr(self, "_block_document_name", None) or "(unsaved)")

    def get_client(self, name: str | None = None) -> VarnishClient:
        secret = self.ban_secret.get_secret_value() if self.ban_secret else None
        return VarnishClient(self, secret, self.label(name))

    def flush(
        self, bans: list[Ban], verify: list[str], *, name: str | None = None
    ) -> VarnishReport:
        """Send every ban to every instance, then check each URL of ``verify`` (a path, or
        a full URL whose host is sent as ``Host``) on each instance that took them."""
        client = self.get_client(name)
        return VarnishReport(
            self.label(name), [client.flush_node(node, bans, verify) for node in self.instances]
        )


class VarnishClient:
    """Requests to single instances of a :class:`VarnishPool`, through the HTTP helper."""

    def __init__(self, pool: VarnishPool, secret: str | None, label: str = "") -> None:
        self.pool = pool
        self._secret = secret
        self.label = label or pool.label()

    def request(self, node: str, method: str, path: str, headers: dict[str, str]) -> HttpResult:
        """The instance's answer, whatever its status (a synthetic 403 is an answer too).
        Raises the helper's HTTPServiceError when none came: ``status`` None when the
        instance could not be reached, a 5xx after the retries otherwise."""
        answered: list[HttpResult] = []

        def keep(result: HttpResult, what: str) -> Exception:
            answered.append(result)
            return HTTPServiceError(f"HTTP {result.status}", status=result.status)

        http = HttpClient(
            base_url=node,
            service=f"Varnish {node}",
            headers=headers,
            secrets=[self._secret] if self._secret else [],
            timeout=self.pool.timeout,
            max_retries=self.pool.retries,
            retry_backoff=0.5,
            max_rate_limit_wait=30.0,
            describe_error=keep,
        )
        try:
            with http:
                return http.request(method, path, conditional=False, idempotent=True)
        except HTTPServiceError:
            if answered:
                return answered[-1]
            raise

    def flush_node(self, node: str, bans: list[Ban], verify: list[str]) -> NodeReport:
        """Every ban on one instance, then every URL checked there; all in the report."""
        report = NodeReport(node)
        for ban in bans:
            try:
                error = self.ban(node, ban)
            except HTTPServiceError as exc:
                error = self._unanswered(node, exc)
                report.bans.append((ban.label, str(error)))
                report.errors.append(error)
                if exc.status is None:  # down: every further request would fail alike
                    report.checks += [(u, "not checked (instance down)", None) for u in verify]
                    return report
                continue
            report.bans.append((ban.label, None if error is None else str(error)))
            if error is not None:
                report.errors.append(error)
        for url in verify:
            try:
                hit = self.is_hit(node, url)
            except (HTTPServiceError, VarnishError) as exc:
                error = exc if isinstance(exc, VarnishError) else self._unanswered(node, exc)
                report.checks.append((url, "error", str(error)))
                report.errors.append(error)
                continue
            if not hit:
                report.checks.append((url, "miss", None))
                continue
            error = VarnishError(
                f"Varnish {node} still served {url} from its cache after the bans: check "
                "that the ban patterns cover it and that varnish_ban.vcl is installed there",
                node=node,
            )
            report.checks.append((url, "HIT (still cached)", str(error)))
            report.errors.append(error)
        return report

    def _unanswered(self, node: str, exc: HTTPServiceError) -> VarnishError:
        if exc.status is None:
            found = re.search(r"\((\w+: [^)]*)\)", str(exc))
            return VarnishError(
                f"Varnish {node} is unreachable ({found.group(1) if found else exc}); start "
                f"it, or take it out of `instances` of the VarnishPool block {self.label} if "
                "it is gone for good",
                node=node,
            )
        return VarnishError(f"Varnish {node}: {exc}", node=node)

    def ban(self, node: str, ban: Ban) -> VarnishError | None:
        """Send one ban to one instance: None when it was taken, else the error saying
        why not (the instance's own reason, and what to fix). Raises the helper's
        HTTPServiceError when no answer came (:meth:`request`)."""
        headers = {}
        if ban.url:
            headers["X-Ban-Url"] = ban.url
        if ban.host:
            headers["X-Ban-Host"] = ban.host
        if self._secret:
            headers[self.pool.ban_auth_header] = self._secret
        method = self.pool.ban_method
        result = self.request(node, method, "/", headers)
        if 200 <= result.status < 300:
            return None
        reason = _reason(result)
        not_installed = f"install varnish_ban.vcl on that instance (it does not accept {method})"
        hint = {
            403: "allow this worker's address in the VCL's ACL (and check the block's ban_secret)",
            400: "fix the pattern in ban_url_patterns (a PCRE regex, no whitespace)",
            405: not_installed,
            501: not_installed,
        }.get(result.status, "install varnish_ban.vcl on that instance")
        return VarnishError(
            f"Varnish {node} refused the ban `{ban.label}` (HTTP {result.status}"
            + (f": {reason}" if reason else "")
            + f"); {hint}",
            node=node,
        )

    def is_hit(self, node: str, url: str) -> bool:
        """Whether ``url`` (a path, or a full URL: its host is sent as ``Host``) is served
        from the instance's cache now; a 404 or a redirect is judged by its headers too."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc} if parts.netloc else {}
        return served_from_cache(self.request(node, "GET", path, headers).headers, node)


def served_from_cache(headers: Any, node: str = "") -> bool:
    """Hit or miss from an answer's headers: ``X-Varnish`` (two ids: a hit), else
    ``X-Cache``, else ``Age`` > 0. None of them: a VarnishError (not Varnish's answer)."""
    xvarnish = headers.get("x-varnish")
    if xvarnish:
        return len(xvarnish.split()) >= 2
    xcache = headers.get("x-cache")
    if xcache:
        return xcache.split(",")[0].strip().upper().startswith("HIT")
    age = headers.get("age")
    if age is not None:
        try:
            return int(age) > 0
        except ValueError:
            pass
    raise VarnishError(
        f"Varnish {node}: the answer has no X-Varnish, X-Cache or Age header, so a hit "
        "cannot be told from a miss; is that URL a Varnish instance (not its backend)?",
        node=node or None,
    )


def _reason(result: HttpResult) -> str:
    data = result.data
    if isinstance(data, str):
        found = re.search(r"<h1>\s*Error \d+ ([^<]+)</h1>", data)
        return found.group(1).strip() if found else data.strip()[:200]
    return ""


@task(cache_policy=NO_CACHE, task_run_name="varnish-ban-{name}")
def ban_varnish(pool: VarnishPool, bans: list[Ban], verify: list[str], name: str) -> VarnishReport:
    """Ban on every instance of the pool, then verify a miss on each: the per-node report
    (a failure is in the report, never raised: the flow tries every target first)."""
    return pool.flush(bans, verify, name=name)
