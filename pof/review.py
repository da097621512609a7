"""Review: how a candidate becomes an identification, and the exclusion list.

An identification names a *subject* (a face in a photo saved to a case, or a group of unknown
faces) as a *person*. Its state moves only by recorded events (table ``review_events``)::

    candidate --propose--> proposed --confirm x N--> confirmed
    proposed | confirmed --dispute--> disputed --reopen--> proposed
    any state but retracted --retract--> retracted
    correct = retract + a new proposal for the same subject that records what it corrects

``confirm`` needs a reviewer who is not the proposer and has not confirmed it since it was last
proposed, a note and the evidence seen; the identification is confirmed when N distinct
reviewers have (N per dataset, ``required_confirmations``, default 2). Anyone with access may
dispute, with a reason. Nothing is deleted: a retraction or a takedown is an event.

The exclusion list holds persons who must never be returned by a search (a court order, a
takedown); lifting an exclusion is recorded too. Every search (web, API, ``pof search``) drops
them.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from .accounts import User
from .catalog import now
from .errors import PofError

STATES = ("candidate", "proposed", "confirmed", "disputed", "retracted")
DEFAULT_CONFIRMATIONS = 2

# action -> (states it may leave from, least role, state it leads to; None: decided by count)
TRANSITIONS: dict[str, tuple[frozenset[str], str, str | None]] = {
    "propose": (frozenset({"candidate"}), "viewer", "proposed"),
    "confirm": (frozenset({"proposed"}), "reviewer", None),
    "dispute": (frozenset({"proposed", "confirmed"}), "viewer", "disputed"),
    "reopen": (frozenset({"disputed"}), "reviewer", "proposed"),
    "retract": (frozenset({"candidate", "proposed", "confirmed", "disputed"}), "reviewer", "retracted"),
}

SCHEMA = """
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
"""


class ReviewError(PofError):
    """A review action that the state, the role or the form does not allow."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the review tables if missing."""
    db.executescript(SCHEMA)


def required_confirmations(db: sqlite3.Connection) -> int:
    """Distinct reviewer confirmations an identification needs on this dataset."""
    row = db.execute("SELECT value FROM review_settings WHERE key = 'required_confirmations'").fetchone()
    return int(row[0]) if row else DEFAULT_CONFIRMATIONS


def set_required_confirmations(db: sqlite3.Connection, n: int) -> None:
    """Set the confirmations needed (1 to 10)."""
    if not 1 <= n <= 10:
        raise ReviewError("required confirmations must be between 1 and 10")
    with db:
        db.execute("INSERT OR REPLACE INTO review_settings (key, value) VALUES "
                   "('required_confirmations', ?)", (str(n),))


@dataclass
class Subject:
    """What is being named: a face of a case photo, or a group of unknown faces."""

    kind: str                      # "face" or "group"
    photo_id: int | None = None
    face_index: int | None = None
    group_id: int | None = None


def create(db: sqlite3.Connection, subject: Subject, person: str, user: User, note: str,
           score: float | None = None, fmr: float | None = None,
           evidence: list[str] | None = None, corrects: int | None = None) -> int:
    """A new identification, proposed at once by ``user`` with ``note``; returns its id."""
    if not person.strip():
        raise ReviewError("give the name of the person you propose")
    if not note.strip():
        raise ReviewError("say why (a note) when you propose a name")
    if person in excluded_persons(db):
        raise ReviewError("this person is on the exclusion list and cannot be named", 403)
    with db:
        cur = db.execute(
            "INSERT INTO identifications (subject, photo_id, face_index, group_id, person, state,"
            " score, fmr, evidence, created_by, created, corrects) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (subject.kind, subject.photo_id, subject.face_index, subject.group_id, person.strip(),
             "candidate", score, fmr, json.dumps(evidence or []), user.name, now(), corrects))
        ident = int(cur.lastrowid)
    act(db, ident, "propose", user, note, evidence or [])
    return ident


def get(db: sqlite3.Connection, ident: int) -> dict:
    """One identification with its events (oldest first). Raises ReviewError 404."""
    row = db.execute("SELECT * FROM identifications WHERE id = ?", (ident,)).fetchone()
    if row is None:
        raise ReviewError(f"no identification {ident}", 404)
    out = dict(row)
    out["evidence"] = json.loads(out["evidence"])
    out["events"] = [dict(e, evidence_seen=json.loads(e["evidence_seen"])) for e in db.execute(
        "SELECT * FROM review_events WHERE identification = ? ORDER BY id", (ident,))]
    out["confirmations"] = len(_confirmers(out["events"]))
    out["required"] = required_confirmations(db)
    return out


def listing(db: sqlite3.Connection, state: str | None = None, person: str | None = None,
            group_id: int | None = None, photo_id: int | None = None) -> list[dict]:
    """Identifications, newest first, filtered by state, person, group or photo."""
    sql, args = "SELECT * FROM identifications WHERE 1=1", []
    for col, val in (("state", state), ("person", person), ("group_id", group_id), ("photo_id", photo_id)):
        if val is not None:
            sql += f" AND {col} = ?"
            args.append(val)
    return [dict(r, evidence=json.loads(r["evidence"])) for r in db.execute(sql + " ORDER BY id DESC", args)]


def _confirmers(events: list[dict]) -> list[str]:
    """Distinct confirmers since the identification was last proposed or reopened."""
    names: list[str] = []
    for e in events:
        if e["action"] in ("propose", "reopen"):
            names = []
        elif e["action"] == "confirm" and e["actor"] not in names:
            names.append(e["actor"])
    return names


def act(db: sqlite3.Connection, ident: int, action: str, user: User, note: str,
        evidence_seen: list[str] | None = None) -> str:
    """Apply ``action`` by ``user``; returns the new state. Raises ReviewError (400, 403, 404, 409)."""
    if action not in TRANSITIONS:
        raise ReviewError(f"unknown action {action!r}", 404)
    allowed, role, target = TRANSITIONS[action]
    item = get(db, ident)
    if not user.can(role) and not (action == "retract" and user.name == item["created_by"]):
        raise ReviewError(f"only a {role} or above may {action}", 403)
    if item["state"] not in allowed:
        raise ReviewError(f"identification {ident} is {item['state']}: it cannot be {action}ed now", 409)
    if not note.strip():
        raise ReviewError(f"a note is needed to {action} (say what you saw or why)")
    if action == "confirm":
        target = _check_confirm(item, user, evidence_seen or [])
    with db:
        db.execute("INSERT INTO review_events (identification, actor, action, note, evidence_seen,"
                   " from_state, to_state, at) VALUES (?,?,?,?,?,?,?,?)",
                   (ident, user.name, action, note.strip(), json.dumps(evidence_seen or []),
                    item["state"], target, now()))
        db.execute("UPDATE identifications SET state = ? WHERE id = ?", (target, ident))
    return target


def _check_confirm(item: dict, user: User, evidence_seen: list[str]) -> str:
    """The state a confirmation leads to, or ReviewError if it may not count."""
    proposer = next((e["actor"] for e in reversed(item["events"]) if e["action"] == "propose"), None)
    if user.name in (proposer, item["created_by"]):
        raise ReviewError("the proposer cannot confirm their own proposal: it needs "
                          "independent reviewers", 403)
    confirmers = _confirmers(item["events"])
    if user.name in confirmers:
        raise ReviewError("you have already confirmed this identification", 409)
    if not evidence_seen:
        raise ReviewError("say which evidence you looked at (tick the gallery images you compared)")
    return "confirmed" if len(confirmers) + 1 >= item["required"] else "proposed"


def correct(db: sqlite3.Connection, ident: int, person: str, user: User, note: str) -> int:
    """A correction: retract ``ident`` and propose ``person`` for the same subject instead
    (the new identification records what it corrects). Reviewers only; returns the new id."""
    if not user.can("reviewer"):
        raise ReviewError("only a reviewer or above may correct an identification", 403)
    old = get(db, ident)
    if not person.strip() or person.strip() == old["person"]:
        raise ReviewError("give the name that replaces the one proposed")
    if not note.strip():
        raise ReviewError("say why (a note) when you correct a name")
    if person.strip() in excluded_persons(db):
        raise ReviewError("this person is on the exclusion list and cannot be named", 403)
    subject = Subject(old["subject"], old["photo_id"], old["face_index"], old["group_id"])
    act(db, ident, "retract", user, f"corrected to {person.strip()}: {note}")
    return create(db, subject, person, user, note, corrects=ident)


def excluded_persons(db: sqlite3.Connection) -> set[str]:
    """Labels on the exclusion list (not lifted). Empty if the table does not exist."""
    try:
        return {r[0] for r in db.execute("SELECT person FROM exclusions WHERE lifted IS NULL")}
    except sqlite3.OperationalError:
        return set()


def exclusions(db: sqlite3.Connection) -> list[dict]:
    """The whole exclusion list, lifted entries included, newest first."""
    return [dict(r) for r in db.execute("SELECT * FROM exclusions ORDER BY id DESC")]


def exclude(db: sqlite3.Connection, person: str, reason: str, user: User) -> int:
    """Put ``person`` on the exclusion list (admins)."""
    if not user.can("admin"):
        raise ReviewError("only an admin may change the exclusion list", 403)
    if not person.strip() or not reason.strip():
        raise ReviewError("give the person's label and the reason (e.g. the court order)")
    if person.strip() in excluded_persons(db):
        raise ReviewError(f"{person} is already excluded", 409)
    with db:
        cur = db.execute("INSERT INTO exclusions (person, reason, added_by, added) VALUES (?,?,?,?)",
                         (person.strip(), reason.strip(), user.name, now()))
    return int(cur.lastrowid)


def lift(db: sqlite3.Connection, exclusion_id: int, reason: str, user: User) -> str:
    """Lift an exclusion (recorded, the row kept); returns the person's label."""
    if not user.can("admin"):
        raise ReviewError("only an admin may change the exclusion list", 403)
    if not reason.strip():
        raise ReviewError("give the reason for lifting the exclusion")
    row = db.execute("SELECT person FROM exclusions WHERE id = ? AND lifted IS NULL", (exclusion_id,)).fetchone()
    if row is None:
        raise ReviewError(f"no active exclusion {exclusion_id}", 404)
    with db:
        db.execute("UPDATE exclusions SET lifted_by = ?, lifted = ?, lift_reason = ? WHERE id = ?",
                   (user.name, now(), reason.strip(), exclusion_id))
    return row[0]


def exclusion_version(db: sqlite3.Connection) -> tuple[int, int]:
    """Changes whenever the exclusion list does (for caches of the search gallery)."""
    try:
        row = db.execute("SELECT COUNT(*), COUNT(lifted) FROM exclusions").fetchone()
        return int(row[0]), int(row[1])
    except sqlite3.OperationalError:
        return 0, 0
