"""The one exception family of prefect-stacks.

Every error a user can act on is a ``PrefectStacksError`` whose message names the thing
to fix: which block and field, which command, and the tail of its stderr.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from prefect.blocks.abstract import NotificationError as _PrefectNotificationError

if TYPE_CHECKING:
    from prefect_stacks._internal.process import ProcessResult


class PrefectStacksError(Exception):
    """Base class of every error prefect-stacks raises on purpose."""


class ConfigurationError(PrefectStacksError):
    """A block, parameter or setting is wrong; the message names the field to fix."""


class StackError(PrefectStacksError):
    """A Terraform stack operation failed.

    Carries the stack, the workspace, the command (secrets redacted) and the tail of
    stderr, so that a flow run's failure message is enough to act on.
    """

    def __init__(
        self,
        message: str,
        *,
        stack: str | None = None,
        workspace: str | None = None,
        command: str | None = None,
        stderr_tail: str | None = None,
        returncode: int | None = None,
    ) -> None:
        self.stack = stack
        self.workspace = workspace
        self.command = command
        self.stderr_tail = stderr_tail
        self.returncode = returncode
        parts = []
        where = []
        if stack:
            where.append(f"stack {stack!r}")
        if workspace:
            where.append(f"workspace {workspace!r}")
        prefix = f"[{', '.join(where)}] " if where else ""
        parts.append(prefix + message)
        if command:
            rc = f" (exit code {returncode})" if returncode is not None else ""
            parts.append(f"command: {command}{rc}")
        if stderr_tail:
            parts.append("stderr (last lines):\n" + stderr_tail)
        super().__init__("\n".join(parts))


class StateLockedError(StackError):
    """Terraform could not acquire the state lock within the block's lock timeout."""

    def __init__(self, message: str, *, lock_id: str | None = None, **kwargs) -> None:
        self.lock_id = lock_id
        super().__init__(message, **kwargs)


class EnvironmentNotFound(PrefectStacksError, LookupError):
    """No ledger entry has that environment name."""


class UnknownEnvironment(ConfigurationError, EnvironmentNotFound):
    """A teardown was asked for an environment the ledger does not know: the user's to
    fix (a ConfigurationError: the run fails with the message, no traceback)."""


class LedgerError(PrefectStacksError):
    """The environment ledger could not be read or written reliably (the server errored,
    a listing was partial, a lock could not be taken); nothing was acted on."""


class NotificationError(PrefectStacksError, _PrefectNotificationError):
    """A notification (Slack ...) could not be sent; the message names the block field to
    fix, and never contains the credential (token, webhook URL).

    Also a ``prefect.blocks.abstract.NotificationError``: a Prefect automation's "send a
    notification" action records its message as the action's failure log.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self.log = message  # what Prefect's notification action reads
        self.error = error  # the service's error code, e.g. "channel_not_found"
        self.field = field  # the block field to fix, when one is to blame
        self.status = status  # the HTTP status, when there was an answer


# ------------------------------------------------------------ HTTP services
class HTTPServiceError(PrefectStacksError):
    """An HTTP API answered with an error, or could not be reached (after the retries).

    ``ambiguous`` is True when a request that is not idempotent may or may not have been
    carried out (the connection broke after it was sent, or the server answered 5xx).
    ``rate_limited`` is True when a rate limit outlasted the wait budget.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        ambiguous: bool = False,
        rate_limited: bool = False,
        reset_at: datetime | None = None,
        service_message: str | None = None,
        errors: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.ambiguous = ambiguous
        self.rate_limited = rate_limited
        self.reset_at = reset_at
        self.service_message = service_message
        self.errors = errors or []


class GitHubError(HTTPServiceError):
    """GitHub answered with an error, could not be reached, or kept rate-limiting past the
    wait budget. The message names the block, what was asked and what to fix; the token
    never appears in it. ``status``, ``service_message`` (GitHub's ``message``),
    ``errors`` (GitHub's ``errors``), ``rate_limited``, ``reset_at`` and ``location``
    (where a ``301``, a renamed or transferred repository, points) are attributes."""

    def __init__(self, message: str, *, location: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.location = location


class RegistryError(HTTPServiceError):
    """A container registry (Distribution / OCI API v2) answered with an error, could not
    be reached, or kept rate-limiting past the wait budget. ``code`` is the registry's
    own error code (``MANIFEST_UNKNOWN``, ``NAME_UNKNOWN``, ``UNAUTHORIZED`` ...) and
    ``challenge`` the ``WWW-Authenticate`` header of a 401; the credential never appears
    in the message."""

    def __init__(
        self, message: str, *, code: str | None = None, challenge: str | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.code = code
        self.challenge = challenge


class AlertmanagerError(HTTPServiceError):
    """An Alertmanager answered with an error or could not be reached."""


class CdnError(HTTPServiceError):
    """A CDN API (Cloudflare, Fastly) answered with an error, could not be reached, or kept
    rate-limiting past the wait budget; the token never appears in the message."""


class VarnishError(PrefectStacksError):
    """A Varnish instance refused or could not be sent a ban, or still served a purged
    object from its cache; ``node`` names the instance."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class AnsibleError(PrefectStacksError):
    """An Ansible playbook run failed: a task failed, a host was unreachable, the vault
    password was wrong, the playbook or inventory is wrong. ``failed_hosts`` and
    ``unreachable_hosts`` name the hosts; ``recap`` is the per-host recap when the play
    got that far."""

    def __init__(
        self,
        message: str,
        *,
        failed_hosts: list[str] | None = None,
        unreachable_hosts: list[str] | None = None,
        recap: dict[str, dict[str, int]] | None = None,
    ) -> None:
        super().__init__(message)
        self.failed_hosts = failed_hosts or []
        self.unreachable_hosts = unreachable_hosts or []
        self.recap = recap or {}


class DatabaseError(PrefectStacksError):
    """pg_dump, pg_restore or psql failed, or a copy was refused (a personal-data column
    without a masking rule); the message names the database and what to fix, never a
    password."""


class KubernetesError(PrefectStacksError):
    """kubectl failed, or the API server refused what it was sent: the message names the
    cluster, what was asked, the API server's own words and what to fix. ``result`` is
    the :class:`ProcessResult` (argv and output masked)."""

    def __init__(self, message: str, *, result: ProcessResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class DeployError(PrefectStacksError):
    """A deploy could not be recorded or serialised (its target's record or lock)."""


class DeployFailed(PrefectStacksError):
    """A deploy reached the cluster and then failed: the rollout missed its deadline, a
    functional check failed, or a watched alert fired. ``stage`` is ``"rollout"``,
    ``"check"`` or ``"alerts"``. What the flow rolls back and quarantines."""

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


# ------------------------------------------------------------ git
class GitError(PrefectStacksError):
    """A git command failed; ``result`` is its :class:`ProcessResult` (argv masked, the
    tail of stderr), ``step`` is ``"fetch"`` or ``"checkout"``."""

    def __init__(self, message: str, *, step: str, result: ProcessResult) -> None:
        self.step = step
        self.result = result
        super().__init__(message)


# ------------------------------------------------------------ Prefect variables
class PartialListing(PrefectStacksError):
    """A paged listing of Prefect variables returned fewer than the server counted (a
    concurrent write, or a server error mid-listing): never read as "fewer entries"."""

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(f"got {got} of {expected}")
        self.got, self.expected = got, expected


# ------------------------------------------------------------ the local control plane
class LocalPlatformError(PrefectStacksError):
    """The local server, worker or deployments could not be brought up (or down); the
    message says what failed and where its log is."""


# ------------------------------------------------------------ the webhook receiver
# Internal signals, not user errors: the delivery is answered 503 so the sender retries.
class SourceUnavailable(Exception):
    """The Prefect server could not say whether the source block exists."""


class Busy(Exception):
    """An identical delivery is still in flight after the wait."""


# ------------------------------------------------------------ events
class EmitError(PrefectStacksError):
    """The Prefect server did not accept the events (unreachable, or an error)."""


# ------------------------------------------------------------ refused webhook deliveries
# Answered with the class's 4xx status; ``reason`` is safe to send back to the sender.
class WebhookError(Exception):
    """A delivery answered with a 4xx status; ``reason`` is safe to send back."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(WebhookError):
    status = 400


class Unauthorized(WebhookError):
    status = 401


class UnsupportedMediaType(WebhookError):
    status = 415


class TooLarge(WebhookError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")


class TooSlow(WebhookError):
    status = 408

    def __init__(self, timeout: float) -> None:
        super().__init__(f"body not received within {timeout:g} s")


# ------------------------------------------------------------ environments
class LimitBusy(TimeoutError):
    """A global concurrency limit stayed full for the whole wait."""
