"""The ``PostgresDatabase`` block (one database on a PostgreSQL server, and who connects
to it) and :class:`PostgresClient`, which runs ``pg_dump``, ``pg_restore`` and ``psql``
through the one subprocess helper.

The password reaches the child only as ``PGPASSWORD`` in its environment, and the host,
port, user, database and sslmode as ``PGHOST`` ... ``PGSSLMODE``: argv holds options and
file paths, never a credential (the helper refuses a secret found in argv, and masks it
in every line it logs). SQL goes to ``psql`` on stdin, so neither a masking value nor a
query shows up in ``ps``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from prefect_stacks._internal.process import ProcessResult, run_process
from prefect_stacks.blocks.base import StacksBlock
from prefect_stacks.exceptions import DatabaseError

SSLMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
TOOLS = ("pg_dump", "pg_restore", "psql")
_PG_LIB = Path("/usr/lib/postgresql")


def quote_ident(name: str) -> str:
    """An SQL identifier, double-quoted (``"a""b"``)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """An SQL string literal (``'it''s'``); the session sets standard_conforming_strings."""
    return "'" + value.replace("'", "''") + "'"


def qualified(table: str) -> str:
    """``schema.table`` as a quoted SQL name (``"public"."t"``)."""
    schema, _, name = table.partition(".")
    return f"{quote_ident(schema)}.{quote_ident(name)}"


class PostgresDatabase(StacksBlock):
    """A PostgreSQL database that prefect-stacks backs up or copies (pg_dump, pg_restore,
    psql), and the role it connects as.

    Example:
        ```python
        from prefect_stacks.blocks.postgres import PostgresDatabase

        db = PostgresDatabase.load("BLOCK_NAME")
        print(db.get_client().row_counts())
        ```
    """

    _block_type_name = "Postgres Database"
    _block_type_slug = "postgres-database"
    _logo_url = "https://www.postgresql.org/media/img/about/press/elephant.png"
    _documentation_url = "https://www.postgresql.org/docs/current/app-pgdump.html"
    _description = "A PostgreSQL database to back up (pg_dump) or copy into staging, masked."

    host: str = Field(default=..., description="Server host name or address, e.g. `db.internal`.")
    port: int = Field(default=5432, ge=1, le=65535, description="Server port.")
    database: str = Field(default=..., description="Name of the database.")
    user: str = Field(default="postgres", description="Role to connect as.")
    password: SecretStr | None = Field(
        default=None,
        description="Password of the role; passed to pg_dump/psql as PGPASSWORD, never in "
        "argv. Empty: none (trust, peer or a ~/.pgpass of the worker).",
    )
    sslmode: SSLMode = Field(default="prefer", description="libpq sslmode of every connection.")
    protected: bool = Field(
        default=False,
        description="A production database: copies into it need an approval.",
    )
    maintenance_database: str = Field(
        default="postgres",
        description="Database to connect to when creating, renaming or dropping databases.",
    )
    bin_dir: str = Field(
        default="",
        description="Directory of pg_dump, pg_restore and psql (e.g. "
        "`/usr/lib/postgresql/16/bin`; pg_dump must be as new as the server). Empty: the "
        "PATH, else the newest /usr/lib/postgresql/*/bin.",
    )

    @field_validator("host", "database", "user", "maintenance_database")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @property
    def label(self) -> str:
        """``database@host:port``, for messages."""
        return f"{self.database}@{self.host}:{self.port}"

    def get_client(self) -> PostgresClient:
        return PostgresClient(self)


def find_tool(name: str, bin_dir: str = "") -> str:
    """Path of a PostgreSQL client program; DatabaseError naming ``bin_dir`` if missing."""
    if bin_dir:
        path = Path(bin_dir) / name
        if path.is_file():
            return str(path)
        raise DatabaseError(f"{name} not found in {bin_dir}: fix the block's bin_dir")
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        (p for p in _PG_LIB.glob("*/bin") if (p / name).is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return str(versions[-1] / name)
    raise DatabaseError(
        f"{name} is not installed (PostgreSQL client programs): install postgresql-client, "
        "or set the block's bin_dir"
    )


def _conninfo_value(value: str) -> str:
    """A libpq conninfo value, quoted (a database name may hold spaces or ``=``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _hint(stderr: str) -> str:
    text = stderr.lower()
    for needle, hint in (
        ("password authentication failed", "check the block's user and password"),
        ("no password supplied", "set the block's password"),
        ("does not exist", "check the name (the block's database field, or the role)"),
        ("permission denied", "grant the block's user what it needs (pg_dump reads every table)"),
        ("server version mismatch", "use a pg_dump as new as the server: set bin_dir"),
        ("could not connect", "check the block's host and port, and that the server runs"),
        ("connection refused", "check the block's host and port, and that the server runs"),
        ("could not translate host name", "check the block's host"),
        ("ssl", "check the block's sslmode"),
    ):
        if needle in text:
            return hint
    return ""


class PostgresClient:
    """Runs the PostgreSQL client programs for one block. ``database`` arguments name
    another database on the same server (a scratch copy); default: the block's."""

    def __init__(self, block: PostgresDatabase) -> None:
        self.block = block
        self._password = block.password.get_secret_value() if block.password else ""

    # ------------------------------------------------------------ running
    def env(self, database: str | None = None) -> dict[str, str]:
        env = {
            "PGHOST": self.block.host,
            "PGPORT": str(self.block.port),
            "PGUSER": self.block.user,
            "PGDATABASE": database or self.block.database,
            "PGSSLMODE": self.block.sslmode,
            "PGAPPNAME": "prefect-stacks",
            "PGCONNECT_TIMEOUT": "10",
        }
        if self._password:
            env["PGPASSWORD"] = self._password
        return env

    def run(
        self,
        tool: str,
        args: list[str],
        *,
        what: str,
        database: str | None = None,
        stdin: str | None = None,
        stream: bool = True,
        timeout: float | None = None,
    ) -> ProcessResult:
        """Run ``tool`` with ``args``; a non-zero exit is a DatabaseError saying ``what``
        failed on which database, the tool's last lines and what to fix."""
        result = run_process(
            [find_tool(tool, self.block.bin_dir), *args],
            env=self.env(database),
            secrets=[self._password] if self._password else [],
            stdin_data=stdin.encode() if stdin is not None else None,
            stream=stream,
            prefix=f"{tool}: ",
            timeout=timeout,
        )
        if result.returncode != 0:
            tail = result.stderr_tail(8)
            hint = _hint(tail)
            where = f"{database or self.block.database}@{self.block.host}:{self.block.port}"
            raise DatabaseError(
                f"{what} failed on {where} ({tool} exit code {result.returncode})"
                + (f": {tail}" if tail else "")
                + (f"\nto fix: {hint}" if hint else "")
            )
        return result

    def psql(self, sql: str, *, what: str, database: str | None = None, **kw: Any) -> str:
        """Run SQL (on stdin, stopping at the first error, in one transaction unless
        ``single_transaction=False``); its output."""
        single = kw.pop("single_transaction", True)
        args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        if single:
            args.append("--single-transaction")
        body = "SET standard_conforming_strings = on;\n" + sql
        result = self.run(
            "psql", [*args, "-f", "-"], what=what, database=database, stdin=body, **kw
        )
        return result.stdout

    def query(self, sql: str, *, what: str, database: str | None = None) -> list[dict[str, Any]]:
        """The rows of a SELECT, as dicts (read through json_agg)."""
        wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) AS q;"
        out = self.psql(wrapped, what=what, database=database, stream=False)
        return json.loads(out.strip() or "[]")

    # ------------------------------------------------------------ dumps
    def dump(self, path: Path, *, database: str | None = None) -> Path:
        """``pg_dump -Fc`` of the database into ``path``."""
        self.run(
            "pg_dump",
            ["--format=custom", "--no-password", f"--file={path}"],
            what=f"pg_dump of {database or self.block.database}",
            database=database,
        )
        return path

    def list_archive(self, path: Path) -> list[str]:
        """The table of contents of a custom-format dump (``pg_restore --list``)."""
        out = self.run(
            "pg_restore",
            ["--list", str(path)],
            what=f"reading the dump {path.name} (pg_restore --list)",
            stream=False,
        ).stdout
        return [line for line in out.splitlines() if line and not line.startswith(";")]

    def restore(self, path: Path, database: str) -> None:
        """Restore a custom-format dump into ``database`` (which must exist, empty), as
        the block's user: ownership and grants of the source are left out."""
        self.run(
            "pg_restore",
            [
                "--no-password",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                "--dbname=dbname=" + _conninfo_value(database),
                str(path),
            ],
            what=f"pg_restore of {path.name} into {database}",
            database=database,
        )

    # ------------------------------------------------------------ reading
    def tables(self, database: str | None = None) -> list[str]:
        """``schema.table`` of every table that holds rows (partitions, not their
        partitioned parents) outside the system schemas."""
        rows = self.query(
            "SELECT n.nspname || '.' || c.relname AS t FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
            what="listing tables",
            database=database,
        )
        return [r["t"] for r in rows]

    def columns(self, database: str | None = None) -> dict[str, dict[str, str]]:
        """``{schema.table: {column: type}}`` of every table, in column order."""
        rows = self.query(
            "SELECT n.nspname || '.' || c.relname AS t, a.attname AS c, "
            "format_type(a.atttypid, a.atttypmod) AS ty FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT "
            "a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, a.attnum",
            what="listing columns",
            database=database,
        )
        found: dict[str, dict[str, str]] = {}
        for r in rows:
            found.setdefault(r["t"], {})[r["c"]] = r["ty"]
        return found

    def row_counts(self, database: str | None = None) -> dict[str, int]:
        """Exact row count of every table (one snapshot)."""
        tables = self.tables(database)
        if not tables:
            return {}
        sql = " UNION ALL ".join(
            f"SELECT {quote_literal(t)} AS t, count(*) AS n FROM {qualified(t)}" for t in tables
        )
        rows = self.query(sql, what="counting rows", database=database)
        return {r["t"]: int(r["n"]) for r in sorted(rows, key=lambda r: r["t"])}

    # ------------------------------------------------------------ databases
    def _admin(self, sql: str, what: str, **kw: Any) -> str:
        return self.psql(
            sql, what=what, database=self.block.maintenance_database, stream=False, **kw
        )

    def database_exists(self, name: str) -> bool:
        rows = self.query(
            f"SELECT 1 AS x FROM pg_database WHERE datname = {quote_literal(name)}",
            what=f"looking for database {name}",
            database=self.block.maintenance_database,
        )
        return bool(rows)

    def create_database(self, name: str) -> None:
        self._admin(
            f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0;",
            f"creating database {name}",
            single_transaction=False,
        )

    def drop_database(self, name: str) -> None:
        """Drop ``name`` with its connections; "already gone" is success."""
        self._admin(
            f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);",
            f"dropping database {name}",
            single_transaction=False,
        )

    def swap_databases(self, incoming: str, target: str, old: str) -> bool:
        """Put ``incoming`` in the place of ``target``: new connections to ``target`` are
        refused and those open ended, then, in one transaction, ``target`` (when it
        exists) is renamed ``old`` and ``incoming`` renamed ``target``: both or neither.
        Returns whether there was a ``target`` (now ``old``)."""
        existed = self.database_exists(target)
        t, lt = quote_ident(target), quote_literal(target)
        swap = f"ALTER DATABASE {quote_ident(incoming)} RENAME TO {t};"
        if not existed:
            self._admin(swap, f"renaming {incoming} to {target}")
            return False
        self._admin(
            f"ALTER DATABASE {t} ALLOW_CONNECTIONS false;",
            f"closing {target} to new connections",
            single_transaction=False,
        )
        try:
            self._admin(
                "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                f"WHERE datname = {lt} AND pid <> pg_backend_pid();",
                f"ending the connections to {target}",
            )
            self._admin(
                f"ALTER DATABASE {t} RENAME TO {quote_ident(old)};\n{swap}",
                f"replacing database {target} by {incoming}",
            )
        except BaseException as exc:
            try:
                self._admin(
                    f"ALTER DATABASE {t} ALLOW_CONNECTIONS true;",
                    f"opening {target} to connections again",
                    single_transaction=False,
                )
            except DatabaseError as reopen:
                raise DatabaseError(
                    f"{exc}\n{target} is unchanged but still closed to new connections "
                    f"({reopen}): run ALTER DATABASE {t} ALLOW_CONNECTIONS true"
                ) from exc
            raise
        return True
