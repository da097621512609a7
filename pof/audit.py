"""The audit log: append-only and hash-chained, in the dataset's catalog (table ``audit``).

Every search, proposal, confirmation, dispute, export and login is one row: ``seq`` (1, 2, ...),
``at`` (UTC, ISO 8601), ``actor``, ``action``, ``detail`` (a JSON object), ``prev`` (the hash of
the row before; 64 zeros for the first) and ``hash`` = sha256(prev + canonical JSON of
{seq, at, actor, action, detail}), canonical meaning sorted keys, no spaces, UTF-8.

SQLite triggers refuse UPDATE and DELETE on the table; the chain catches what gets past them
(an edit with the triggers dropped, a deleted or reordered row), and ``audit_head`` keeps the
last row's seq and hash so a cut-off tail is caught too. ``verify`` names the first bad row.
Write the head hash that ``pof audit verify`` prints somewhere else to catch a rewrite of the
whole chain.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the audit tables and triggers if missing."""
    db.executescript(SCHEMA)


def canonical(fields: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev: str, seq: int, at: str, actor: str, action: str, detail: dict) -> str:
    """sha256 hex of the previous hash + the canonical JSON of this row's fields."""
    body = canonical({"seq": seq, "at": at, "actor": actor, "action": action, "detail": detail})
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def append(db: sqlite3.Connection, actor: str, action: str, **detail: Any) -> int:
    """Append one row (in its own IMMEDIATE transaction, so writers queue); returns its seq."""
    ensure_schema(db)
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    detail = json.loads(canonical(detail))          # what is stored is what is hashed
    in_tx = db.in_transaction
    if not in_tx:
        db.execute("BEGIN IMMEDIATE")
    try:
        last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        h = row_hash(prev, seq, at, actor, action, detail)
        db.execute("INSERT INTO audit (seq, at, actor, action, detail, prev, hash)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, at, actor, action, canonical(detail), prev, h))
        db.execute("INSERT OR REPLACE INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (seq, h))
        if not in_tx:
            db.execute("COMMIT")
    except BaseException:
        if not in_tx:
            db.execute("ROLLBACK")
        raise
    return seq


@dataclass
class Verdict:
    """Result of ``verify``: ok, rows checked, the head hash, and the first problem."""

    ok: bool
    rows: int
    head: str
    problem: str | None = None
    bad_seq: int | None = None


def verify(db: sqlite3.Connection) -> Verdict:
    """Walk the chain; the first edited, deleted, inserted or reordered row is reported."""
    ensure_schema(db)
    prev, expect, n = GENESIS, 1, 0
    for row in db.execute("SELECT seq, at, actor, action, detail, prev, hash FROM audit ORDER BY rowid"):
        seq, at, actor, action, detail, stored_prev, stored = tuple(row)
        n += 1
        if seq != expect:
            return Verdict(False, n, prev, f"row {seq}: expected row {expect} here (a row was "
                           "deleted, inserted or moved)", seq)
        if stored_prev != prev:
            return Verdict(False, n, prev, f"row {seq}: does not follow row {seq - 1} (a row "
                           "before it was deleted, edited or moved)", seq)
        try:
            fields = json.loads(detail)
        except ValueError:
            return Verdict(False, n, prev, f"row {seq}: detail is not JSON (edited)", seq)
        if row_hash(prev, seq, at, actor, action, fields) != stored or canonical(fields) != detail:
            return Verdict(False, n, prev, f"row {seq}: contents changed after it was written "
                           f"({actor}, {action}, {at})", seq)
        prev, expect = stored, expect + 1
    head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    if head is not None and (head[0] != expect - 1 or head[1] != prev):
        return Verdict(False, n, prev, f"the log ends at row {expect - 1} but its head says row "
                       f"{head[0]}: rows at the end were deleted", expect)
    return Verdict(True, n, prev)


def rows(db: sqlite3.Connection, limit: int = 200, offset: int = 0,
         action: str | None = None) -> list[dict]:
    """Newest rows first, detail parsed, for the admin page."""
    ensure_schema(db)
    sql, args = "SELECT * FROM audit", []
    if action:
        sql, args = sql + " WHERE action = ?", [action]
    sql += " ORDER BY seq DESC LIMIT ? OFFSET ?"
    out = []
    for r in db.execute(sql, (*args, limit, offset)):
        d = dict(r)
        d["detail"] = json.loads(d["detail"])
        out.append(d)
    return out
