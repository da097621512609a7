"""The catalog: one SQLite file per dataset (``DATASET/catalog.sqlite``), WAL mode.

Tables: meta (key/value: schema, descriptor key, created), sources (one row per source image
with its SHA-256 and provenance), persons, faces (geometry, quality, the descriptor as float32
bytes tagged with the model that made it), attributes (per face: the attribute scores as a
JSON object, name -> 0-1, and the estimator versions that made them; a face without a row was
built with attributes off). Each source is committed in one transaction with
its faces, so a killed build loses at most the source it was working on and never leaves half
of one.

The catalog holds password hashes, the audit log and saved case photos: it is created 0600 in
a dataset folder created 0700, and an existing catalog loses any group or other access when
opened.
"""
from __future__ import annotations

import json
import os
import sqlite3
import stat
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pof.dataset import schema
from pof.errors import DatasetError

CATALOG_NAME = "catalog.sqlite"



def private_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) with the new folder itself 0700; an existing folder
    is left as its owner set it."""
    if folder.is_dir():
        return
    if folder.exists():
        raise DatasetError(f"{folder}: not a folder; give a folder for the dataset")
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(folder, 0o700)                  # whatever the umask took away from the owner


def _private_file(path: Path) -> None:
    """Make the catalog private: create it 0600 (SQLite gives its -wal, -shm and -journal files
    the database's mode), or take the group's and others' access from an existing one and its
    companions. A file of another owner (a shared read-only copy) is left alone."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.chmod(path, 0o600)
    except FileExistsError:
        pass
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
            if mode & 0o077:
                os.chmod(p, mode & 0o700)
        except OSError:
            pass


def _refuse_damaged(db: sqlite3.Connection, path: Path) -> None:
    """Raise DatasetError, saying so, where the catalog file is damaged (cut short, not a
    database); a locked or unreadable one keeps SQLite's own error."""
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):
            raise
        db.close()
        raise DatasetError(
            f"the catalog {path} is damaged ({exc}): restore it from a backup, or move it aside and "
            f"run `pof build` again with the same sources; `pof fsck {path.parent}` checks the rest") from None


def now() -> str:
    """UTC time stamp, ISO 8601, seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class Catalog:
    """A dataset's SQLite catalog. Use as a context manager or call close()."""

    def __init__(self, folder: str | Path, create: bool = False) -> None:
        self.folder = Path(folder)
        path = self.folder / CATALOG_NAME
        if not path.exists() and not create:
            raise DatasetError(f"{self.folder}: no pof dataset here (no {CATALOG_NAME}); run `pof build` first")
        private_folder(self.folder)
        _private_file(path)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.row_factory = sqlite3.Row
        _refuse_damaged(self.db, path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")   # WAL: consistent after a crash; a build resumes
        self.db.execute("PRAGMA foreign_keys=ON")
        schema.ensure(self.db, "catalog")
        stored = self.get_meta("schema")
        try:
            version = schema.check(self.db, str(self.folder), stored)
        except DatasetError:
            self.db.close()
            raise
        if stored != str(version):
            with self.transaction():
                self.set_meta("schema", str(version))
                if stored is None:
                    self.set_meta("created", now())

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit everything inside at once, or nothing if an exception escapes."""
        with self.db:
            yield self.db

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def bind_models(self, descriptor_key: str) -> None:
        """Record the models of this dataset, or refuse if it was built with others."""
        have = self.get_meta("descriptor_key")
        if have is None:
            with self.transaction():
                self.set_meta("descriptor_key", descriptor_key)
        elif have != descriptor_key:
            raise DatasetError(
                f"{self.folder} was built with other models or settings ({have}); "
                f"this run uses {descriptor_key}. Build into a new folder.")

    def source_by_sha(self, sha256: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM sources WHERE sha256 = ?", (sha256,)).fetchone()

    def ensure_person(self, label: str, name: str, attribution: dict[str, Any]) -> None:
        """Add a person, or fill attribution fields it did not have yet."""
        row = self.db.execute("SELECT attribution FROM persons WHERE label = ?", (label,)).fetchone()
        if row is None:
            self.db.execute("INSERT INTO persons (label, name, attribution, added) VALUES (?, ?, ?, ?)",
                            (label, name, json.dumps(attribution, sort_keys=True), now()))
            return
        merged = json.dumps({**attribution, **json.loads(row[0])}, sort_keys=True)
        if merged != row[0]:   # a build calls this for every photo of the person
            self.db.execute("UPDATE persons SET attribution = ? WHERE label = ?", (merged, label))

    def add_source(self, sha256: str, path: str, person: str | None, provenance: dict[str, Any],
                   size: tuple[int, int], fmt: str, status: str, note: str | None = None) -> int:
        cur = self.db.execute(
            "INSERT INTO sources (sha256, path, person, provenance, width, height, format, status,"
            " note, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sha256, path, person, json.dumps(provenance, sort_keys=True), size[0], size[1], fmt,
             status, note, now()))
        return int(cur.lastrowid)

    def add_face(self, row: dict[str, Any]) -> None:
        """Insert one face row (keys as the faces table's columns; arrays as JSON lists)."""
        row = {**row, "added": now()}
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT OR REPLACE INTO faces ({cols}) VALUES ({marks})", tuple(row.values()))

    def add_attributes(self, face_id: str, scores: dict[str, float], models: str) -> None:
        """Store one face's attribute scores (name -> 0-1) and the estimators that made them."""
        self.db.execute("INSERT OR REPLACE INTO attributes (face_id, scores, models) VALUES (?, ?, ?)",
                        (face_id, json.dumps(scores), models))

    def attributes(self) -> dict[str, dict[str, float]]:
        """Attribute scores by face id (faces built with attributes off are absent)."""
        return {r[0]: json.loads(r[1]) for r in self.db.execute("SELECT face_id, scores FROM attributes")}

    def counts(self) -> dict[str, int]:
        q = lambda sql: int(self.db.execute(sql).fetchone()[0])  # noqa: E731
        return {"images": q("SELECT COUNT(*) FROM faces"),
                "persons": q("SELECT COUNT(DISTINCT person) FROM faces WHERE person IS NOT NULL"),
                "sources": q("SELECT COUNT(*) FROM sources")}

    def faces(self) -> list[sqlite3.Row]:
        """Every face joined with its source, in a stable order (person, then id)."""
        return self.db.execute(
            "SELECT f.*, s.path AS source_path, s.sha256 AS source_sha256, s.provenance,"
            " s.width, s.height FROM faces f JOIN sources s ON s.id = f.source_id"
            " ORDER BY f.person, f.id").fetchall()

    def persons(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT p.*, COUNT(f.id) AS images FROM persons p LEFT JOIN faces f ON f.person = p.label"
            " GROUP BY p.label ORDER BY p.label").fetchall()

    def gallery(self) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
        """(descriptors float32 (N, D), face ids, person labels, qualities) of enrolled faces."""
        rows = self.db.execute("SELECT id, person, descriptor, quality FROM faces"
                               " WHERE person IS NOT NULL ORDER BY person, id").fetchall()
        if not rows:
            return np.zeros((0, 0), np.float32), [], [], np.zeros(0, np.float32)
        desc = np.stack([np.frombuffer(r["descriptor"], np.float32) for r in rows])
        return desc, [r["id"] for r in rows], [r["person"] for r in rows], \
            np.array([r["quality"] for r in rows], np.float32)


def excluded_persons(db: sqlite3.Connection) -> set[str]:
    """Labels on the exclusion list (not lifted): persons a search never returns and the web
    app shows to admins only. The list is kept by the review workflow
    (``pof.casework.review``). Empty if the table does not exist."""
    try:
        return {r[0] for r in db.execute("SELECT person FROM exclusions WHERE lifted IS NULL")}
    except sqlite3.OperationalError:
        return set()
