"""What a ledger entry is: :class:`Environment` and its :class:`EnvironmentState`, the
Prefect objects made for it, names (environment and Variable), and TTLs and durations
(parsing, the flow-parameter type, formatting)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from prefect_stacks.exceptions import ConfigurationError

VARIABLE_PREFIX = "stacks-env-"
LEDGER_TAG = "prefect-stacks:environment"
MAX_TTL = timedelta(days=90)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EnvironmentState(str, Enum):
    provisioning = "provisioning"
    ready = "ready"
    destroying = "destroying"
    destroyed = "destroyed"
    failed = "failed"


LIVE_STATES = frozenset(
    {
        EnvironmentState.provisioning,
        EnvironmentState.ready,
        EnvironmentState.destroying,
        EnvironmentState.failed,
    }
)


class PrefectObjects(BaseModel):
    """Prefect objects made for an environment; teardown deletes every one."""

    deployments: list[str] = Field(default_factory=list, description="Deployment ids.")
    flow_runs: list[str] = Field(
        default_factory=list, description="Scheduled flow run ids (e.g. the teardown)."
    )
    variables: list[str] = Field(default_factory=list, description="Variable names.")


class Environment(BaseModel):
    """One ledger entry."""

    name: str
    kind: str = "static"
    owner: str | None = None
    stack: str = Field(description="Name of the TerraformStack block.")
    workspace: str
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Non-secret stack variables used to apply it."
    )
    created_at: datetime = Field(default_factory=utcnow)
    last_activity_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    state: EnvironmentState = EnvironmentState.provisioning
    url: str | None = None
    slack_block: str | None = None
    objects: PrefectObjects = Field(default_factory=PrefectObjects)
    desired_version: str | None = Field(
        default=None,
        description="The version (e.g. a pull request's head commit) it should run.",
    )
    deployed_version: str | None = Field(
        default=None, description="The version its last successful deploy put in place."
    )
    provisioning_run_id: str | None = Field(
        default=None,
        description="The flow run applying the stack; teardowns wait for it to finish.",
    )
    provisioning_started_at: datetime | None = None
    teardown_run_id: str | None = Field(
        default=None, description="The scheduled (or running) teardown flow run."
    )
    teardown_started_at: datetime | None = None
    teardown_attempts: int = 0
    warned_at: datetime | None = None
    destroyed_at: datetime | None = None
    error: str | None = None
    revision: int = 0

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def expires_in(self, now: datetime | None = None) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - (now or utcnow())


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigurationError(
            f"{name!r} is not a valid environment name: 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit (e.g. demo-7f3a, PR_42)."
        )
    return name


def variable_name(name: str) -> str:
    """Prefect variable names are lowercase; environment names keep their case in the
    entry, and two names differing only by case are the same environment."""
    return VARIABLE_PREFIX + validate_name(name).lower()


# ------------------------------------------------------------------ TTLs, durations

KEEP_HINT = "`prefect-stacks env keep <name>` makes an environment never expire"
DURATION_EXAMPLES = "3600 (seconds), 90m, 2h, 1d or 1h30m"


def validate_ttl(ttl_seconds: float, given: Any = None) -> timedelta:
    """``ttl_seconds`` as a TTL; errors show ``given`` (what the user wrote) if set."""
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, (int, float))
        or not ttl_seconds > 0
    ):
        raise ConfigurationError(
            f"TTL must be a positive number of seconds or a duration such as "
            f"{DURATION_EXAMPLES}; got {ttl_seconds if given is None else given!r}. "
            f"({KEEP_HINT}.)"
        )
    if ttl_seconds > MAX_TTL.total_seconds():
        raise ConfigurationError(
            f"TTL {format_duration(timedelta(seconds=ttl_seconds))} is longer than the "
            f"{MAX_TTL.days}-day maximum; {KEEP_HINT}."
        )
    return timedelta(seconds=ttl_seconds)


def parse_ttl(value: float | str) -> timedelta:
    """A TTL as a flow parameter or `env extend` takes it: seconds (a number, or digits)
    or a duration (``90m``, ``2h``, ``1d``, ``1h30m``)."""
    if isinstance(value, str):
        return validate_ttl(parse_duration(value), given=value)
    return validate_ttl(value)


def parse_duration(text: str) -> float:
    """``90`` (seconds), ``30s``, ``15m``, ``2h``, ``1d``, ``1h30m``."""
    text = str(text).strip().lower()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigurationError(f"{text!r} is not a duration; use e.g. 3600, 30m, 2h, 1d or 1h30m")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(sum(int(n) * unit[u] for n, u in parts))


# Types for flow parameters that read well in the Prefect UI's run form and are checked
# by the server when a run is created (a deployment enforces its parameter schema).

# The server checks a string against this before the run exists; parse_duration is the
# authority (it also refuses 0 and more than MAX_TTL, with a message).
_DURATION_PATTERN = r"^\s*([0-9]+(\.[0-9]+)?|([0-9]+[smhdSMHD])+)\s*$"
TTL_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "title": "duration",
            "type": "string",
            "pattern": _DURATION_PATTERN,
            "examples": ["90m", "2h", "1d"],
        },
        {
            "title": "seconds",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_TTL.total_seconds(),
        },
    ]
}
TTL = Annotated[int | float | str, WithJsonSchema(TTL_SCHEMA)]


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "never"
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{seconds}s"
    elif seconds < 3600:
        text = f"{seconds // 60}m{seconds % 60:02d}s"
    elif seconds < 86400:
        text = f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    else:
        text = f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"
    return sign + text


def expiry_text(env: Environment, now: datetime | None = None) -> str:
    """The "expires in" of a listing: a destroyed or destroying environment has no
    expiry left (its TTL no longer means anything)."""
    now = now or utcnow()
    if env.state == EnvironmentState.destroyed:
        if env.destroyed_at is None:
            return "—"
        return f"destroyed {format_duration(now - env.destroyed_at)} ago"
    if env.state == EnvironmentState.destroying:
        return "— (being destroyed)"
    return format_duration(env.expires_in(now))
