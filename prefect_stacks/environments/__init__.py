"""Environments: the ledger of every environment (``demo-7f3a``, ``PR_42``, ...) on the
Prefect server, and its lifecycle protocol.

* :mod:`.models`: the ledger entry (:class:`Environment`), names, TTLs and durations;
* :mod:`.locks`: striped, leased global-concurrency-limit locks;
* :mod:`.ledger`: :class:`EnvironmentLedger`, reading and writing entries under a lock;
* :mod:`.lifecycle`: the scheduled teardown (schedule, extend, keep, destroy), the
  deploy claim (start/finish), and what a teardown checks before it acts;
* :mod:`.teardown`: the teardown itself, a claim on the entry; :mod:`.janitor`: what the
  janitor finds to do;
* :mod:`.messages`: events, Slack (layout and the notify task) and the ``environments``
  table;
* :mod:`.deploy_steps` and :mod:`.pull_requests`: the steps of a deploy and a pull
  request's environment ``PR_<n>``.

This package re-exports the ledger and lifecycle names that callers use
(``from prefect_stacks import environments as envs``; ``envs.extend(...)``).
"""

from __future__ import annotations

from prefect_stacks.environments.ledger import EnvironmentLedger, live_names_hint
from prefect_stacks.environments.lifecycle import (
    DEFAULT_STALE_AFTER,
    TEARDOWN_CREATE_SECONDS,
    TEARDOWN_DEPLOYMENT,
    cancel_scheduled_run,
    check_teardown_deployment,
    destroy,
    extend,
    finish_deploy,
    keep,
    postpone_delay,
    provisioning_in_progress,
    record_teardown,
    retry_delay,
    schedule_teardown,
    start_deploy,
    teardown_in_progress,
)
from prefect_stacks.environments.locks import (
    LOCK_LEASE_SECONDS,
    LOCK_POLL_FIRST_SECONDS,
    LOCK_POLL_MAX_SECONDS,
    LOCK_PREFIX,
    LOCK_RENEW_SECONDS,
    LOCK_STRIPES,
    LOCK_TIMEOUT_SECONDS,
    LimitBusy,
    acquire_lease,
    hold_limit,
    lock_name,
)
from prefect_stacks.environments.models import (
    DURATION_EXAMPLES,
    KEEP_HINT,
    LEDGER_TAG,
    LIVE_STATES,
    MAX_TTL,
    TTL,
    TTL_SCHEMA,
    VARIABLE_PREFIX,
    Environment,
    EnvironmentState,
    PrefectObjects,
    expiry_text,
    format_duration,
    parse_duration,
    parse_ttl,
    utcnow,
    validate_name,
    validate_ttl,
    variable_name,
)

__all__ = [
    "DEFAULT_STALE_AFTER",
    "DURATION_EXAMPLES",
    "KEEP_HINT",
    "LEDGER_TAG",
    "LIVE_STATES",
    "LOCK_LEASE_SECONDS",
    "LOCK_POLL_FIRST_SECONDS",
    "LOCK_POLL_MAX_SECONDS",
    "LOCK_PREFIX",
    "LOCK_RENEW_SECONDS",
    "LOCK_STRIPES",
    "LOCK_TIMEOUT_SECONDS",
    "MAX_TTL",
    "TEARDOWN_CREATE_SECONDS",
    "TEARDOWN_DEPLOYMENT",
    "TTL",
    "TTL_SCHEMA",
    "VARIABLE_PREFIX",
    "Environment",
    "EnvironmentLedger",
    "EnvironmentState",
    "LimitBusy",
    "PrefectObjects",
    "acquire_lease",
    "cancel_scheduled_run",
    "check_teardown_deployment",
    "destroy",
    "expiry_text",
    "extend",
    "finish_deploy",
    "format_duration",
    "hold_limit",
    "keep",
    "live_names_hint",
    "lock_name",
    "parse_duration",
    "parse_ttl",
    "postpone_delay",
    "provisioning_in_progress",
    "record_teardown",
    "retry_delay",
    "schedule_teardown",
    "start_deploy",
    "teardown_in_progress",
    "utcnow",
    "validate_name",
    "validate_ttl",
    "variable_name",
]
