"""Review: how a candidate becomes an identification, and the exclusion list.

An identification names a *subject* (a face in a photo saved to a case, or a group of unknown
faces) as a *person*. Its state moves only by recorded events (table ``review_events``)::

    candidate --propose--> proposed --confirm x N--> confirmed
    proposed | confirmed --dispute--> disputed --reopen--> proposed
    any state but retracted --retract--> retracted
    correct = retract + a new proposal for the same subject that records what it corrects

Every identification records what the search said about that person for that face when it was
proposed (``search_decision``: ``match``, ``no_match``, ``quality_too_low``, or ``none`` for a
group of unknown faces, which no search ranked), with the score, threshold and FPIR.

``confirm`` needs a reviewer who is not the proposer and has not confirmed it since it was last
proposed, a note and the evidence seen (ids the identification shows); when the search did not
support the name (anything but ``match``), each reviewer also states the other evidence they
rely on (``other_evidence``). The identification is confirmed when N distinct reviewers have
(N per dataset, ``min_reviewers``, default 2, at least 1; one reviewer leaves a warning on the
confirmation). A name is proposed once per subject: a second proposal of the same person while
one is proposed or confirmed is refused (409, naming the existing one). Anyone with access may
dispute, with a reason; another reviewer than the proposer reopens it. Nothing is deleted: a
retraction or a takedown is an event.

The exclusion list holds persons who must never be returned by a search (a court order, a
takedown); lifting an exclusion is recorded too. Every search (web, API, ``pof search``) drops
them.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from pof.casework.accounts import User
from pof.dataset import schema
from pof.dataset.catalog import excluded_persons, now
from pof.errors import PofError
from pof.matching.results import MATCH, NO_MATCH, QUALITY_TOO_LOW, Decision

STATES = ("candidate", "proposed", "confirmed", "disputed", "retracted")
DEFAULT_CONFIRMATIONS = 2
DECISIONS = ("match", "no_match", "quality_too_low", "none")
OTHER_EVIDENCE_WORDS = 4          # words a reviewer writes when the search did not support a name
SINGLE_REVIEWER = "confirmed by a single reviewer"

PAST = {"propose": "proposed", "confirm": "confirmed", "dispute": "disputed", "reopen": "reopened",
        "retract": "retracted"}
# action -> (states it may leave from, least role, state it leads to; None: decided by count)
TRANSITIONS: dict[str, tuple[frozenset[str], str, str | None]] = {
    "propose": (frozenset({"candidate"}), "viewer", "proposed"),
    "confirm": (frozenset({"proposed"}), "reviewer", None),
    "dispute": (frozenset({"proposed", "confirmed"}), "viewer", "disputed"),
    "reopen": (frozenset({"disputed"}), "reviewer", "proposed"),
    "retract": (frozenset({"candidate", "proposed", "confirmed", "disputed"}), "reviewer", "retracted"),
}



class ReviewError(PofError):
    """A review action that the state, the role or the form does not allow."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Duplicate(ReviewError):
    """The same person is already proposed (or confirmed) for this subject: ``existing``."""

    def __init__(self, existing: int, person: str, state: str) -> None:
        super().__init__(f"{person} is already {state} for this face as identification {existing} "
                         f"(/identifications/{existing}): review that one instead", 409)
        self.existing = existing


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the review tables if missing, and add columns older catalogs lack."""
    schema.ensure(db, "review")


def min_reviewers(db: sqlite3.Connection) -> int:
    """Distinct reviewers (other than the proposer) who must confirm an identification on this
    dataset: the admin page's setting (stored as ``required_confirmations``), default 2."""
    row = db.execute("SELECT value FROM review_settings WHERE key = 'required_confirmations'").fetchone()
    return int(row[0]) if row else DEFAULT_CONFIRMATIONS


def set_min_reviewers(db: sqlite3.Connection, n: int) -> None:
    """Set the reviewers needed (1 to 10). With 1, each confirmation carries a warning."""
    if not 1 <= n <= 10:
        raise ReviewError("the reviewers an identification needs must be between 1 and 10")
    with db:
        db.execute("INSERT OR REPLACE INTO review_settings (key, value) VALUES "
                   "('required_confirmations', ?)", (str(n),))


def team_check(db: sqlite3.Connection) -> str | None:
    """Why this team cannot confirm a name proposed by one of its reviewers (too few active
    reviewer and admin accounts for ``min_reviewers``), or None."""
    try:
        n = int(db.execute("SELECT COUNT(*) FROM users WHERE role IN ('reviewer', 'admin')"
                           " AND NOT disabled").fetchone()[0])
    except sqlite3.OperationalError:           # no accounts table: not a web dataset
        return None
    need = min_reviewers(db)
    if n - 1 >= need:
        return None
    fix = (f"or an admin sets the reviewers needed to {n - 1} (then each confirmation is marked "
           f"'{SINGLE_REVIEWER}')" if n - 1 >= 1 else "")
    return (f"{n} reviewer or admin account{'' if n == 1 else 's'}: a name one of them proposes needs "
            f"{need} other reviewer{'' if need == 1 else 's'} and cannot be confirmed until more "
            f"reviewers are added (pof users add NAME --role reviewer) {fix}").strip()


required_confirmations = min_reviewers            # the names the admin page uses
set_required_confirmations = set_min_reviewers


@dataclass
class Subject:
    """What is being named: a face of a case photo, or a group of unknown faces."""

    kind: str                      # "face" or "group"
    photo_id: int | None = None
    face_index: int | None = None
    group_id: int | None = None


def search_said(face: Decision | dict | None, person: str) -> dict:
    """What a search result said about ``person`` (a face's result, or its JSON as the server
    kept it): decision (``match`` only if the face was a match and the person scored at or
    above the threshold), the person's score and FMR (None if not among the candidates), the
    threshold and FPIR; and the person's evidence image ids. None: no search (a group)."""
    if face is None:
        return {"decision": "none", "score": None, "fmr": None, "fmr_upper_bound": False,
                "threshold": None, "fpir": None, "evidence": []}
    said = face if isinstance(face, Decision) else Decision.from_json(face)
    cand = said.candidate(person)
    threshold = said.threshold
    if said.decision == QUALITY_TOO_LOW:
        decision = QUALITY_TOO_LOW
    elif said.decision == MATCH and cand and threshold is not None and cand.score >= threshold:
        decision = MATCH
    else:
        decision = NO_MATCH
    return {"decision": decision, "score": cand.score if cand else None,
            "fmr": cand.fmr if cand else None, "fmr_upper_bound": bool(cand and cand.fmr_upper_bound),
            "threshold": threshold, "fpir": said.fpir, "evidence": list(cand.evidence) if cand else []}


def duplicate_of(db: sqlite3.Connection, subject: Subject, person: str) -> tuple[int, str] | None:
    """(id, state) of an identification proposing or confirming ``person`` for ``subject``."""
    if subject.kind == "group":
        where, args = "subject = 'group' AND group_id = ?", [subject.group_id]
    else:
        where, args = "subject = 'face' AND photo_id = ? AND face_index = ?", [subject.photo_id, subject.face_index]
    row = db.execute(f"SELECT id, state FROM identifications WHERE {where} AND person = ? AND state IN"
                     " ('proposed', 'confirmed') ORDER BY id LIMIT 1", (*args, person.strip())).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def create(db: sqlite3.Connection, subject: Subject, person: str, user: User, note: str,
           score: float | None = None, fmr: float | None = None,
           evidence: list[str] | None = None, corrects: int | None = None,
           search: dict | None = None) -> int:
    """A new identification, proposed at once by ``user`` with ``note``; returns its id.

    ``search``: what the search said (``search_said``); for a face without it the decision is
    recorded as ``no_match`` with the score given, for a group as ``none``. Raises Duplicate
    (409) if ``person`` is already proposed or confirmed for ``subject``."""
    if not person.strip():
        raise ReviewError("give the name of the person you propose")
    if not note.strip():
        raise ReviewError("say why (a note) when you propose a name")
    if person.strip() in excluded_persons(db):
        raise ReviewError("this person is on the exclusion list and cannot be named", 403)
    dup = duplicate_of(db, subject, person)
    if dup:
        raise Duplicate(dup[0], person.strip(), dup[1])
    if search is None:
        search = {"decision": "none" if subject.kind == "group" else "no_match", "score": score}
    if search.get("decision") not in DECISIONS:
        raise ReviewError(f"search decision must be one of {', '.join(DECISIONS)}")
    with db:
        cur = db.execute(
            "INSERT INTO identifications (subject, photo_id, face_index, group_id, person, state,"
            " score, fmr, evidence, created_by, created, corrects, search_decision, search_score,"
            " search_threshold, search_fpir, fmr_upper_bound) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (subject.kind, subject.photo_id, subject.face_index, subject.group_id, person.strip(),
             "candidate", score, fmr, json.dumps(evidence or []), user.name, now(), corrects,
             search["decision"], search.get("score"), search.get("threshold"), search.get("fpir"),
             int(bool(search.get("fmr_upper_bound")))))
        ident = int(cur.lastrowid)
    _event(db, ident, user, "propose", note, evidence or [], "candidate", "proposed")
    return ident


def evidence_ids(db: sqlite3.Connection, item: dict) -> list[str]:
    """The evidence an identification shows its reviewers: the named person's gallery image
    ids; for a group of unknown faces also each face (``face:ID``) and each event photo it was
    seen in (``photo:ID``), and ``group`` (the group as a whole). A group is named in words,
    so the gallery images are those of the person with that label or that name."""
    if item["subject"] == "group":
        sql = ("SELECT f.id FROM faces f JOIN persons p ON p.label = f.person"
               " WHERE p.label = ? OR p.name = ? ORDER BY f.id")
        ids = [r[0] for r in db.execute(sql, (item["person"], item["person"]))]
    else:
        ids = [r[0] for r in db.execute("SELECT id FROM faces WHERE person = ? ORDER BY id", (item["person"],))]
    ids += [e for e in item["evidence"] if e not in ids]
    if item["subject"] != "group":
        return ids
    return ids + group_evidence(db, item["group_id"]) + ["group"]


def group_evidence(db: sqlite3.Connection, group_id: int | None) -> list[str]:
    """``face:ID`` of each face of an unknown-faces group (of the group it was merged into, if
    it was), then ``photo:ID`` of each event photo they were seen in (none where the catalog
    has no unknown faces)."""
    try:
        seen = set()
        while group_id is not None and group_id not in seen:       # to where a merge moved them
            seen.add(group_id)
            row = db.execute("SELECT merged_into FROM unknown_groups WHERE id = ?", (group_id,)).fetchone()
            if row is None or row[0] is None:
                break
            group_id = row[0]
        rows = db.execute("SELECT id, photo_id FROM unknown_faces WHERE group_id = ? ORDER BY id",
                          (group_id,)).fetchall()
    except sqlite3.OperationalError:
        return []
    photos = list(dict.fromkeys(r[1] for r in rows))
    return [f"face:{r[0]}" for r in rows] + [f"photo:{p}" for p in photos]


def _row(row: sqlite3.Row, excluded: set[str]) -> dict:
    out = dict(row, evidence=json.loads(row["evidence"]), excluded=row["person"] in excluded,
               fmr_upper_bound=bool(row["fmr_upper_bound"]))
    out["search_supported"] = out["search_decision"] == "match"
    return out


def get(db: sqlite3.Connection, ident: int) -> dict:
    """One identification with its events (oldest first), its confirmers, the reviewers it
    needs, and ``warnings`` (e.g. a confirmation by a single reviewer). Raises ReviewError 404."""
    row = db.execute("SELECT * FROM identifications WHERE id = ?", (ident,)).fetchone()
    if row is None:
        raise ReviewError(f"no identification {ident}", 404)
    out = _row(row, excluded_persons(db))
    out["events"] = [dict(e, evidence_seen=json.loads(e["evidence_seen"])) for e in db.execute(
        "SELECT * FROM review_events WHERE identification = ? ORDER BY id", (ident,))]
    out["confirmed_by"] = _confirmers(out["events"])
    out["confirmations"] = len(out["confirmed_by"])
    out["required"] = out["min_reviewers"] = min_reviewers(db)
    out["proposed_by"] = next((e["actor"] for e in reversed(out["events"]) if e["action"] == "propose"),
                              out["created_by"])
    out["single_reviewer"] = out["state"] == "confirmed" and out["confirmations"] == 1
    out["warnings"] = [SINGLE_REVIEWER] if out["single_reviewer"] else []
    return out


def listing(db: sqlite3.Connection, state: str | None = None, person: str | None = None,
            group_id: int | None = None, photo_id: int | None = None,
            with_excluded: bool = False) -> list[dict]:
    """Identifications, newest first, filtered by state, person, group or photo. Those naming
    an excluded person are left out unless ``with_excluded`` (then marked ``excluded``)."""
    sql, args = "SELECT * FROM identifications WHERE 1=1", []
    for col, val in (("state", state), ("person", person), ("group_id", group_id), ("photo_id", photo_id)):
        if val is not None:
            sql += f" AND {col} = ?"
            args.append(val)
    excluded = excluded_persons(db)
    out = [_row(r, excluded) for r in db.execute(sql + " ORDER BY id DESC", args)
           if with_excluded or r["person"] not in excluded]
    for item in out:
        events = [dict(e) for e in db.execute("SELECT actor, action FROM review_events WHERE"
                                              " identification = ? ORDER BY id", (item["id"],))]
        item["confirmed_by"] = _confirmers(events)
        item["confirmations"] = len(item["confirmed_by"])
        item["single_reviewer"] = item["state"] == "confirmed" and item["confirmations"] == 1
        item["warnings"] = [SINGLE_REVIEWER] if item["single_reviewer"] else []
    return out


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
        evidence_seen: list[str] | None = None, other_evidence: str = "") -> str:
    """Apply ``action`` by ``user``; returns the new state. Raises ReviewError (400, 403, 404, 409).

    A confirmation's ``evidence_seen`` must be ids of ``evidence_ids``; when the search did not
    support the name, ``other_evidence`` (a few words at least) says what the reviewer relies on."""
    if action not in TRANSITIONS:
        raise ReviewError(f"unknown action {action!r}", 404)
    allowed, role, target = TRANSITIONS[action]
    item = get(db, ident)
    if not user.can(role) and not (action == "retract" and user.name == item["created_by"]):
        raise ReviewError(f"only a {role} or above may {action}", 403)
    if item["state"] not in allowed:
        raise ReviewError(f"identification {ident} is {item['state']}: it cannot be {PAST[action]} now", 409)
    if not note.strip():
        raise ReviewError(f"a note is needed to {action} (say what you saw or why)")
    other_evidence = " ".join(other_evidence.split()) if action == "confirm" else ""
    if action == "confirm":
        if item["person"] in excluded_persons(db):
            raise ReviewError(f"{item['person']} is on the exclusion list: the name cannot be "
                              "confirmed (lift the exclusion first, if it no longer applies)", 403)
        target = _check_confirm(db, item, user, evidence_seen or [], other_evidence)
    elif action == "reopen" and is_proposer(item, user):
        raise ReviewError("the proposer cannot settle a dispute of their own proposal: another "
                          "reviewer reopens it", 403)
    _event(db, ident, user, action, note, evidence_seen or [], item["state"], target, other_evidence)
    return target


def _event(db: sqlite3.Connection, ident: int, user: User, action: str, note: str, seen: list[str],
           before: str, after: str, other_evidence: str = "") -> None:
    with db:
        db.execute("INSERT INTO review_events (identification, actor, action, note, evidence_seen,"
                   " from_state, to_state, at, other_evidence) VALUES (?,?,?,?,?,?,?,?,?)",
                   (ident, user.name, action, note.strip(), json.dumps(seen), before, after, now(),
                    other_evidence))
        db.execute("UPDATE identifications SET state = ? WHERE id = ?", (after, ident))


def is_proposer(item: dict, user: User) -> bool:
    """Whether ``user`` proposed ``item`` (and so may not confirm it)."""
    return user.name in (item["proposed_by"], item["created_by"])


def _check_confirm(db: sqlite3.Connection, item: dict, user: User, evidence_seen: list[str],
                   other_evidence: str) -> str:
    """The state a confirmation leads to, or ReviewError if it may not count."""
    if is_proposer(item, user):
        raise ReviewError("the proposer cannot confirm their own proposal: it needs "
                          "independent reviewers", 403)
    if user.name in item["confirmed_by"]:
        raise ReviewError("you have already confirmed this identification", 409)
    if not evidence_seen:
        raise ReviewError("say which evidence you looked at (tick the images you compared)")
    unknown = sorted(set(evidence_seen) - set(evidence_ids(db, item)))
    if unknown:
        raise ReviewError(f"evidence not shown for this identification: {', '.join(unknown)} "
                          "(give the ids of the images it shows)")
    if item["search_decision"] != "match" and len(other_evidence.split()) < OTHER_EVIDENCE_WORDS:
        raise ReviewError("the search did not support this name: say what other evidence you rely "
                          f"on (other_evidence, at least {OTHER_EVIDENCE_WORDS} words: a badge number, "
                          "a name tag, a roster, another photo)")
    return "confirmed" if len(item["confirmed_by"]) + 1 >= item["required"] else "proposed"


def correct(db: sqlite3.Connection, ident: int, person: str, user: User, note: str,
            search: dict | None = None) -> int:
    """A correction: retract ``ident`` and propose ``person`` for the same subject instead
    (the new identification records what it corrects, and ``search``: what the search said of
    ``person``). Reviewers only; returns the new id."""
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
    dup = duplicate_of(db, subject, person)
    if dup:
        raise Duplicate(dup[0], person.strip(), dup[1])
    act(db, ident, "retract", user, f"corrected to {person.strip()}: {note}")
    search = search or {}
    return create(db, subject, person, user, note, search.get("score"), search.get("fmr"),
                  search.get("evidence"), corrects=ident, search=search or None)


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
