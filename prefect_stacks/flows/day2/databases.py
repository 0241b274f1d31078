"""``database-backup`` and ``database-copy``: one-click PostgreSQL jobs.

database-backup: ``pg_dump -Fc`` to a temporary file → ``pg_restore --list`` proves it is
a whole archive with every table's data → stored on a LocalFileSystem/RemoteFileSystem
block as ``<prefix>/<database>/<database>-<UTC time>.dump`` (under a ``.partial`` name
until complete) → retention by count and age → artifact and Slack.

database-copy (prod → staging): dump the source → restore into a scratch database
``<target>_copy_<id>`` on the target's server → conversion SQL files → every column of a
personal-data table must have a masking rule, else refuse (before the target is touched)
→ masking → approval when the target is protected → the scratch copy takes the target's
place in one transaction → row counts checked. On any failure the scratch database is
dropped and the target is as it was; the message says so.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import State

from prefect_stacks._internal.failures import fails_cleanly
from prefect_stacks._internal.parameters import NO_VARIABLES, Variables
from prefect_stacks._internal.prefect_api import current_flow_run_url
from prefect_stacks.approvals import refusal, request_approval
from prefect_stacks.blocks.postgres import (
    MaskingRules,
    PostgresDatabase,
    check_masking,
    count_rows,
    dump_database,
    identifier,
    load_backup_storage,
    load_database,
    mask_database,
    prune_backups,
    replace_database,
    restore_dump,
    run_sql_files,
    scratch_database,
    store_backup,
    verify_dump,
)
from prefect_stacks.blocks.slack import SlackChannel, slack_channel
from prefect_stacks.blocks.terraform import PlanSummary, ResourceChange, artifact_key
from prefect_stacks.exceptions import ConfigurationError, DatabaseError

__all__ = ["database_backup", "database_copy"]


def _tell(channel: SlackChannel | None, text: str) -> None:
    if channel is not None:
        channel.post_or_warn(text)


def _counts_table(counts: dict[str, int]) -> str:
    rows = "\n".join(f"| `{t}` | {n} |" for t, n in counts.items()) or "| (no tables) | |"
    return "| table | rows |\n|---|---:|\n" + rows


def _run_id() -> str:
    return (flow_run.id or uuid.uuid4().hex).replace("-", "")[:8]


@flow(name="database-backup", flow_run_name="database-backup-{database}", log_prints=True)
@fails_cleanly
def database_backup(
    database: str,
    storage: str,
    prefix: str = "backups",
    keep_count: int = 7,
    keep_days: int = 30,
    slack: str = "",
) -> dict[str, object]:
    """Back up a PostgreSQL database (pg_dump -Fc), verified, to a file-system block, and
    keep only the newest backups.

    Args:
        database: Name of the Postgres Database block to back up.
        storage: Name of the Local File System or Remote File System block to store to.
        prefix: Folder in the storage; backups go to <prefix>/<database>/.
        keep_count: Keep at most this many backups of the database (0: no limit).
        keep_days: Delete backups older than this many days (0: no limit).
        slack: Name of a Slack Channel block told about the outcome; empty: none.
    """
    if keep_count < 0 or keep_days < 0:
        raise ConfigurationError("keep_count and keep_days: 0 (no limit) or more")
    db = load_database(database)
    store = load_backup_storage(storage)
    channel = slack_channel(slack)
    try:
        at = datetime.now(timezone.utc)
        with tempfile.TemporaryDirectory(prefix="prefect-stacks-dump-") as tmp:
            dump = dump_database(db, Path(tmp))
            counts = count_rows(db)
            entries = verify_dump(db, dump, list(counts))
            path = store_backup(store, dump, prefix, db.database, at)
        deleted = prune_backups(
            store, prefix, db.database, keep_count=keep_count, keep_days=keep_days, keep=path
        )
    except DatabaseError as exc:
        _tell(channel, f":x: *backup of {db.label} failed*: {exc}\nNothing was stored.")
        raise DatabaseError(f"{exc}\nNothing was stored on {store.label}.") from exc
    size = store.size(path)
    create_markdown_artifact(
        key=artifact_key("database-backup", db.database),
        markdown=(
            f"### Backup of `{db.label}`\n\n| file | size | archive entries |\n|---|---:|---:|\n"
            f"| `{store.url(path)}` | {size} bytes | {entries} |\n\n{_counts_table(counts)}\n\n"
            "Retention deleted: "
            + (", ".join(f"`{d}`" for d in deleted) or "nothing")
            + f" (keep_count={keep_count}, keep_days={keep_days})"
        ),
        description=f"backup of {db.database}: {path}",
    )
    message = f"backed up {db.label} to {store.url(path)} ({size} bytes, {len(counts)} tables)"
    get_run_logger().info("%s", message)
    _tell(
        channel,
        f":floppy_disk: {message}" + (f"; retention deleted {len(deleted)}" if deleted else ""),
    )
    return {"path": path, "url": store.url(path), "size": size, "rows": counts, "deleted": deleted}


def _rules(masking: dict, masking_file: str, personal_data: list[str]) -> MaskingRules:
    rules = MaskingRules.parse(masking, personal_data)
    if masking_file:
        rules = MaskingRules.from_file(masking_file).merged(rules)
    return rules


def _sql_files(files: list[str]) -> list[str]:
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ConfigurationError(f"conversion_sql: no such file {', '.join(missing)}")
    return files


def _approval(
    src: PostgresDatabase, dst: PostgresDatabase, target: str, counts: dict, rules, timeout
):
    """Ask the approval gate; None when approved, else (state, message)."""
    plan = PlanSummary(
        stack=target,
        workspace=dst.database,
        add=1,
        destroy=1,
        resources=[
            ResourceChange(address=f"database.{dst.database}", actions=["delete", "create"])
        ],
    )
    masked = "\n".join(f"| `{c}` | {r} |" for c, r in rules.summary()) or "| (none) | |"
    details = (
        f"### Replace protected database `{dst.label}` with a copy of `{src.label}`\n\n"
        f"The copy is ready (masked) as a scratch database; approving replaces "
        f"`{dst.database}` by it, rejecting drops it.\n\n{_counts_table(counts)}\n\n"
        f"| column | rule |\n|---|---|\n{masked}"
    )
    decided = request_approval(plan, timeout, details=details)
    return refusal(decided, plan, timeout, rerun="database-copy")


@flow(
    name="database-copy",
    flow_run_name="database-copy-{source}-to-{target}",
    log_prints=True,
)
@fails_cleanly
def database_copy(
    source: str,
    target: str,
    masking: Variables = NO_VARIABLES,
    masking_file: str = "",
    personal_data: list[str] | None = None,
    conversion_sql: list[str] | None = None,
    approval_timeout: int = 86400,
    slack: str = "",
) -> dict[str, object] | State:
    """Copy a database (prod) into another (staging), converted and masked; the target
    is replaced in one step or not at all.

    Args:
        source: Name of the Postgres Database block to copy from (read only).
        target: Name of the Postgres Database block to replace (e.g. staging).
        masking: Masking rules: {"personal_data": [tables], "tables": {table: {column:
            rule}}}; rules: keep, null, hash, email, fixed:<value> (docs/day2.md).
        masking_file: A YAML file of masking rules on the worker (same form); merged
            with masking.
        personal_data: More tables in which every column must have a rule.
        conversion_sql: SQL files run in the copy before masking, in order.
        approval_timeout: Seconds to wait for an approval when the target is protected.
        slack: Name of a Slack Channel block told about the outcome; empty: none.
    """
    if not isinstance(approval_timeout, int) or approval_timeout <= 0:
        raise ConfigurationError(f"approval_timeout={approval_timeout!r}: seconds, above 0")
    src, dst = load_database(source, "source"), load_database(target, "target")
    if (src.host, src.port, src.database) == (dst.host, dst.port, dst.database):
        raise ConfigurationError(f"source and target are the same database ({src.label})")
    rules = _rules(masking, masking_file, personal_data or [])
    files = _sql_files(conversion_sql or [])
    channel = slack_channel(slack)
    logger = get_run_logger()
    run_id = _run_id()
    where = f"{src.label} → {dst.label}"
    try:
        with tempfile.TemporaryDirectory(prefix="prefect-stacks-copy-") as tmp:
            dump = dump_database(src, Path(tmp))
            verify_dump(src, dump, [])
            with scratch_database(dst, identifier(dst.database, f"_copy_{run_id}")) as scratch:
                restore_dump(dst, dump, scratch)
                run_sql_files(dst, scratch, files)
                check_masking(dst, scratch, rules)
                mask_database(dst, scratch, rules)
                counts = count_rows(dst, scratch)
                if dst.protected:
                    _tell(
                        channel,
                        f":lock: copy {where} waiting for approval {current_flow_run_url() or ''}",
                    )
                    refused = _approval(src, dst, target, counts, rules, approval_timeout)
                    if refused:
                        state, message = refused
                        message += f"; the scratch copy {scratch} is dropped"
                        logger.warning("%s", message)
                        _tell(channel, f":no_entry: copy {where} not done: {message}")
                        return state(message=message)
                replaced = replace_database(dst, scratch, dst.database, run_id)
    except DatabaseError as exc:
        text = str(exc)
        if "left as it was" not in text:
            text += f"\n{dst.label} was not touched"
        _tell(channel, f":x: *copy {where} failed*: {text}")
        raise DatabaseError(text) from exc
    now = count_rows(dst)
    if now != counts:
        text = (
            f"{replaced}, but its row counts differ from the copy's (someone wrote to it "
            f"meanwhile?): copy {counts}, now {now}"
        )
        _tell(channel, f":warning: copy {where}: {text}")
        raise DatabaseError(text)
    create_markdown_artifact(
        key=artifact_key("database-copy", dst.database),
        markdown=(
            f"### Copy `{src.label}` → `{dst.label}`\n\n{replaced}.\n\n{_counts_table(now)}\n\n"
            "| column | rule |\n|---|---|\n"
            + ("\n".join(f"| `{c}` | {r} |" for c, r in rules.summary()) or "| (none) | |")
            + ("\n\nConversion SQL: " + ", ".join(f"`{f}`" for f in files) if files else "")
        ),
        description=f"copy of {src.database} into {dst.database}",
    )
    message = f"copied {where}: {replaced}; {len(now)} tables, row counts checked"
    logger.info("%s", message)
    _tell(channel, f":white_check_mark: {message}")
    return {"target": dst.database, "rows": now, "replaced": replaced}
