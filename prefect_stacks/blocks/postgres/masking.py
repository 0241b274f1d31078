"""Masking rules for copies into staging: parsed from YAML (or a dict), checked against
the tables of the copy, and turned into SQL.

The format (``masking.yaml``)::

    personal_data:          # tables where EVERY column needs a rule
      - public.customers
      - addresses           # = public.addresses
    tables:
      public.customers:
        id: keep            # copied as it is
        email: email        # user-<hash>@example.invalid (email:<domain> for another)
        name: fixed:Jane Doe
        phone: null         # NULL ("null" too)
        tax_id: hash        # hex SHA-256 of a per-copy salt and the value
      public.orders:
        note: null          # a table that is not personal data may have rules too

A personal-data table with a column that has no rule stops the copy (a new column is how
personal data leaks into staging). A rule naming a table or column that is not in the
copy stops it too: a renamed column would otherwise go through unmasked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prefect_stacks.blocks.postgres.block import qualified, quote_ident, quote_literal
from prefect_stacks.exceptions import ConfigurationError, DatabaseError

RULES = ("keep", "null", "hash", "email", "fixed:<value>")
DEFAULT_EMAIL_DOMAIN = "example.invalid"


@dataclass(frozen=True)
class Rule:
    """One column's rule: ``kind`` is keep, null, hash, email or fixed."""

    kind: str
    value: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind


def table_name(name: str) -> str:
    """``schema.table``; a bare name is in ``public``."""
    name = str(name).strip()
    if not name or name.count(".") > 1 or name.startswith(".") or name.endswith("."):
        raise ConfigurationError(f"{name!r} is not a table name: write table or schema.table")
    return name if "." in name else f"public.{name}"


def parse_rule(text: Any, where: str) -> Rule:
    """A rule from its text (``None`` is ``null``)."""
    if text is None:
        return Rule("null")
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ConfigurationError(
            f"masking rule for {where}: {text!r} is not one of {', '.join(RULES)}"
        )
    raw = str(text)
    kind, sep, value = raw.partition(":")
    kind = kind.strip().lower()
    if kind == "fixed" and sep:
        return Rule("fixed", value)
    if kind == "email":
        domain = value.strip() or DEFAULT_EMAIL_DOMAIN
        if "@" in domain or " " in domain:
            raise ConfigurationError(f"masking rule for {where}: {domain!r} is not a domain")
        return Rule("email", domain if sep else "")
    if kind in ("keep", "null", "hash") and not sep:
        return Rule(kind)
    raise ConfigurationError(f"masking rule for {where}: {raw!r} is not one of {', '.join(RULES)}")


@dataclass
class MaskingRules:
    """Rules per table and column, and the tables that hold personal data."""

    tables: dict[str, dict[str, Rule]] = field(default_factory=dict)
    personal_data: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, personal_data: list[str] = ()) -> MaskingRules:
        """From the dict form (what the YAML file holds); ``personal_data`` adds tables."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"tables", "personal_data"})
        if unknown:
            raise ConfigurationError(
                f"masking rules: unknown key(s) {', '.join(unknown)}; the keys are "
                "`personal_data` (a list of tables) and `tables` (table -> column -> rule)"
            )
        tables: dict[str, dict[str, Rule]] = {}
        for table, columns in (data.get("tables") or {}).items():
            name = table_name(table)
            if not isinstance(columns, Mapping):
                raise ConfigurationError(
                    f"masking rules: tables.{table} must map each column to a rule"
                )
            tables[name] = {
                str(col): parse_rule(rule, f"{name}.{col}") for col, rule in columns.items()
            }
        listed = data.get("personal_data") or []
        if isinstance(listed, str) or not isinstance(listed, list):
            raise ConfigurationError("masking rules: personal_data must be a list of tables")
        personal = sorted({table_name(t) for t in [*listed, *(personal_data or [])]})
        return cls(tables=tables, personal_data=personal)

    @classmethod
    def from_file(cls, path: str | Path, personal_data: list[str] = ()) -> MaskingRules:
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"masking rule file {path} does not exist (masking_file)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"masking rule file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"masking rule file {path}: expected a mapping at the top")
        return cls.parse(data, personal_data)

    def merged(self, other: MaskingRules) -> MaskingRules:
        tables = {t: dict(cols) for t, cols in self.tables.items()}
        for t, cols in other.tables.items():
            tables.setdefault(t, {}).update(cols)
        return MaskingRules(tables, sorted({*self.personal_data, *other.personal_data}))

    def problems(self, columns: Mapping[str, Mapping[str, str]]) -> list[str]:
        """What stops the copy, given ``{table: {column: type}}`` of the copy: a column
        of a personal-data table without a rule; a rule for a table or column not there."""
        found = []
        for table in self.personal_data:
            if table not in columns:
                found.append(f"{table} is listed as personal data but is not in the copy")
                continue
            ruled = self.tables.get(table, {})
            for column in columns[table]:
                if column not in ruled:
                    found.append(
                        f"{table}.{column} has no masking rule (personal-data table {table})"
                    )
        for table, ruled in self.tables.items():
            if table not in columns:
                found.append(f"a masking rule names table {table}, which is not in the copy")
                continue
            for column in ruled:
                if column not in columns[table]:
                    found.append(f"a masking rule names {table}.{column}, which is not in the copy")
        return found

    def check(self, columns: Mapping[str, Mapping[str, str]]) -> None:
        """Raise DatabaseError naming every problem (see :meth:`problems`)."""
        found = self.problems(columns)
        if found:
            raise DatabaseError(
                "refusing to copy: "
                + "; ".join(found)
                + f". Add a rule for each column ({', '.join(RULES)}; keep copies it as it "
                "is) or fix the rule, then run again."
            )

    def sql(self, columns: Mapping[str, Mapping[str, str]], salt: str) -> list[str]:
        """One UPDATE per table that has a rule other than keep."""
        statements = []
        for table in sorted(self.tables):
            sets = [
                f"{quote_ident(col)} = {expression(col, rule, columns[table][col], salt)}"
                for col, rule in self.tables[table].items()
                if rule.kind != "keep"
            ]
            if sets:
                statements.append(f"UPDATE {qualified(table)} SET {', '.join(sets)};")
        return statements

    def summary(self) -> list[tuple[str, str]]:
        """``(table.column, rule)`` of every rule, for the report."""
        return [
            (f"{t}.{c}", str(r)) for t in sorted(self.tables) for c, r in self.tables[t].items()
        ]


def expression(column: str, rule: Rule, type_: str, salt: str) -> str:
    """The SQL value a rule gives ``column`` (of SQL type ``type_``); NULL stays NULL."""
    col = quote_ident(column)
    digest = f"encode(sha256(convert_to({quote_literal(salt)} || {col}::text, 'UTF8')), 'hex')"
    if rule.kind == "null":
        return "NULL"
    if rule.kind == "fixed":
        return f"CASE WHEN {col} IS NULL THEN NULL ELSE {quote_literal(rule.value)}::{type_} END"
    if rule.kind == "hash":
        return f"({digest})::{type_}"
    if rule.kind == "email":
        domain = quote_literal("@" + (rule.value or DEFAULT_EMAIL_DOMAIN))
        return f"('user-' || left({digest}, 16) || {domain})::{type_}"
    raise ValueError(rule.kind)
