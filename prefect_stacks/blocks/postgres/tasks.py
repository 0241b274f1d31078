"""The database jobs' steps as tasks (house rule 2: the block is the hook, these are the
operators): dump, verify, store, prune; restore into a scratch copy, convert, check and
apply the masking rules, replace the target; count rows."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.filesystems import LocalFileSystem, RemoteFileSystem

from prefect_stacks.blocks.base import find_block, load_block
from prefect_stacks.blocks.postgres.backups import (
    BackupStorage,
    backup_dir,
    backup_name,
    expired,
)
from prefect_stacks.blocks.postgres.block import PostgresDatabase
from prefect_stacks.blocks.postgres.masking import MaskingRules
from prefect_stacks.exceptions import ConfigurationError, DatabaseError

MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def load_database(name: str, field: str = "database") -> PostgresDatabase:
    """The PostgresDatabase block ``name``; missing: a ConfigurationError naming ``field``."""
    if not name:
        raise ConfigurationError(f"{field}: give the name of a Postgres Database block")
    return load_block(
        PostgresDatabase,
        name,
        create=f"create it (Blocks > Postgres Database) or fix the {field} parameter",
    )


def load_backup_storage(name: str) -> BackupStorage:
    """The LocalFileSystem or RemoteFileSystem block ``name`` (``local-file-system/x`` or
    ``remote-file-system/x`` when both types have one of that name)."""
    kinds = {"local-file-system": LocalFileSystem, "remote-file-system": RemoteFileSystem}
    slug, _, bare = name.rpartition("/")
    if slug and slug not in kinds:
        raise ConfigurationError(
            f"storage={name!r}: the type must be local-file-system or remote-file-system"
        )
    candidates = [kinds[slug]] if slug else list(kinds.values())
    found = {cls.__name__: b for cls in candidates if (b := find_block(cls, bare)) is not None}
    if len(found) > 1:
        raise ConfigurationError(
            f"storage={name!r}: both a LocalFileSystem and a RemoteFileSystem block have that "
            f"name; write local-file-system/{bare} or remote-file-system/{bare}"
        )
    if not found:
        raise ConfigurationError(
            f"storage={name!r}: no LocalFileSystem or RemoteFileSystem block of that name; "
            "create one (Blocks > Local File System / Remote File System) or fix storage"
        )
    return BackupStorage.of(next(iter(found.values())), name)


def identifier(base: str, suffix: str) -> str:
    """``<base><suffix>`` cut to PostgreSQL's 63 bytes (the base is cut, not the suffix)."""
    room = MAX_IDENTIFIER - len(suffix.encode())
    cut = base.encode()[:room].decode(errors="ignore")
    return cut + suffix


# ------------------------------------------------------------ backups
@task(cache_policy=NO_CACHE, task_run_name="pg-dump-{db.database}")
def dump_database(db: PostgresDatabase, directory: Path) -> Path:
    """``pg_dump -Fc`` into a file in ``directory`` (a temporary one: nothing goes to the
    backup storage before the dump is complete and verified)."""
    path = Path(directory) / f"{db.database}.dump"
    try:
        return db.get_client().dump(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@task(cache_policy=NO_CACHE, task_run_name="pg-restore-list")
def verify_dump(db: PostgresDatabase, path: Path, tables: list[str]) -> int:
    """Read the dump's table of contents (``pg_restore --list``): it must be a complete
    archive with the data of every table in ``tables``. Returns its number of entries."""
    entries = db.get_client().list_archive(path)
    with_data = set()
    for line in entries:  # "3345; 0 16390 TABLE DATA public customers owner"
        if " TABLE DATA " in line:
            schema, *name, _owner = line.split(" TABLE DATA ", 1)[1].split(" ")
            with_data.add(f"{schema}.{' '.join(name)}")
    missing = [t for t in tables if t not in with_data]
    if missing:
        raise DatabaseError(
            f"the dump of {db.label} has no data for {', '.join(missing)}: not stored. "
            "Run again; if it recurs, check pg_dump's output in the logs"
        )
    return len(entries)


@task(cache_policy=NO_CACHE, task_run_name="count-rows")
def count_rows(db: PostgresDatabase, database: str = "") -> dict[str, int]:
    """Exact row count of every table of ``database`` (default: the block's)."""
    return db.get_client().row_counts(database or None)


@task(cache_policy=NO_CACHE, task_run_name="store-backup")
def store_backup(
    storage: BackupStorage, local: Path, prefix: str, database: str, at: datetime
) -> str:
    """Copy the verified dump to ``<prefix>/<database>/<database>-<time>.dump`` on the
    storage; returns that path (relative to the storage's base path)."""
    path = f"{backup_dir(prefix, database)}/{backup_name(database, at)}"
    url = storage.put(Path(local), path)
    get_run_logger().info("backup stored: %s (%d bytes)", url, storage.size(path))
    return path


@task(cache_policy=NO_CACHE, task_run_name="prune-backups")
def prune_backups(
    storage: BackupStorage,
    prefix: str,
    database: str,
    *,
    keep_count: int,
    keep_days: int,
    keep: str,
) -> list[str]:
    """Delete the backups of ``database`` that retention no longer keeps (never ``keep``,
    the one just made); returns their names."""
    directory = backup_dir(prefix, database)
    doomed = expired(
        storage.list(directory),
        database,
        keep_count=keep_count,
        keep_days=keep_days,
        now=datetime.now(timezone.utc),
        keep=keep.rsplit("/", 1)[-1],
    )
    for name in doomed:
        storage.delete(f"{directory}/{name}")
        get_run_logger().info("retention: deleted %s/%s", directory, name)
    return doomed


# ------------------------------------------------------------ copies
@contextmanager
def scratch_database(db: PostgresDatabase, name: str) -> Iterator[str]:
    """A new empty database ``name`` on ``db``'s server, dropped when the block ends
    unless it was renamed away (see :func:`replace_database`). A failure inside says
    that the scratch copy was dropped and the target left as it was."""
    client = db.get_client()
    client.create_database(name)
    logger = get_run_logger()
    try:
        yield name
    except BaseException as exc:
        dropped = _drop_quietly(db, name)
        logger.warning("%s; %s was left as it was", dropped, db.label)
        if isinstance(exc, DatabaseError):
            raise DatabaseError(f"{exc}\n{dropped}; {db.label} was left as it was") from exc
        raise
    else:
        if client.database_exists(name):
            logger.info("%s", _drop_quietly(db, name))


def _drop_quietly(db: PostgresDatabase, name: str) -> str:
    try:
        db.get_client().drop_database(name)
    except DatabaseError as exc:
        return f"the scratch database {name} could NOT be dropped ({exc}): drop it by hand"
    return f"the scratch database {name} was dropped"


@task(cache_policy=NO_CACHE, task_run_name="pg-restore-{database}")
def restore_dump(db: PostgresDatabase, path: Path, database: str) -> None:
    """Restore a dump into the (empty) ``database`` on ``db``'s server."""
    db.get_client().restore(Path(path), database)


@task(cache_policy=NO_CACHE, task_run_name="conversion-sql-{database}")
def run_sql_files(db: PostgresDatabase, database: str, files: list[str]) -> None:
    """Run each SQL file in ``database``, each in one transaction, stopping at an error."""
    client = db.get_client()
    for file in files:
        path = Path(file)
        client.psql(path.read_text(), what=f"conversion SQL {path.name}", database=database)
        get_run_logger().info("conversion: ran %s", path)


@task(cache_policy=NO_CACHE, task_run_name="check-masking-{database}")
def check_masking(db: PostgresDatabase, database: str, rules: MaskingRules) -> None:
    """Refuse (DatabaseError naming each table.column) when a column of a personal-data
    table has no rule, or a rule names something the copy does not have."""
    rules.check(db.get_client().columns(database))


@task(cache_policy=NO_CACHE, task_run_name="mask-{database}")
def mask_database(db: PostgresDatabase, database: str, rules: MaskingRules) -> int:
    """Apply the masking rules in ``database`` in one transaction (a per-copy random salt
    for hash and email); returns the number of UPDATE statements."""
    client = db.get_client()
    statements = rules.sql(client.columns(database), salt=secrets.token_hex(16))
    if statements:
        client.psql("\n".join(statements), what="masking", database=database, stream=False)
    return len(statements)


@task(cache_policy=NO_CACHE, task_run_name="replace-{target}")
def replace_database(db: PostgresDatabase, scratch: str, target: str, run_id: str) -> str:
    """Put ``scratch`` in the place of ``target`` (one transaction: both renames or
    neither), then drop the old target. Returns what happened, in words."""
    old = identifier(target, f"_old_{run_id}")
    client = db.get_client()
    existed = client.swap_databases(scratch, target, old)
    if not existed:
        return f"{target} created from the copy"
    try:
        client.drop_database(old)
    except DatabaseError as exc:
        get_run_logger().warning("the old %s is kept as %s: %s", target, old, exc)
        return f"{target} replaced; the old one is kept as {old} (could not drop it: drop it)"
    return f"{target} replaced (the old one dropped)"


# ------------------------------------------------------------ a deploy's backup
@task(cache_policy=NO_CACHE, task_run_name="back-up-{db.database}")
def back_up(db: PostgresDatabase, storage: BackupStorage, prefix: str) -> str:
    """Dump, verify and store the database, as database-backup does (no retention);
    returns the stored path, for :func:`restore_backup`."""
    import tempfile
    from datetime import datetime, timezone

    with tempfile.TemporaryDirectory(prefix="prefect-stacks-dump-") as tmp:
        dump = dump_database.fn(db, Path(tmp))
        verify_dump.fn(db, dump, list(count_rows.fn(db)))
        return store_backup.fn(storage, dump, prefix, db.database, datetime.now(timezone.utc))


@task(cache_policy=NO_CACHE, task_run_name="restore-{db.database}")
def restore_backup(db: PostgresDatabase, storage: BackupStorage, path: str, run_id: str) -> str:
    """Put the database back as the backup ``path`` has it: restored into a scratch
    database, which then takes the database's place in one transaction (never half
    restored). Returns what happened, in words."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="prefect-stacks-restore-") as tmp:
        local = storage.get(path, Path(tmp) / "backup.dump")
        with scratch_database(db, identifier(db.database, f"_restore_{run_id}")) as scratch:
            restore_dump.fn(db, local, scratch)
            return replace_database.fn(db, scratch, db.database, run_id)
