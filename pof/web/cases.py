"""Cases: where a user saves a probe photo, so that its faces can be proposed and reviewed.

Probe photos live only in memory until someone saves one to a case. A saved photo is stored
re-encoded (no EXIF, no GPS) with its search results and the faces marked as officers. A
takedown keeps the row, drops the pixels and records who and why.
"""
from __future__ import annotations

import json
import sqlite3

from ..catalog import now
from ..errors import ImageError
from ..load import decode_image
from .errors import BadRequest, NotFound
from .imaging import decode_jpeg, encode_jpeg
from .state import Probe

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, created_by TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS case_photos (
    id INTEGER PRIMARY KEY, case_id INTEGER NOT NULL REFERENCES cases(id), name TEXT NOT NULL,
    sha256 TEXT NOT NULL, image BLOB, faces TEXT NOT NULL, officer TEXT NOT NULL DEFAULT '[]',
    added_by TEXT NOT NULL, added TEXT NOT NULL, taken_down TEXT);
"""


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the case tables if missing."""
    db.executescript(SCHEMA)


def create(db: sqlite3.Connection, title: str, user: str) -> int:
    """A new case; returns its id."""
    title = title.strip()
    if not title:
        raise BadRequest("give the case a title")
    with db:
        return int(db.execute("INSERT INTO cases (title, created_by, created) VALUES (?, ?, ?)",
                              (title[:200], user, now())).lastrowid)


def listing(db: sqlite3.Connection) -> list[dict]:
    """Cases, newest first, with their photo counts."""
    return [dict(r) for r in db.execute(
        "SELECT c.*, COUNT(p.id) AS photos FROM cases c LEFT JOIN case_photos p ON p.case_id = c.id"
        " GROUP BY c.id ORDER BY c.id DESC")]


def get(db: sqlite3.Connection, case_id: int) -> dict:
    row = db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
    if row is None:
        raise NotFound(f"no case {case_id}")
    out = dict(row)
    out["photos"] = [photo(db, r[0]) for r in db.execute(
        "SELECT id FROM case_photos WHERE case_id = ? ORDER BY id", (case_id,))]
    return out


def case_image(probe: Probe) -> bytes:
    """What a case keeps of a probe photo: the uploaded bytes decoded (EXIF orientation
    applied) and re-encoded as JPEG quality 95, without EXIF or GPS."""
    try:
        loaded = decode_image(probe.data, probe.name, max(probe.pixels, 1))
    except ImageError as exc:        # it was decoded once already when searched
        raise BadRequest(str(exc)) from None
    return encode_jpeg(loaded.pixels, 95)


def save_probe(db: sqlite3.Connection, case_id: int, probe: Probe, user: str,
               image: bytes | None = None) -> int:
    """Store a probe photo in a case; returns the photo id. ``image`` is ``case_image(probe)``
    when the caller made it already (off the event loop)."""
    get(db, case_id)
    if image is None:
        image = case_image(probe)
    with db:
        return int(db.execute(
            "INSERT INTO case_photos (case_id, name, sha256, image, faces, officer, added_by, added)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, probe.name[:200], probe.sha256, image,
             json.dumps(probe.results), json.dumps(sorted(probe.officer)), user, now())).lastrowid)


def photo(db: sqlite3.Connection, photo_id: int) -> dict:
    """A case photo's record (without pixels): faces, officer marks, takedown."""
    row = db.execute("SELECT id, case_id, name, sha256, faces, officer, added_by, added, taken_down"
                     " FROM case_photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None:
        raise NotFound(f"no case photo {photo_id}")
    return dict(row, faces=json.loads(row["faces"]), officer=json.loads(row["officer"]))


def pixels(db: sqlite3.Connection, photo_id: int):
    """The photo's RGB pixels; NotFound after a takedown."""
    row = db.execute("SELECT image FROM case_photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None or row[0] is None:
        raise NotFound(f"case photo {photo_id} was taken down or does not exist")
    return decode_jpeg(row[0])


def mark_officer(db: sqlite3.Connection, photo_id: int, face: int) -> None:
    """Mark face ``face`` (0-based) of a case photo as an officer: shown unblurred."""
    rec = photo(db, photo_id)
    if not 0 <= face < len(rec["faces"]):
        raise NotFound(f"photo {photo_id} has no face {face + 1}")
    officer = sorted(set(rec["officer"]) | {face})
    with db:
        db.execute("UPDATE case_photos SET officer = ? WHERE id = ?", (json.dumps(officer), photo_id))


def take_down(db: sqlite3.Connection, photo_id: int, reason: str, user: str) -> None:
    """Drop a photo's pixels, keeping the record of it and of the takedown."""
    photo(db, photo_id)
    if not reason.strip():
        raise BadRequest("give the reason for the takedown")
    note = json.dumps({"by": user, "at": now(), "reason": reason.strip()})
    with db:
        db.execute("UPDATE case_photos SET image = NULL, taken_down = ? WHERE id = ?", (note, photo_id))
