"""The environment ledger: every environment (``demo-7f3a``, ``PR_42``, ``staging`` ...)
is one entry, stored on the Prefect server as one Prefect Variable
(``stacks-env-<name>``, tagged ``prefect-stacks:environment``), so:

* nothing lives on a worker's disk;
* there is no size cliff: one entry is ~1 KB of a Variable's 5,000 characters, and a
  listing pages through the variables API (and checks the count, so a partial listing is an
  error, never "fewer environments");
* two writers are safe: every read-modify-write of an entry holds one of 16 striped
  Prefect global concurrency limits (:mod:`.locks`: limit 1, leased, so a killed holder
  frees it within ``LOCK_LEASE_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate

from prefect_stacks._internal.variables import PartialListing, tagged_variable_values
from prefect_stacks.environments import locks
from prefect_stacks.environments.locks import LimitBusy, ensure_limit, hold_limit, lock_name
from prefect_stacks.environments.models import (
    LEDGER_TAG,
    Environment,
    EnvironmentState,
    utcnow,
    validate_name,
    variable_name,
)
from prefect_stacks.exceptions import ConfigurationError, EnvironmentNotFound, LedgerError

T = TypeVar("T")


class EnvironmentLedger:
    """Read and write ledger entries on the Prefect server (the one in
    ``PREFECT_API_URL``). Safe to use from several processes at once."""

    def __init__(self, client: SyncPrefectClient | None = None) -> None:
        self._client = client

    @contextmanager
    def _session(self) -> Iterator[SyncPrefectClient]:
        if self._client is not None:
            yield self._client
            return
        with get_client(sync_client=True) as client:
            yield client

    # ------------------------------------------------------------------ locking
    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the ledger lock of ``name`` (shared with 1/16 of all names)."""
        lock = lock_name(name)
        timeout = locks.LOCK_TIMEOUT_SECONDS  # read at call time: tests shorten it
        with self._session() as client:
            try:
                ensure_limit(client, lock, "ledger writes")
            except ConfigurationError as exc:
                raise LedgerError(str(exc)) from None
        try:
            with hold_limit(lock, timeout):
                yield
        except LimitBusy as exc:
            raise LedgerError(
                f"could not lock the ledger entry of {name!r} within "
                f"{timeout}s (global concurrency limit {lock!r} is busy; "
                f"`prefect gcl inspect {lock}` shows its slots)"
            ) from exc

    # ------------------------------------------------------------------ reading
    def find(self, name: str) -> Environment | None:
        key = variable_name(name)  # bad input fails before any server call
        with self._session() as client:
            variable = client.read_variable_by_name(key)
        if variable is None:
            return None
        return Environment.model_validate(variable.value)

    def get(self, name: str) -> Environment:
        env = self.find(name)
        if env is None:
            raise EnvironmentNotFound(
                f"no environment named {name!r} in the ledger; "
                "`prefect-stacks env list --all` shows every known environment."
            )
        return env

    def list(self, include_destroyed: bool = False) -> list[Environment]:
        """Every entry, paged; raises LedgerError when the listing fails or comes back
        shorter than the server's count (a partial listing must never look like fewer
        environments)."""
        try:
            with self._session() as client:
                values = tagged_variable_values(client, LEDGER_TAG)
            entries = [Environment.model_validate(v) for v in values]
        except PartialListing as exc:
            raise LedgerError(
                f"the environment ledger listing is partial: {exc}; not acting on it"
            ) from exc
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise LedgerError(f"listing the environment ledger failed: {exc}") from exc
        if not include_destroyed:
            entries = [e for e in entries if e.is_live]
        return entries

    # ------------------------------------------------------------------ writing
    def _write(self, client: SyncPrefectClient, env: Environment, create: bool) -> None:
        value = env.model_dump(mode="json")
        name = variable_name(env.name)
        if create:
            client.create_variable(VariableCreate(name=name, value=value, tags=[LEDGER_TAG]))
        else:
            client.update_variable(VariableUpdate(name=name, value=value, tags=[LEDGER_TAG]))

    def create(self, env: Environment) -> Environment:
        """Record a new environment; an entry of the same name that is destroyed is
        replaced (the name is reused), a live one is an error."""
        validate_name(env.name)
        with self.lock(env.name), self._session() as client:
            existing = client.read_variable_by_name(variable_name(env.name))
            if existing is not None:
                old = Environment.model_validate(existing.value)
                if old.is_live:
                    raise ConfigurationError(
                        f"environment {env.name!r} already exists ({old.state.value}); "
                        "destroy it first or choose another name."
                    )
                client.delete_variable_by_name(variable_name(env.name))
            env.revision = 1
            self._write(client, env, create=True)
        return env

    def update(self, name: str, change: Callable[[Environment], T | None]) -> T | Environment:
        """Read-modify-write ``name`` under its lock: ``change`` edits the entry (it is
        written back whatever ``change`` returns).

        Returns what ``change`` returns, or the updated entry when ``change`` returns
        None; so a change that decides something (under the lock) hands its decision
        back, e.g. ``env, outcome = ledger.update(name, claim)`` with ``claim``
        returning ``(e, outcome)``."""
        with self.lock(name), self._session() as client:
            variable = client.read_variable_by_name(variable_name(name))
            if variable is None:
                raise EnvironmentNotFound(f"no environment named {name!r} in the ledger")
            env = Environment.model_validate(variable.value)
            result = change(env)
            env.revision += 1
            env.last_activity_at = utcnow()
            self._write(client, env, create=False)
        return env if result is None else result

    def remove(self, name: str) -> bool:
        """Delete a *destroyed* entry (retention pruning). A live entry is never removed:
        infrastructure may remain."""
        with self.lock(name), self._session() as client:
            variable = client.read_variable_by_name(variable_name(name))
            if variable is None:
                return False
            env = Environment.model_validate(variable.value)
            if env.state != EnvironmentState.destroyed:
                raise LedgerError(
                    f"refusing to remove {name!r}: it is {env.state.value}, not destroyed"
                )
            client.delete_variable_by_name(variable_name(name))
        return True


def live_names_hint(ledger: EnvironmentLedger | None = None) -> str:
    """``(live: a, b and 3 more)`` for an error about an unknown name; empty when the
    listing fails (it only decorates an error already being raised)."""
    try:
        names = sorted(e.name for e in (ledger or EnvironmentLedger()).list())
    except Exception:  # noqa: BLE001 - only decorates an error already being raised
        return ""
    if not names:
        return "(no environment is live)"
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"(live: {shown})"
