"""PostgreSQL: the ``PostgresDatabase`` block and its client (pg_dump, pg_restore, psql
through the one subprocess helper; the password only ever in the child's environment),
the backup storage and retention, the masking rules of copies into staging, and the tasks
the ``database-backup`` and ``database-copy`` flows are made of."""

from prefect_stacks.blocks.postgres.backups import (
    BackupStorage,
    backup_dir,
    backup_name,
    backup_time,
    expired,
)
from prefect_stacks.blocks.postgres.block import (
    PostgresClient,
    PostgresDatabase,
    qualified,
    quote_ident,
    quote_literal,
)
from prefect_stacks.blocks.postgres.masking import MaskingRules, Rule, parse_rule
from prefect_stacks.blocks.postgres.tasks import (
    back_up,
    check_masking,
    count_rows,
    dump_database,
    identifier,
    load_backup_storage,
    load_database,
    mask_database,
    prune_backups,
    replace_database,
    restore_backup,
    restore_dump,
    run_sql_files,
    scratch_database,
    store_backup,
    verify_dump,
)

__all__ = [
    "back_up",
    "restore_backup",
    "BackupStorage",
    "MaskingRules",
    "PostgresClient",
    "PostgresDatabase",
    "Rule",
    "backup_dir",
    "backup_name",
    "backup_time",
    "check_masking",
    "count_rows",
    "dump_database",
    "expired",
    "identifier",
    "load_backup_storage",
    "load_database",
    "mask_database",
    "parse_rule",
    "prune_backups",
    "qualified",
    "quote_ident",
    "quote_literal",
    "replace_database",
    "restore_dump",
    "run_sql_files",
    "scratch_database",
    "store_backup",
    "verify_dump",
]
