"""Cases: where a user saves a probe photo, so that its faces can be proposed and reviewed.

Probe photos live only in memory until someone saves one to a case. A saved photo is stored
re-encoded (no EXIF, no GPS) with its search results and the faces marked as officers. A
takedown keeps the row, drops the pixels and records who and why.

A case belongs to the user who created it. Its owner (or an admin) shares it with named users
and/or with a role: ``viewer`` (everyone signed in), ``reviewer`` (all reviewers) or ``admin``
(all admins); a role share covers that role and those above it. Admins see every case.
Everyone else does not: to them a case they may not see, and its photos, do not exist (404).
Whoever may see a case may read it, export its photos, add photos to it and (reviewers) mark
officers on them. Cases made before sharing existed have no shares: their creator and the
admins see them, until the creator shares them.

The one exception is the evidence of an identification: the face an identification names
(its crop, blurred unless a match or marked as an officer) is shown to everyone who may see the
identification, and a reviewer may mark that face as an officer, because reviewers must see
the face they confirm. The rest of the photo and the case stay with those who may see the case.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Protocol

from pof.casework.accounts import RANK, User
from pof.dataset import schema
from pof.dataset.catalog import now
from pof.errors import ImageError
from pof.stages.load import decode_image
from pof.casework.review import excluded_persons
from pof.casework.errors import Invalid, Missing, NotAllowed
from pof.runtime.jpeg import decode_jpeg, encode_jpeg


# the roles a case is shared with, and the words for them; a role share covers higher roles too
ROLE_SHARES = {"viewer": "everyone signed in", "reviewer": "all reviewers", "admin": "all admins"}
_ROLE_WORDS = {"everyone": "viewer", "viewers": "viewer", "reviewers": "reviewer", "admins": "admin"}


class SearchedPhoto(Protocol):
    """What a case keeps of a searched photo (the web app's probes are such photos)."""

    name: str
    data: bytes            # the uploaded bytes
    pixels: int            # its width x height, as decoded when searched
    sha256: str
    results: list          # the search's per-face results (JSON)
    officer: set[int]      # faces marked as officers (shown unblurred)


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the case tables if missing."""
    schema.ensure(db, "cases")


def create(db: sqlite3.Connection, title: str, user: str) -> int:
    """A new case; returns its id."""
    title = title.strip()
    if not title:
        raise Invalid("give the case a title")
    with db:
        return int(db.execute("INSERT INTO cases (title, created_by, created) VALUES (?, ?, ?)",
                              (title[:200], user, now())).lastrowid)


def _shared_sql(user: User) -> tuple[str, list]:
    """SQL true when case ``c`` is shared with ``user`` (by name or by a role at or below theirs)."""
    roles = [r for r in ROLE_SHARES if RANK[r] <= RANK[user.role]]
    sql = ("EXISTS (SELECT 1 FROM case_shares s WHERE s.case_id = c.id AND ((s.kind = 'user' AND s.name = ?)"
           f" OR (s.kind = 'role' AND s.name IN ({', '.join('?' * len(roles))}))))")
    return sql, [user.name, *roles]


def access(db: sqlite3.Connection, user: User, case_id: int) -> str | None:
    """How ``user`` may see case ``case_id``: ``owner``, ``shared``, ``admin``, or None."""
    row = db.execute("SELECT created_by FROM cases WHERE id = ?", (case_id,)).fetchone()
    if row is None:
        return None
    if row[0] == user.name:
        return "owner"
    shared, args = _shared_sql(user)
    if db.execute(f"SELECT 1 FROM cases c WHERE c.id = ? AND {shared}", (case_id, *args)).fetchone():
        return "shared"
    return "admin" if user.can("admin") else None


def readable(db: sqlite3.Connection, user: User, case_id: int) -> dict:
    """The case's record (without photos) with ``access``, if ``user`` may see it; Missing
    otherwise, the same answer as for a case that does not exist."""
    how = access(db, user, case_id)
    if how is None:
        raise Missing(f"no case {case_id}")
    row = db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
    return dict(row, access=how)


def photo_readable(db: sqlite3.Connection, user: User, photo_id: int) -> dict:
    """The case photo's record (``photo``) if ``user`` may see its case; Missing otherwise."""
    row = db.execute("SELECT case_id FROM case_photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None or access(db, user, row[0]) is None:
        raise Missing(f"no case photo {photo_id}")
    return photo(db, photo_id)


def names_face(db: sqlite3.Connection, user: User, photo_id: int, face_index: int) -> bool:
    """True if an identification ``user`` may see names face ``face_index`` of the photo."""
    excluded = set() if user.can("admin") else excluded_persons(db)
    return any(r[0] not in excluded for r in db.execute(
        "SELECT person FROM identifications WHERE subject = 'face' AND photo_id = ? AND face_index = ?",
        (photo_id, face_index)))


def face_readable(db: sqlite3.Connection, user: User, photo_id: int, face_index: int) -> dict:
    """The case photo's record if ``user`` may see its face ``face_index``: they may see the
    case, or the face is the subject of an identification they may see (its evidence)."""
    try:
        return photo_readable(db, user, photo_id)
    except Missing:
        if not names_face(db, user, photo_id, face_index):
            raise
    return photo(db, photo_id)


def listing(db: sqlite3.Connection, user: User) -> list[dict]:
    """The cases ``user`` may see, newest first, with their photo counts and ``access``
    (``owner``, ``shared``, or ``admin`` for another's case only an admin sees)."""
    shared, args = _shared_sql(user)
    where = "1 = 1" if user.can("admin") else f"(c.created_by = ? OR {shared})"
    params = [] if user.can("admin") else [user.name, *args]
    rows = [dict(r) for r in db.execute(
        f"SELECT c.*, COUNT(p.id) AS photos, c.created_by = ? AS mine, {shared} AS shared_with_me"
        " FROM cases c LEFT JOIN case_photos p ON p.case_id = c.id"
        f" WHERE {where} GROUP BY c.id ORDER BY c.id DESC", (user.name, *args, *params))]
    for r in rows:
        mine, shared_with_me = r.pop("mine"), r.pop("shared_with_me")
        r["access"] = "owner" if mine else "shared" if shared_with_me else "admin"
    return rows


def get(db: sqlite3.Connection, user: User, case_id: int) -> dict:
    """A case ``user`` may see, with its photos and its shares; Missing otherwise."""
    out = readable(db, user, case_id)
    out["photos"] = [photo(db, r[0]) for r in db.execute(
        "SELECT id FROM case_photos WHERE case_id = ? ORDER BY id", (case_id,))]
    out["shares"] = shares(db, case_id)
    out["can_share"] = out["access"] == "owner" or user.can("admin")
    return out


def shares(db: sqlite3.Connection, case_id: int) -> list[dict]:
    """Whom the case is shared with: ``kind`` (user or role), ``name``, by whom and when."""
    return [dict(r, label=ROLE_SHARES[r["name"]] if r["kind"] == "role" else r["name"]) for r in db.execute(
        "SELECT kind, name, shared_by, shared FROM case_shares WHERE case_id = ? ORDER BY kind DESC, name",
        (case_id,))]


def share_role(value: str) -> str:
    """``viewer``/``reviewer``/``admin`` from a role or its plural (``everyone``, ``reviewers``,
    ``admins``); Invalid otherwise."""
    v = str(value).strip().lower()
    v = _ROLE_WORDS.get(v, v)
    if v not in ROLE_SHARES:
        raise Invalid(f"share with a role: one of everyone, reviewers, admins (not {value!r})")
    return v


def _sharer(db: sqlite3.Connection, user: User, case_id: int) -> dict:
    case = readable(db, user, case_id)
    if case["access"] != "owner" and not user.can("admin"):
        raise NotAllowed(f"only {case['created_by']} (the case's owner) or an admin shares case {case_id}")
    return case


def share(db: sqlite3.Connection, user: User, case_id: int, users: list[str],
          role: str | None = None) -> tuple[list[str], list[str]]:
    """Share the case with ``users`` and/or ``role`` (owner or admin; Missing if ``user`` may
    not see it, NotAllowed if they may see but not share it). Returns (shared with, errors):
    an unknown user name is an error of its own and the rest are shared."""
    case = _sharer(db, user, case_id)
    role = share_role(role) if role else None
    done, errors = [], []
    targets = [("role", role)] if role else []
    for name in dict.fromkeys(str(u).strip() for u in users if str(u).strip()):
        if name == case["created_by"]:
            errors.append(f"{name} owns case {case_id}")
        elif db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is None:
            errors.append(f"no user {name!r}")
        else:
            targets.append(("user", name))
    if not targets and not errors:
        raise Invalid("say whom to share with: user names and/or a role")
    with db:
        for kind, name in targets:
            db.execute("INSERT OR IGNORE INTO case_shares (case_id, kind, name, shared_by, shared)"
                       " VALUES (?, ?, ?, ?, ?)", (case_id, kind, name, user.name, now()))
            done.append(ROLE_SHARES[name] if kind == "role" else name)
    return done, errors


def unshare(db: sqlite3.Connection, user: User, case_id: int, users: list[str],
            role: str | None = None) -> tuple[list[str], list[str]]:
    """Stop sharing the case with ``users`` and/or ``role``; returns (unshared, errors): a name
    or role the case was not shared with is an error of its own."""
    _sharer(db, user, case_id)
    targets = [("role", share_role(role))] if role else []
    targets += [("user", n) for n in dict.fromkeys(str(u).strip() for u in users if str(u).strip())]
    if not targets:
        raise Invalid("say whom to stop sharing with: user names and/or a role")
    done, errors = [], []
    with db:
        for kind, name in targets:
            label = ROLE_SHARES[name] if kind == "role" else name
            gone = db.execute("DELETE FROM case_shares WHERE case_id = ? AND kind = ? AND name = ?",
                              (case_id, kind, name)).rowcount
            (done if gone else errors).append(label if gone else f"case {case_id} is not shared with {label}")
    return done, errors


def case_image(probe: SearchedPhoto) -> bytes:
    """What a case keeps of a probe photo: the uploaded bytes decoded (EXIF orientation
    applied) and re-encoded as JPEG quality 95, without EXIF or GPS."""
    try:
        loaded = decode_image(probe.data, probe.name, max(probe.pixels, 1))
    except ImageError as exc:        # it was decoded once already when searched
        raise Invalid(str(exc)) from None
    return encode_jpeg(loaded.pixels, 95)


def save_probe(db: sqlite3.Connection, case_id: int, probe: SearchedPhoto, user: User,
               image: bytes | None = None) -> int:
    """Store a probe photo in a case ``user`` may see (Missing otherwise); returns the photo
    id. ``image`` is ``case_image(probe)`` when the caller made it already (off the event loop)."""
    readable(db, user, case_id)
    if image is None:
        image = case_image(probe)
    with db:
        return int(db.execute(
            "INSERT INTO case_photos (case_id, name, sha256, image, faces, officer, added_by, added)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, probe.name[:200], probe.sha256, image,
             json.dumps(probe.results), json.dumps(sorted(probe.officer)), user.name, now())).lastrowid)


def photo(db: sqlite3.Connection, photo_id: int) -> dict:
    """A case photo's record (without pixels): faces, officer marks, takedown."""
    row = db.execute("SELECT id, case_id, name, sha256, faces, officer, added_by, added, taken_down"
                     " FROM case_photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None:
        raise Missing(f"no case photo {photo_id}")
    return dict(row, faces=json.loads(row["faces"]), officer=json.loads(row["officer"]))


def pixels(db: sqlite3.Connection, photo_id: int):
    """The photo's RGB pixels; Missing after a takedown."""
    row = db.execute("SELECT image FROM case_photos WHERE id = ?", (photo_id,)).fetchone()
    if row is None or row[0] is None:
        raise Missing(f"case photo {photo_id} was taken down or does not exist")
    return decode_jpeg(row[0])


def mark_officer(db: sqlite3.Connection, photo_id: int, face: int) -> None:
    """Mark face ``face`` (0-based) of a case photo as an officer: shown unblurred."""
    rec = photo(db, photo_id)
    if not 0 <= face < len(rec["faces"]):
        raise Missing(f"photo {photo_id} has no face {face + 1}")
    officer = sorted(set(rec["officer"]) | {face})
    with db:
        db.execute("UPDATE case_photos SET officer = ? WHERE id = ?", (json.dumps(officer), photo_id))


def take_down(db: sqlite3.Connection, photo_id: int, reason: str, user: str) -> None:
    """Drop a photo's pixels, keeping the record of it and of the takedown."""
    photo(db, photo_id)
    if not reason.strip():
        raise Invalid("give the reason for the takedown")
    note = json.dumps({"by": user, "at": now(), "reason": reason.strip()})
    with db:
        db.execute("UPDATE case_photos SET image = NULL, taken_down = ? WHERE id = ?", (note, photo_id))
