"""database-backup and database-copy against a real PostgreSQL 15 (pg_dump, pg_restore,
psql), in-process on a throwaway Prefect server: a backup restores into an empty database
with the same row counts, the password never in argv; retention by count and by age; a
dump that fails leaves nothing under the backup's name; a copy masks, converts and
replaces the target in one step; a personal-data column without a rule, or a failing
conversion, stops the copy before the target is touched, the scratch copy dropped; a
protected target waits for an approval."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prefect import get_client
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.flow_engine import flow_run_logger, run_flow
from prefect.flow_runs import resume_flow_run

import prefect_stacks.blocks.postgres.block as pg_block
from prefect_stacks.blocks.postgres import PostgresDatabase, backup_name
from prefect_stacks.blocks.slack import SlackChannel
from prefect_stacks.exceptions import DatabaseError
from prefect_stacks.flows.day2.databases import database_backup, database_copy
from tests.conftest import require_tool, wait_for
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.integration

PASSWORD = "pw-" + uuid.uuid4().hex
SLACK_TOKEN = "xoxb-db"


class Server:
    """The test server: psql as the superuser, and blocks for databases on it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432

    def psql(self, database: str, sql: str, user: str = "postgres") -> str:
        env = {**os.environ, "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": user}
        done = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def databases(self, like: str) -> list[str]:
        out = self.psql("postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{like}'")
        return sorted(out.split()) if out else []

    def create(self, name: str, sql: str = "") -> str:
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        if sql:
            self.psql(name, sql)
        return name

    def counts(self, database: str) -> dict[str, int]:
        return (
            PostgresDatabase(host=self.host, port=self.port, database=database, sslmode="disable")
            .get_client()
            .row_counts()
        )

    def block(self, database: str, **kw) -> str:
        name = f"db-{uuid.uuid4().hex[:8]}"
        PostgresDatabase(
            host=self.host,
            port=self.port,
            database=database,
            user=kw.pop("user", "postgres"),
            password=kw.pop("password", PASSWORD),
            sslmode="disable",
            **kw,
        ).save(name)
        return name


SHOP = """
CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE, name text NOT NULL,
                        phone text, tax_id varchar(12));
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     total numeric(10, 2));
CREATE TABLE settings (key text PRIMARY KEY, value text);
INSERT INTO customers (email, name, phone, tax_id)
  SELECT 'c' || i || '@shop.example', 'Customer ' || i, '+41 79 ' || i,
         CASE WHEN i % 2 = 0 THEN 'T' || i END
  FROM generate_series(1, 40) AS i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 40, i * 1.5 FROM generate_series(1, 125) i;
INSERT INTO settings VALUES ('env', 'production'), ('smtp', 'smtp.shop.example');
"""

RULES = {
    "personal_data": ["customers"],
    "tables": {
        "customers": {
            "id": "keep",
            "email": "email",
            "name": "fixed:Jane Doe",
            "phone": None,
            "tax_id": "hash",
        },
    },
}


@pytest.fixture(scope="module")
def server(postgres: str) -> Server:
    require_tool("psql")
    return Server(postgres)


@pytest.fixture
def shop(server: Server, prefect_harness) -> str:
    return server.create(f"shop_{uuid.uuid4().hex[:6]}", SHOP)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Every command the client ran: argv and the environment it added."""
    seen: list[dict] = []
    real = pg_block.run_process

    def recording(argv, **kw):
        seen.append({"argv": [str(a) for a in argv], "env": dict(kw.get("env") or {})})
        return real(argv, **kw)

    monkeypatch.setattr(pg_block, "run_process", recording)
    return seen


def local_storage(root: Path) -> str:
    name = f"fs-{uuid.uuid4().hex[:8]}"
    LocalFileSystem(basepath=str(root)).save(name)
    return name


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------ backups
def test_a_backup_restores_into_an_empty_database_with_the_same_row_counts(
    server: Server, shop: str, tmp_path: Path, calls: list[dict]
):
    root = tmp_path / "store"
    result = database_backup(database=server.block(shop), storage=local_storage(root))
    ran = list(calls)
    path = root / str(result["path"])
    assert path.is_file() and path.parent == root / "backups" / shop
    assert path.name.startswith(f"{shop}-") and path.name.endswith("Z.dump")
    assert files_under(root) == [str(path.relative_to(root))]  # no .partial left
    assert result["rows"] == {"public.customers": 40, "public.orders": 125, "public.settings": 2}

    empty = server.create(f"restored_{uuid.uuid4().hex[:6]}")
    subprocess.run(
        [
            "pg_restore",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "--exit-on-error",
            "-d",
            empty,
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    assert server.counts(empty) == server.counts(shop) == result["rows"]

    tools = [Path(c["argv"][0]).name for c in ran]
    assert {"pg_dump", "pg_restore", "psql"} <= set(tools)
    assert all(PASSWORD not in " ".join(c["argv"]) for c in ran)  # never in argv
    assert all(c["env"]["PGPASSWORD"] == PASSWORD for c in ran)  # the child's env only
    dump = next(c for c in ran if c["argv"][0].endswith("pg_dump"))
    assert "--format=custom" in dump["argv"]


def test_retention_keeps_the_newest_by_count_and_deletes_by_age(server: Server, shop: str):
    base = f"memory://backups-{uuid.uuid4().hex[:6]}"  # a RemoteFileSystem (fsspec)
    store = f"remote-{uuid.uuid4().hex[:6]}"
    RemoteFileSystem(basepath=base).save(store)
    fs = RemoteFileSystem(basepath=base).filesystem
    now = datetime.now(timezone.utc)
    older = {days: backup_name(shop, now - timedelta(days=days)) for days in (1, 2, 10, 40)}
    for name in [*older.values(), "README.txt", backup_name("other", now - timedelta(days=90))]:
        fs.pipe(f"{base}/daily/{shop}/{name}", b"x")

    result = database_backup(
        database=server.block(shop), storage=store, prefix="daily", keep_count=3, keep_days=30
    )
    left = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{base}/daily/{shop}", detail=False))
    just_made = str(result["path"]).rsplit("/", 1)[-1]
    assert left == sorted(
        [
            just_made,
            older[1],
            older[2],
            "README.txt",
            backup_name("other", now - timedelta(days=90)),
        ]
    )
    # 10 days: over the count (3); 40 days: over the age (30)
    assert result["deleted"] == [older[40], older[10]]

    # 0 and 0: no retention at all
    again = database_backup(
        database=server.block(shop), storage=store, prefix="daily", keep_count=0, keep_days=0
    )
    assert again["deleted"] == []


def test_a_dump_that_fails_says_what_to_fix_and_leaves_no_backup(
    server: Server, shop: str, tmp_path: Path, calls: list[dict]
):
    role = f"dumper_{uuid.uuid4().hex[:6]}"
    server.psql("postgres", f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    server.psql(
        shop,
        f"GRANT SELECT ON customers, orders, settings TO {role}; "
        "CREATE TABLE payroll (salary int); INSERT INTO payroll VALUES (1);",
    )
    root = tmp_path / "store"
    storage = local_storage(root)
    with pytest.raises(DatabaseError) as failed:
        database_backup(database=server.block(shop, user=role), storage=storage)
    message = str(failed.value)
    assert "permission denied for table payroll" in message
    assert f"pg_dump of {shop} failed" in message and "Nothing was stored" in message
    assert "grant the block's user" in message and PASSWORD not in message
    assert files_under(root) == []
    assert all(PASSWORD not in " ".join(c["argv"]) for c in calls)

    with pytest.raises(DatabaseError, match=r"(?s)does not exist.*database field"):
        database_backup(database=server.block("no_such_db"), storage=storage)
    assert files_under(root) == []


# ------------------------------------------------------------ copies
@pytest.fixture
def staging(server: Server, prefect_harness) -> str:
    return server.create(
        f"staging_{uuid.uuid4().hex[:6]}",
        "CREATE TABLE marker (note text); INSERT INTO marker VALUES ('the old staging');",
    )


def copy(server: Server, shop: str, staging: str, **kw):
    return database_copy(source=server.block(shop), target=server.block(staging), **kw)


def test_a_copy_is_converted_masked_and_replaces_the_target(
    server: Server, shop: str, staging: str, tmp_path: Path, calls: list[dict]
):
    convert = tmp_path / "staging.sql"
    convert.write_text("UPDATE settings SET value = 'staging' WHERE key = 'env';\n")
    with FakeSlack(tokens=[SLACK_TOKEN], channels=["ops"]) as slack:
        SlackChannel(bot_token=SLACK_TOKEN, channel="#ops", api_url=slack.api_url).save(
            channel := f"slack-{uuid.uuid4().hex[:6]}"
        )
        result = copy(
            server, shop, staging, masking=RULES, conversion_sql=[str(convert)], slack=channel
        )
        (told,) = [m.text for m in slack.messages]
    assert "row counts checked" in told and staging in told

    assert server.counts(staging) == server.counts(shop) == result["rows"]
    assert server.psql(staging, "SELECT count(*) FROM pg_tables WHERE tablename = 'marker'") == "0"
    rows = server.psql(
        staging,
        "SELECT id, email, name, coalesce(phone, '-'), coalesce(tax_id, '-') FROM customers"
        " ORDER BY id",
    )
    first, second = [r.split("|") for r in rows.splitlines()[:2]]
    assert first[0] == "1" and first[2] == "Jane Doe" and first[3] == "-" and first[4] == "-"
    assert first[1].startswith("user-") and first[1].endswith("@example.invalid")
    assert len(second[4]) == 12 and second[4] != "T2"  # hashed, cut to varchar(12)
    emails = server.psql(staging, "SELECT count(DISTINCT email) FROM customers")
    assert emails == "40"  # still unique
    assert "@shop.example" not in server.psql(
        staging, "SELECT string_agg(email, ',') FROM customers"
    )
    assert server.psql(staging, "SELECT value FROM settings WHERE key = 'env'") == "staging"
    assert server.psql(shop, "SELECT value FROM settings WHERE key = 'env'") == "production"
    assert server.psql(shop, "SELECT email FROM customers WHERE id = 1") == "c1@shop.example"
    assert server.databases(f"{staging}_%") == []  # neither scratch nor old left
    assert all(PASSWORD not in " ".join(c["argv"]) for c in calls)


def test_a_new_unmasked_column_stops_the_copy_before_the_target_is_touched(
    server: Server, shop: str, staging: str
):
    server.psql(shop, "ALTER TABLE customers ADD COLUMN birthday date")
    with pytest.raises(DatabaseError) as refused:
        copy(server, shop, staging, masking=RULES)
    message = str(refused.value)
    assert "public.customers.birthday has no masking rule" in message
    assert "was dropped" in message and "left as it was" in message
    assert server.psql(staging, "SELECT note FROM marker") == "the old staging"
    assert server.databases(f"{staging}_%") == []


def test_a_failing_conversion_drops_the_scratch_copy_and_says_so(
    server: Server, shop: str, staging: str, tmp_path: Path
):
    broken = tmp_path / "broken.sql"
    broken.write_text("UPDATE no_such_table SET x = 1;\n")
    with pytest.raises(DatabaseError) as failed:
        copy(server, shop, staging, masking=RULES, conversion_sql=[str(broken)])
    message = str(failed.value)
    assert "conversion SQL broken.sql" in message and "no_such_table" in message
    assert f"scratch database {staging}_copy_" in message and "was dropped" in message
    assert server.psql(staging, "SELECT note FROM marker") == "the old staging"
    assert server.databases(f"{staging}_%") == []


def _start(parameters: dict):
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(database_copy, parameters=parameters)

    def go():
        try:
            run_flow(
                database_copy, flow_run=created, error_logger=flow_run_logger(flow_run=created)
            )
        except Exception:  # the run's state says what happened
            pass

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return created.id, thread


def _state(run_id):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_protected_target_waits_for_an_approval(
    server: Server, shop: str, staging: str, decision: str
):
    parameters = {
        "source": server.block(shop),
        "target": server.block(staging, protected=True),
        "masking": RULES,
    }
    run_id, thread = _start(parameters)
    wait_for("database-copy to wait for approval", lambda: _state(run_id).is_paused(), 60)
    assert server.psql(staging, "SELECT note FROM marker") == "the old staging"
    assert len(server.databases(f"{staging}_copy_%")) == 1  # the masked copy, waiting
    resume_flow_run(run_id, run_input={"decision": decision, "approver": "bob"})
    thread.join(60)
    state = _state(run_id)
    if decision == "approve":
        assert state.is_completed(), state.message
        assert server.counts(staging) == server.counts(shop)
    else:
        assert state.is_cancelled(), state.message
        assert "rejected by bob" in state.message and "dropped" in state.message
        assert server.psql(staging, "SELECT note FROM marker") == "the old staging"
    assert server.databases(f"{staging}_%") == []


def test_a_source_that_cannot_be_dumped_leaves_the_target_untouched(server: Server, staging: str):
    with pytest.raises(DatabaseError) as failed:
        copy(server, "no_such_prod", staging, masking=RULES)
    message = str(failed.value)
    assert "pg_dump of no_such_prod failed" in message and "does not exist" in message
    assert f"{staging}@" in message and "was not touched" in message
    assert server.psql(staging, "SELECT note FROM marker") == "the old staging"
    assert server.databases(f"{staging}_%") == []
