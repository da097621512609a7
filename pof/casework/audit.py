"""The audit log: append-only and hash-chained, in the dataset's catalog (table ``audit``).

Every search, proposal, confirmation, dispute, export and login is one row: ``seq`` (1, 2, ...),
``at`` (UTC, ISO 8601), ``actor``, ``action``, ``detail`` (a JSON object), ``prev`` (the hash of
the row before; 64 zeros for the first) and ``hash`` = sha256(prev + canonical JSON of
{seq, at, actor, action, detail}), canonical meaning sorted keys, no spaces, UTF-8.

SQLite triggers refuse UPDATE and DELETE on the table, and any INSERT that does not extend the
chain (``INSERT OR REPLACE`` of an existing row included). ``audit_head`` keeps the last row's
seq and hash: it cannot be deleted or replaced and only moves forward. The catalog's ``meta``
row ``audit_genesis`` records the first row (its time and hash) once, when it is written.

``verify`` walks the chain and names the first bad row: an edit with the triggers dropped, a
deleted, inserted or reordered row, a tail cut off (the head disagrees with the last row, or
is missing), a log emptied or dropped while the catalog shows it was used (the genesis row, user
accounts, sessions, tokens, identifications or case photos), or a log restarted from scratch.
Someone able to rewrite the whole file can rebuild a consistent chain; ``head`` gives the
``SEQ:HASH`` to keep elsewhere, and ``verify(db, expect=...)`` checks the chain still holds it.
"""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pof.dataset import schema
from pof.errors import SettingError

GENESIS = "0" * 64
GENESIS_KEY = "audit_genesis"          # meta key: {"at", "hash"} of row 1, written once


# tables whose rows are only ever written together with an audit row: any of them holding rows
# means the log was used, so an empty log has lost its rows
_ACTIVITY = {"users": "user account", "api_tokens": "API token", "sessions": "session",
             "identifications": "identification", "case_photos": "case photo"}

_HEAD = re.compile(r"^\s*(?:(\d+)\s*:\s*)?([0-9a-fA-F]{64})\s*$")


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the audit tables and triggers if missing (catalogs made before a trigger existed
    get it here), and record the log's first row in ``meta`` where it was not yet."""
    schema.ensure(db, "audit")
    if db.execute("SELECT 1 FROM meta WHERE key = ?", (GENESIS_KEY,)).fetchone() is None:
        first = db.execute("SELECT at, hash FROM audit WHERE seq = 1").fetchone()
        if first is not None:
            with db:
                _record_genesis(db, first[0], first[1])


def _record_genesis(db: sqlite3.Connection, at: str, h: str) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
               (GENESIS_KEY, canonical({"at": at, "hash": h})))


def canonical(fields: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev: str, seq: int, at: str, actor: str, action: str, detail: dict) -> str:
    """sha256 hex of the previous hash + the canonical JSON of this row's fields."""
    body = canonical({"seq": seq, "at": at, "actor": actor, "action": action, "detail": detail})
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def append(db: sqlite3.Connection, actor: str, action: str, **detail: Any) -> int:
    """Append one row (in its own IMMEDIATE transaction, so writers queue); returns its seq.

    The head moves forward only from the row it names: a head that no longer matches the log
    (or is missing) is left as it is, so that ``verify`` keeps reporting it."""
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
        head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        if head is None and last is None:
            db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (seq, h))
        elif head is not None and last is not None and tuple(head) == tuple(last):
            db.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, h))
        if seq == 1 and db.execute("SELECT 1 FROM meta WHERE key = ?", (GENESIS_KEY,)).fetchone() is None:
            _record_genesis(db, at, h)
        if not in_tx:
            db.execute("COMMIT")
    except BaseException:
        if not in_tx:
            db.execute("ROLLBACK")
        raise
    return seq


@dataclass
class Verdict:
    """Result of ``verify``: ok, rows checked, the last row's hash, the first problem and the
    row it concerns; ``seq`` and ``at`` of the last row; with ``expect``, ``after`` is how many
    rows came after the saved head."""

    ok: bool
    rows: int
    head: str
    problem: str | None = None
    bad_seq: int | None = None
    seq: int = 0
    at: str | None = None
    after: int | None = None

    @property
    def head_text(self) -> str:
        """The head as ``SEQ:HASH``, the form ``verify --expect`` takes."""
        return f"{self.seq}:{self.head}"


def parse_head(text: str) -> tuple[int | None, str]:
    """``SEQ:HASH`` or ``HASH`` (64 hex digits) -> (seq or None, hash in lower case)."""
    m = _HEAD.match(text or "")
    if not m:
        raise SettingError(f"{text!r} is not an audit head: give SEQ:HASH (as `pof audit head` "
                           "prints it) or the 64 hex digits of the hash")
    return (int(m.group(1)) if m.group(1) is not None else None), m.group(2).lower()


def _activity(db: sqlite3.Connection) -> list[str]:
    """What in the catalog shows that the audit log was used ('3 user accounts', ...)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    out = []
    for table, what in _ACTIVITY.items():
        if table in tables:
            n = int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            if n:
                out.append(f"{n} {what}{'' if n == 1 else 's'}")
    return out


def verify(db: sqlite3.Connection, expect: str | None = None) -> Verdict:
    """Walk the chain; the first edited, deleted, inserted or reordered row is reported, then a
    cut-off tail, a missing head, an emptied or restarted log. With ``expect`` (``SEQ:HASH`` or
    ``HASH``, a head saved earlier) the chain must hold that row with that hash."""
    want_seq, want_hash = parse_head(expect) if expect is not None else (None, None)
    ensure_schema(db)
    prev, expect_seq, n, at, found = GENESIS, 1, 0, None, None
    if want_hash == GENESIS and want_seq in (None, 0):
        found = 0
    for row in db.execute("SELECT seq, at, actor, action, detail, prev, hash FROM audit ORDER BY rowid"):
        seq, at, actor, action, detail, stored_prev, stored = tuple(row)
        n += 1
        if seq != expect_seq:
            return Verdict(False, n, prev, f"row {seq}: expected row {expect_seq} here (a row was "
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
        if want_hash is not None and found is None and stored == want_hash \
                and want_seq in (None, seq):
            found = seq
        prev, expect_seq = stored, expect_seq + 1
    last = expect_seq - 1

    def broken(problem: str, bad: int) -> Verdict:
        return Verdict(False, n, prev, problem, bad, last, at)

    head = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    genesis = db.execute("SELECT value FROM meta WHERE key = ?", (GENESIS_KEY,)).fetchone()
    if n == 0:
        if head is not None:
            return broken(f"the log is empty but its head says row {head[0]}: its rows were deleted", 1)
        if genesis is not None:
            started = _genesis(genesis[0]).get("at", "?")
            return broken(f"the log is empty but it was started at {started}: its rows were "
                          "deleted", 1)
        used = _activity(db)
        if used:
            return broken(f"the log is empty but the catalog holds {', '.join(used)}: its rows "
                          "were deleted", 1)
    else:
        if head is None:
            return broken(f"the log ends at row {last} but its head is missing: the head and "
                          "perhaps rows at the end were deleted", last + 1)
        if head[0] > last:
            return broken(f"the log ends at row {last} but its head says row {head[0]}: rows "
                          "at the end were deleted", last + 1)
        if head[0] < last:
            return broken(f"the log ends at row {last} but its head says row {head[0]}: rows "
                          "were added to the end without moving the head", head[0] + 1)
        if head[1] != prev:
            return broken(f"row {last}: its hash is not the one the head holds (the end of "
                          "the log was rewritten)", last)
        if genesis is not None:
            g = _genesis(genesis[0])
            first = db.execute("SELECT at, hash FROM audit WHERE seq = 1").fetchone()
            if (g.get("at"), g.get("hash")) != tuple(first):
                return broken(f"row 1: not the row the log started with (at {g.get('at', '?')}): "
                              "the log was emptied and started again, or rewritten", 1)
    if want_hash is not None:
        saved = f"{want_seq}:{want_hash}" if want_seq is not None else want_hash
        if found is None:
            if want_seq is not None and want_seq > last:
                return broken(f"the log ends at row {last} but the saved head {saved} is row "
                              f"{want_seq}: rows at the end were deleted", last + 1)
            if want_seq is not None:
                return broken(f"row {want_seq}: not the row of the saved head {saved} (the log "
                              "was rewritten)", want_seq)
            return broken(f"the saved head {saved} is in no row of the log (the log was "
                          "rewritten or cut)", last + 1)
        return Verdict(True, n, prev, None, None, last, at, last - found)
    return Verdict(True, n, prev, None, None, last, at)


def _genesis(value: str) -> dict:
    try:
        g = json.loads(value)
    except ValueError:
        return {}
    return g if isinstance(g, dict) else {}


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
