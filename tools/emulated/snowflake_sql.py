"""What the model reads of a statement's text: its kind (how it takes part in locks and transactions), the table
a write locks, and whether a reference to a table reads it whole (micro-partition pruning). Parsed with sqlglot's
Snowflake dialect where a keyword is not enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def unpruned_scans(sql: str, table: str, clustered_by: str, database: str | None, schema: str | None) -> int:
    """How many references to ``table`` (DATABASE.SCHEMA.TABLE) in ``sql`` read it whole: those whose own WHERE
    (of the SELECT, UPDATE or DELETE they belong to) has no range predicate on ``clustered_by`` for them."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="snowflake")
    except Exception:
        return 0
    column = clustered_by.upper()
    unpruned = 0
    for node in tree.find_all(exp.Table):
        parts = [p.upper() for p in (node.catalog or database or "", node.db or schema or "", node.name)]
        if ".".join(parts) != table.upper():
            continue
        alias = (node.alias or "").upper()
        scope = node.find_ancestor(exp.Select, exp.Update, exp.Delete)
        where = scope.args.get("where") if scope is not None else None
        pruned = False
        if where is not None:
            for cmp in where.find_all(exp.GTE, exp.GT):
                col = cmp.this
                if isinstance(col, exp.Column) and col.name.upper() == column:
                    qualifier = (col.table or "").upper()
                    pruned = pruned or qualifier in {"", alias, node.name.upper()}
        unpruned += 0 if pruned else 1
    return unpruned


_FIRST_WORD = re.compile(r"^\s*(?:/\*.*?\*/\s*)*([A-Za-z]+)", re.S)
_LOCK_TIMEOUT_SET = re.compile(r"^\s*ALTER\s+SESSION\s+SET\s+LOCK_TIMEOUT\s*=\s*(\d+)", re.I)
_STATEMENT_TIMEOUT_SET = re.compile(r"^\s*ALTER\s+SESSION\s+SET\s+STATEMENT_TIMEOUT_IN_SECONDS\s*=\s*(\d+)", re.I)
_AUTOCOMMIT_SET = re.compile(r"^\s*ALTER\s+SESSION\s+SET\s+AUTOCOMMIT\s*=\s*'?(TRUE|FALSE)\b", re.I)
_DDL = {"CREATE", "ALTER", "DROP", "TRUNCATE", "UNDROP", "GRANT", "REVOKE", "COMMENT"}
DML_KINDS = frozenset({"WRITE", "INSERT", "COPY"})  # with AUTOCOMMIT off, the first one opens a transaction


@dataclass(frozen=True)
class Statement:
    # BEGIN | COMMIT | ROLLBACK | DDL | AUTOCOMMIT (ALTER SESSION SET AUTOCOMMIT) | PUT | COPY | INSERT |
    # WRITE (UPDATE, DELETE, MERGE: locks) | OTHER (SELECT, SHOW, other ALTER SESSION, ...)
    kind: str
    table: str | None = None  # the table a WRITE locks, DATABASE.SCHEMA.TABLE upper-case
    autocommit: bool | None = None  # the value an AUTOCOMMIT statement sets


def classify_statement(sql: str, database: str | None, schema: str | None) -> Statement:
    """What a statement does to locks and transactions. Unqualified names resolve in the session's schema."""
    match = _FIRST_WORD.match(sql)
    word = match.group(1).upper() if match else ""
    if word in {"BEGIN", "START"}:
        return Statement("BEGIN")
    if word in {"COMMIT", "ROLLBACK"}:
        return Statement(word)
    if word == "ALTER" and re.match(r"^\s*ALTER\s+SESSION\b", sql, re.I):
        if (setting := _AUTOCOMMIT_SET.match(sql)) is not None:
            return Statement("AUTOCOMMIT", autocommit=setting.group(1).upper() == "TRUE")
        return Statement("OTHER")  # other session parameters: no implicit commit
    if word in _DDL:
        return Statement("DDL")
    if word == "INSERT":
        try:
            return Statement(word, _target_table(sql, database, schema))
        except Exception:  # an INSERT the parser cannot read: no table, so it never waits
            return Statement(word)
    if word in {"PUT", "COPY"}:
        return Statement(word)
    if word in {"UPDATE", "DELETE", "MERGE"}:
        return Statement("WRITE", _target_table(sql, database, schema))
    return Statement("OTHER")


def statement_verb(sql: str) -> str:
    """The statement's first keyword (UPDATE, SELECT, PUT, ...): what a trace keeps of its text."""
    match = _FIRST_WORD.match(sql)
    return match.group(1).upper() if match else ""


def _target_table(sql: str, database: str | None, schema: str | None) -> str:
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="snowflake")
    target = tree.this
    if isinstance(target, exp.Schema):  # INSERT INTO t (columns)
        target = target.this
    if isinstance(target, exp.Alias):
        target = target.this
    if not isinstance(target, exp.Table):
        raise ValueError(f"no target table in {sql[:80]!r}")

    def norm(part: exp.Expression | None, default: str | None) -> str:
        if part is None or not getattr(part, "name", ""):
            return (default or "").upper()
        return str(part.name) if getattr(part, "quoted", False) else str(part.name).upper()

    return ".".join(
        (norm(target.args.get("catalog"), database), norm(target.args.get("db"), schema), norm(target.this, None))
    )
