"""The catalog's tables, all in one place, and the version of their layout.

A dataset's ``catalog.sqlite`` holds the dataset (``catalog``: persons, sources, faces,
attributes) and, once ``pof serve`` has run on it, the team's state: accounts and sessions
(``accounts``), the hash-chained audit log (``audit``), proposed names and their reviews
(``review``), cases (``cases``) and unknown faces from events (``unknown``). Each part is
created where it is first needed (``ensure``), so a dataset that was never served holds no
web state.

``SCHEMA_VERSION`` names the layout. Opening a catalog (``pof.dataset.catalog.Catalog``)
checks it: a catalog written by a newer pof is refused with a clear error rather than
misread, and an older one is brought up to date by the migrations below, each of which only
adds (columns with defaults), so an upgraded catalog still reads in the version that wrote it.

Version history:
    1   the first layout.
    2   API tokens gained an id, a label, an expiry and a last-use time; identifications
        record what the search decided (decision, score, threshold, FPIR, whether the FMR
        is an upper bound); review events record the other evidence a reviewer named.
    3   unknown faces taken from a clip record the time range of their track (seconds;
        NULL for a face from a photo).
"""
from __future__ import annotations

import sqlite3

from pof.errors import DatasetError

SCHEMA_VERSION = 3

TABLES: dict[str, str] = {
    "catalog": """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    label TEXT PRIMARY KEY, name TEXT NOT NULL, attribution TEXT NOT NULL DEFAULT '{}',
    added TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    person TEXT REFERENCES persons(label), provenance TEXT NOT NULL DEFAULT '{}',
    width INTEGER, height INTEGER, format TEXT, status TEXT NOT NULL, note TEXT,
    added TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faces (
    id TEXT PRIMARY KEY, source_id INTEGER NOT NULL REFERENCES sources(id),
    face_index INTEGER NOT NULL, person TEXT REFERENCES persons(label),
    box TEXT NOT NULL, det_score REAL NOT NULL, landmarks5 TEXT NOT NULL,
    landmarks68 TEXT NOT NULL, crop_matrix TEXT NOT NULL, pose TEXT NOT NULL,
    interocular REAL NOT NULL, blur REAL NOT NULL, quality REAL NOT NULL,
    descriptor BLOB NOT NULL, model TEXT NOT NULL, added TEXT NOT NULL,
    UNIQUE (source_id, face_index));
CREATE INDEX IF NOT EXISTS faces_person ON faces(person);
CREATE TABLE IF NOT EXISTS attributes (
    face_id TEXT PRIMARY KEY REFERENCES faces(id), scores TEXT NOT NULL, models TEXT NOT NULL);
""",
    "accounts": """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
    created TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name),
    created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name),
    csrf TEXT NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS account_keys (name TEXT PRIMARY KEY, value TEXT NOT NULL);
""",
    "audit": """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_replace BEFORE INSERT ON audit
    WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_extends_chain BEFORE INSERT ON audit
    WHEN NEW.seq IS NOT COALESCE((SELECT MAX(seq) FROM audit), 0) + 1
      OR NEW.prev IS NOT COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1),
                                  '0000000000000000000000000000000000000000000000000000000000000000')
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: a row must follow the last one'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'the audit head cannot be deleted'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_once BEFORE INSERT ON audit_head
    WHEN EXISTS (SELECT 1 FROM audit_head)
    BEGIN SELECT RAISE(ABORT, 'the audit head cannot be replaced'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_forward BEFORE UPDATE ON audit_head
    WHEN NEW.seq <= OLD.seq OR NEW.id IS NOT OLD.id
    BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END;
CREATE TRIGGER IF NOT EXISTS audit_genesis_once BEFORE INSERT ON meta
    WHEN NEW.key = 'audit_genesis' AND EXISTS (SELECT 1 FROM meta WHERE key = 'audit_genesis')
    BEGIN SELECT RAISE(ABORT, 'the start of the audit log is recorded once'); END;
CREATE TRIGGER IF NOT EXISTS audit_genesis_no_update BEFORE UPDATE ON meta
    WHEN OLD.key = 'audit_genesis' OR NEW.key = 'audit_genesis'
    BEGIN SELECT RAISE(ABORT, 'the start of the audit log is recorded once'); END;
CREATE TRIGGER IF NOT EXISTS audit_genesis_no_delete BEFORE DELETE ON meta
    WHEN OLD.key = 'audit_genesis'
    BEGIN SELECT RAISE(ABORT, 'the start of the audit log is recorded once'); END;
""",
    "review": """
CREATE TABLE IF NOT EXISTS identifications (
    id INTEGER PRIMARY KEY, subject TEXT NOT NULL, photo_id INTEGER, face_index INTEGER,
    group_id INTEGER, person TEXT NOT NULL, state TEXT NOT NULL, score REAL, fmr REAL,
    evidence TEXT NOT NULL DEFAULT '[]', created_by TEXT NOT NULL, created TEXT NOT NULL,
    corrects INTEGER);
CREATE TABLE IF NOT EXISTS review_events (
    id INTEGER PRIMARY KEY, identification INTEGER NOT NULL REFERENCES identifications(id),
    actor TEXT NOT NULL, action TEXT NOT NULL, note TEXT NOT NULL, evidence_seen TEXT NOT NULL,
    from_state TEXT NOT NULL, to_state TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exclusions (
    id INTEGER PRIMARY KEY, person TEXT NOT NULL, reason TEXT NOT NULL, added_by TEXT NOT NULL,
    added TEXT NOT NULL, lifted_by TEXT, lifted TEXT, lift_reason TEXT);
CREATE TABLE IF NOT EXISTS review_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""",
    "cases": """
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, created_by TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS case_photos (
    id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases(id), name TEXT NOT NULL,
    sha256 TEXT NOT NULL, image BLOB, faces TEXT NOT NULL, officer TEXT NOT NULL DEFAULT '[]',
    added_by TEXT NOT NULL, added TEXT NOT NULL, taken_down TEXT);
CREATE TABLE IF NOT EXISTS case_shares (
    case_id INTEGER NOT NULL REFERENCES cases(id), kind TEXT NOT NULL CHECK (kind IN ('user', 'role')),
    name TEXT NOT NULL, shared_by TEXT NOT NULL, shared TEXT NOT NULL, PRIMARY KEY (case_id, kind, name));
""",
    "unknown": """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_by TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event_photos (
    id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL REFERENCES events(id), name TEXT NOT NULL,
    sha256 TEXT NOT NULL, image BLOB NOT NULL, added_by TEXT NOT NULL, added TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unknown_groups (
    id INTEGER PRIMARY KEY, created TEXT NOT NULL, merged_into INTEGER, officer INTEGER NOT NULL DEFAULT 0,
    enrolled_as TEXT);
CREATE TABLE IF NOT EXISTS unknown_faces (
    id INTEGER PRIMARY KEY, photo_id INTEGER NOT NULL REFERENCES event_photos(id),
    face_index INTEGER NOT NULL, box TEXT NOT NULL, quality REAL NOT NULL, descriptor BLOB NOT NULL,
    group_id INTEGER NOT NULL REFERENCES unknown_groups(id));
""",
}

# what each version added to tables that existed before it: (table, column, declaration)
ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    2: (("api_tokens", "id", "TEXT"), ("api_tokens", "label", "TEXT NOT NULL DEFAULT ''"),
        ("api_tokens", "expires", "TEXT"), ("api_tokens", "last_used", "TEXT"),
        ("identifications", "search_decision", "TEXT"), ("identifications", "search_score", "REAL"),
        ("identifications", "search_threshold", "REAL"), ("identifications", "search_fpir", "REAL"),
        ("identifications", "fmr_upper_bound", "INTEGER NOT NULL DEFAULT 0"),
        ("review_events", "other_evidence", "TEXT NOT NULL DEFAULT ''")),
    3: (("unknown_faces", "track_start", "REAL"), ("unknown_faces", "track_end", "REAL")),
}


def tables_of(part: str) -> set[str]:
    """Names of the tables a part creates."""
    import re
    return set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", TABLES[part]))


def ensure(db: sqlite3.Connection, part: str) -> None:
    """Create a part's tables (and triggers, indexes) where missing, with every column the
    current version has."""
    db.executescript(TABLES[part])
    add_columns(db, tables_of(part))


def add_columns(db: sqlite3.Connection, tables: set[str]) -> list[str]:
    """Add the columns later versions gave ``tables`` where an existing table lacks them;
    returns them as ``table.column``. Safe when another process adds one meanwhile."""
    added = []
    for version in sorted(ADDED_COLUMNS):
        for table, column, decl in ADDED_COLUMNS[version]:
            if table not in tables:
                continue
            have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            if not have or column in have:      # no such table yet, or nothing to add
                continue
            try:
                with db:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                added.append(f"{table}.{column}")
            except sqlite3.OperationalError as exc:     # added meanwhile by another process
                if "duplicate column" not in str(exc):
                    raise
    return added


def existing_tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def check(db: sqlite3.Connection, where: str, stored: str | None) -> int:
    """The catalog's layout version (``stored``: its ``meta`` row, None for a new catalog),
    after upgrading an older one in place; a newer or unreadable one raises DatasetError."""
    if stored is None:
        return SCHEMA_VERSION
    try:
        version = int(stored)
    except ValueError:
        raise DatasetError(f"{where}: the catalog's schema version {stored!r} is not a number; "
                           "it was not written by pof") from None
    if version > SCHEMA_VERSION:
        raise DatasetError(f"{where}: the catalog was written by a newer pof (schema version "
                           f"{version}; this pof reads up to {SCHEMA_VERSION}): upgrade pof")
    if version < SCHEMA_VERSION:
        add_columns(db, existing_tables(db))
    return SCHEMA_VERSION
