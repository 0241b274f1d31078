"""The pure parts of the database jobs: masking rules (parsing, coverage, SQL), backup
names, retention by count and age, identifiers within PostgreSQL's 63 bytes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from prefect_stacks.blocks.postgres import (
    MaskingRules,
    PostgresDatabase,
    Rule,
    backup_dir,
    backup_name,
    backup_time,
    expired,
    identifier,
    parse_rule,
)
from prefect_stacks.blocks.postgres.masking import expression
from prefect_stacks.exceptions import ConfigurationError, DatabaseError

NOW = datetime(2025, 3, 10, 12, 0, 0, tzinfo=timezone.utc)
COLUMNS = {
    "public.customers": {"id": "integer", "email": "text", "name": "character varying(40)"},
    "public.orders": {"id": "integer", "note": "text"},
}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("keep", Rule("keep")),
        (None, Rule("null")),
        ("null", Rule("null")),
        ("NULL", Rule("null")),
        ("hash", Rule("hash")),
        ("email", Rule("email")),
        ("email:staging.example", Rule("email", "staging.example")),
        ("fixed:Jane Doe", Rule("fixed", "Jane Doe")),
        ("fixed:", Rule("fixed", "")),
        ("fixed:a:b", Rule("fixed", "a:b")),
        (0, None),
    ],
)
def test_rules_are_parsed(text, rule):
    if rule is None:
        with pytest.raises(ConfigurationError, match="customers.x"):
            parse_rule(text, "public.customers.x")
        return
    assert parse_rule(text, "t.c") == rule


@pytest.mark.parametrize("bad", ["mask", "fixed", "keep:it", True, ["keep"]])
def test_an_unknown_rule_names_the_column_and_the_rules(bad):
    with pytest.raises(ConfigurationError, match=r"public.t.c.*keep, null, hash, email"):
        parse_rule(bad, "public.t.c")
    with pytest.raises(ConfigurationError, match=r"public.t.c: 'a@b' is not a domain"):
        parse_rule("email:a@b", "public.t.c")


def test_tables_default_to_public_and_personal_data_merges():
    rules = MaskingRules.parse(
        {"personal_data": ["customers"], "tables": {"customers": {"id": "keep"}}},
        personal_data=["crm.people"],
    )
    assert rules.personal_data == ["crm.people", "public.customers"]
    assert rules.tables == {"public.customers": {"id": Rule("keep")}}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"rules": {}}, "unknown key"),
        ({"personal_data": "customers"}, "a list of tables"),
        ({"tables": {"customers": "email"}}, "map each column"),
        ({"tables": {"a.b.c": {}}}, "not a table name"),
    ],
)
def test_malformed_rules_say_what_is_wrong(data, match):
    with pytest.raises(ConfigurationError, match=match):
        MaskingRules.parse(data)


def test_every_column_of_a_personal_data_table_needs_a_rule():
    rules = MaskingRules.parse(
        {"personal_data": ["customers"], "tables": {"customers": {"id": "keep", "email": "email"}}}
    )
    assert rules.problems(COLUMNS) == [
        "public.customers.name has no masking rule (personal-data table public.customers)"
    ]
    with pytest.raises(DatabaseError, match=r"refusing to copy: public.customers.name"):
        rules.check(COLUMNS)
    # a table that is not personal data needs no rule for each column
    rules.tables["public.customers"]["name"] = Rule("fixed", "x")
    assert rules.problems(COLUMNS) == []


def test_rules_for_what_the_copy_does_not_have_stop_it():
    rules = MaskingRules.parse(
        {
            "personal_data": ["people"],
            "tables": {"customers": {"mail": "email"}, "gone": {"x": "null"}},
        }
    )
    assert rules.problems(COLUMNS) == [
        "public.people is listed as personal data but is not in the copy",
        "a masking rule names public.customers.mail, which is not in the copy",
        "a masking rule names table public.gone, which is not in the copy",
    ]


def test_rule_file(tmp_path):
    path = tmp_path / "masking.yaml"
    path.write_text("personal_data: [customers]\ntables:\n  customers:\n    phone: null\n")
    rules = MaskingRules.from_file(path, personal_data=["orders"])
    assert rules.personal_data == ["public.customers", "public.orders"]
    assert rules.tables["public.customers"]["phone"] == Rule("null")
    with pytest.raises(ConfigurationError, match="does not exist"):
        MaskingRules.from_file(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("tables: [")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        MaskingRules.from_file(tmp_path / "bad.yaml")


def test_masking_sql_quotes_and_casts_and_skips_keep():
    rules = MaskingRules.parse(
        {
            "tables": {
                "customers": {"id": "keep", "email": "email", "name": "fixed:O'Brien"},
                "orders": {"id": "keep"},
            }
        }
    )
    (update,) = rules.sql(COLUMNS, salt="s")
    assert update.startswith('UPDATE "public"."customers" SET "email" = (')
    assert "'@example.invalid'" in update and "::text" in update
    assert (
        "\"name\" = CASE WHEN \"name\" IS NULL THEN NULL ELSE 'O''Brien'::character varying(40)"
        in update
    )
    assert '"id"' not in update.split("SET", 1)[1]  # keep: untouched
    assert expression("c", Rule("null"), "text", "s") == "NULL"
    assert "'s' || \"c\"::text" in expression("c", Rule("hash"), "text", "s")


def test_backup_names_sort_by_time_and_are_read_back():
    name = backup_name("shop", NOW)
    assert name == "shop-20250310T120000Z.dump"
    assert backup_time(name, "shop") == NOW
    assert backup_time("shop-20250310T120000Z.dump.partial", "shop") is None
    assert backup_time("shopx-20250310T120000Z.dump", "shop") is None
    assert backup_name("my db/1", NOW).startswith("my_db_1-")
    assert backup_dir("/backups/", "shop") == "backups/shop" and backup_dir("", "shop") == "shop"


def test_retention_by_count_and_by_age_never_the_one_just_made():
    names = [backup_name("shop", NOW - timedelta(days=d)) for d in (0, 1, 2, 5, 40)]
    names += ["README.md", backup_name("other", NOW - timedelta(days=99))]
    just = names[0]
    by_count = expired(names, "shop", keep_count=2, keep_days=0, now=NOW, keep=just)
    assert by_count == [names[4], names[3], names[2]]  # oldest first
    by_age = expired(names, "shop", keep_count=0, keep_days=30, now=NOW, keep=just)
    assert by_age == [names[4]]
    both = expired(names, "shop", keep_count=4, keep_days=3, now=NOW, keep=just)
    assert both == [names[4], names[3]]
    assert expired(names, "shop", keep_count=0, keep_days=0, now=NOW) == []
    # even a just-made backup older than keep_days (a clock behind) is kept
    assert names[1] not in expired(names, "shop", keep_count=1, keep_days=0, now=NOW, keep=names[1])


def test_identifiers_stay_within_63_bytes():
    assert identifier("staging", "_copy_1a2b3c4d") == "staging_copy_1a2b3c4d"
    long = identifier("x" * 80, "_copy_1a2b3c4d")
    assert len(long.encode()) == 63 and long.endswith("_copy_1a2b3c4d")


def test_the_block_keeps_the_password_secret_and_out_of_its_label():
    db = PostgresDatabase(host="db", database="shop", password="hunter2", protected=True)
    assert "hunter2" not in repr(db) and "hunter2" not in db.label
    assert db.model_json_schema()["secret_fields"] == ["password"]
    env = db.get_client().env()
    assert env["PGPASSWORD"] == "hunter2" and env["PGDATABASE"] == "shop"
    with pytest.raises(ValueError):
        PostgresDatabase(host=" ", database="shop")
