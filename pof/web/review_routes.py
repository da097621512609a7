"""Review pages and API: propose a name for a face, confirm with independent reviewers,
dispute, reopen, retract (the cases that hold the saved photos: ``pof.web.case_routes``).

Every proposal, confirmation, dispute, retraction, export and takedown is written to the
audit log. The role each action needs is ``pof.casework.review.TRANSITIONS``'s. A proposal records what
the search said of the person (taken from the server's own record of the photo's results,
never from the request). Identifications naming an excluded person are shown to admins only
(marked ``excluded``); to everyone else they do not exist, nor do the excluded persons among a
case photo's candidates.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from pof.casework import audit, review
from pof.casework.accounts import User
from pof.web import imaging
from pof.casework import cases
from pof.web.auth import api, page
from pof.web.errors import BadRequest, NotFound
from pof.web.search_routes import NO_STORE, save_to_case, save_track_to_case

router = APIRouter()


class Proposal(BaseModel):
    """Propose ``person`` for face ``face`` (1-based) of a probe (token from /api/search) or of
    a saved case photo (``photo``)."""

    person: str
    note: str
    face: int = Field(ge=1)
    probe: str | None = None
    photo: int | None = None
    case_id: int | None = None
    case_title: str = ""


class Action(BaseModel):
    """A note, and for a confirmation the evidence looked at (ids the identification shows)
    and, when the search did not support the name, the other evidence relied on."""

    note: str
    evidence_seen: list[str] = []
    other_evidence: str = ""


def visible(db, user: User, ident: int) -> dict:
    """The identification, unless it names an excluded person and ``user`` is not an admin."""
    item = review.get(db, ident)
    if item["excluded"] and not user.can("admin"):
        raise NotFound(f"no identification {ident}")
    return item


def search_of(db, item_subject: review.Subject, person: str) -> dict | None:
    """What the search of a case photo's face said about ``person`` (None for a group)."""
    if item_subject.kind != "face":
        return None
    faces = cases.photo(db, item_subject.photo_id)["faces"]
    return review.search_said(faces[item_subject.face_index], person)


def without_excluded(db, user: User, photo: dict) -> dict:
    """A case photo's record with excluded persons removed from its candidates (non-admins;
    admins get them marked ``excluded``); a face whose match was an excluded person reads as
    the search would read now."""
    excluded = review.excluded_persons(db)
    if not excluded:
        return photo
    if user.can("admin"):               # admins see them, marked, and cannot propose them
        return dict(photo, faces=[dict(face, candidates=[dict(c, excluded=c["person"] in excluded)
                                                         for c in face.get("candidates", [])])
                                  for face in photo["faces"]])
    faces = []
    for face in photo["faces"]:
        cands = [c for c in face.get("candidates", []) if c["person"] not in excluded]
        face = dict(face, candidates=cands)
        if face.get("decision") == "match" and not (cands and cands[0]["score"] >= face.get("threshold", 1.0)):
            face["decision"] = "no_match"
        faces.append(face)
    return dict(photo, faces=faces)


def reviewers_besides(db, web, item: dict) -> int:
    """Active reviewer and admin accounts other than the proposer."""
    return sum(1 for u in web.accounts(db).list() if u["role"] in ("reviewer", "admin")
               and not u["disabled"] and u["name"] not in (item["proposed_by"], item["created_by"]))


def _enrolled(db, person: str) -> None:
    if db.execute("SELECT 1 FROM persons WHERE label = ?", (person,)).fetchone() is None:
        raise BadRequest(f"{person!r} is not an enrolled person; pick one of the candidates or a gallery label")


def propose_face(request: Request, db, user: User, p: Proposal) -> int:
    """Save the probe to a case if needed and propose ``p.person`` for its face; returns the id.
    For a clip's probe ``p.face`` is a track: its best frame is saved as the case photo and
    the frames its decision used are recorded with the proposal."""
    state = request.app.state.web
    face, seen = p.face, {}
    if p.probe:
        probe = state.probes.get(p.probe, user.name)
        if probe.video is not None:          # a track of a clip: its best frame is the photo
            if not 1 <= p.face <= len(probe.results):
                raise NotFound(f"the clip has no track {p.face}")
            from pof.web.clips import frames_seen
            photo_id = save_track_to_case(state, db, probe, user, p.face - 1, str(p.case_id or ""),
                                          p.case_title)
            face, seen = 1, {"track": p.face, "frames_seen": frames_seen(probe, p.face - 1)}
        else:
            photo_id = save_to_case(state, db, probe, user, str(p.case_id or ""), p.case_title)
    elif p.photo:
        photo_id = cases.photo_readable(db, user, p.photo)["id"]
    else:
        raise BadRequest("say which photo: a probe token or a case photo id")
    faces = cases.photo(db, photo_id)["faces"]
    if not 1 <= face <= len(faces):
        raise NotFound(f"the photo has no face {face}")
    _enrolled(db, p.person)
    said = review.search_said(faces[face - 1], p.person)
    ident = review.create(db, review.Subject("face", photo_id, face - 1), p.person, user, p.note,
                          said["score"], said["fmr"], said["evidence"], search=said)
    audit.append(db, user.name, "propose", identification=ident, person=p.person, photo=photo_id,
                 face=face, score=said["score"], fmr=said["fmr"], search_decision=said["decision"],
                 search_threshold=said["threshold"], search_fpir=said["fpir"], **seen)
    return ident


def apply(db, user: User, ident: int, action: str, note: str, seen: list[str],
          other_evidence: str = "") -> str:
    """Apply a review action and log it; returns the new state."""
    visible(db, user, ident)
    new = review.act(db, ident, action, user, note, seen, other_evidence)
    extra = {"other_evidence": " ".join(other_evidence.split())} if action == "confirm" and other_evidence.strip() else {}
    audit.append(db, user.name, action, identification=ident, state=new, note=note, evidence_seen=seen,
                 **extra)
    return new


def subject_view(db, item: dict) -> dict:
    """What the identification page shows of its subject."""
    if item["subject"] == "face":
        rec = cases.photo(db, item["photo_id"])
        i = item["face_index"]
        face = rec["faces"][i]
        return {"kind": "face", "photo": rec, "face": face, "n": i + 1,
                "visible": imaging.visible(face, i, rec["officer"]) and not rec["taken_down"]}
    from pof.casework.unknown import current_group
    return {"kind": "group", "group_id": item["group_id"], "group": current_group(db, item["group_id"])}


@router.post("/identifications")
async def propose_page(request: Request, user: User = Depends(page())) -> Response:
    form = await request.form()
    try:
        p = Proposal(person=str(form.get("person", "")), note=str(form.get("note", "")),
                     face=int(str(form.get("face", "0")) or 0) or 1,
                     probe=str(form.get("probe") or "") or None,
                     photo=int(str(form["photo"])) if str(form.get("photo", "")).isdigit() else None,
                     case_id=int(str(form["case_id"])) if str(form.get("case_id", "")).isdigit() else None,
                     case_title=str(form.get("case_title", "")))
    except ValueError as exc:
        raise BadRequest(f"the proposal form is incomplete ({exc})") from None
    with request.app.state.web.db() as db:
        try:
            ident = propose_face(request, db, user, p)
        except review.Duplicate as dup:
            return RedirectResponse(f"/identifications/{dup.existing}?duplicate=1", 303)
    return RedirectResponse(f"/identifications/{ident}", 303)


@router.get("/identifications")
async def queue_page(request: Request, state: str | None = None, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    if state is not None and state not in review.STATES:
        raise BadRequest(f"state must be one of {', '.join(review.STATES)}")
    with web.db() as db:
        items = review.listing(db, state, with_excluded=user.can("admin"))
        team = review.team_check(db)
    return web.templates.TemplateResponse(request, "identifications.html", {
        "user": user, "csrf": request.state.csrf, "items": items, "state": state, "team": team,
        "states": review.STATES})


@router.get("/identifications/{ident}")
async def identification_page(request: Request, ident: int, duplicate: int = 0,
                              user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        item = visible(db, user, ident)
        subject = subject_view(db, item)
        subject["case_visible"] = subject["kind"] == "face" and cases.access(
            db, user, subject["photo"]["case_id"]) is not None
        evidence = review.evidence_ids(db, item)
        person = db.execute("SELECT * FROM persons WHERE label = ?", (item["person"],)).fetchone()
        later = db.execute("SELECT id FROM identifications WHERE corrects = ?", (ident,)).fetchone()
        others = reviewers_besides(db, web, item)
    return web.templates.TemplateResponse(request, "identification.html", {
        "user": user, "csrf": request.state.csrf, "item": item, "subject": subject,
        "images": [e for e in evidence if e != "group"], "evidence": evidence,
        "person": dict(person) if person else None, "proposer": review.is_proposer(item, user),
        "reviewers_besides": others, "duplicate": bool(duplicate), "min_words": review.OTHER_EVIDENCE_WORDS,
        "corrected_by": later[0] if later else None}, headers=NO_STORE)


def correct(request: Request, db, user: User, ident: int, person: str, note: str) -> int:
    """Retract ``ident`` and propose ``person`` for its subject (faces: an enrolled person)."""
    item = visible(db, user, ident)
    if item["subject"] == "face":
        _enrolled(db, person)
    subject = review.Subject(item["subject"], item["photo_id"], item["face_index"], item["group_id"])
    new = review.correct(db, ident, person, user, note, search_of(db, subject, person.strip()))
    audit.append(db, user.name, "correct", identification=ident, new_identification=new,
                 person=person.strip(), note=note)
    return new


@router.post("/identifications/{ident}/correct")
async def correct_page(request: Request, ident: int, user: User = Depends(page("reviewer"))) -> Response:
    form = await request.form()
    with request.app.state.web.db() as db:
        try:
            new = correct(request, db, user, ident, str(form.get("person", "")), str(form.get("note", "")))
        except review.Duplicate as dup:
            return RedirectResponse(f"/identifications/{dup.existing}?duplicate=1", 303)
    return RedirectResponse(f"/identifications/{new}", 303)


@router.post("/identifications/{ident}/{action}")
async def act_page(request: Request, ident: int, action: str, user: User = Depends(page())) -> Response:
    form = await request.form()
    seen = [str(v) for v in form.getlist("evidence_seen")]
    with request.app.state.web.db() as db:
        apply(db, user, ident, action, str(form.get("note", "")), seen, str(form.get("other_evidence", "")))
    return RedirectResponse(f"/identifications/{ident}", 303)


@router.get("/api/identifications", tags=["review"])
async def api_list(request: Request, state: str | None = None, user: User = Depends(api())) -> list[dict]:
    """Identifications, newest first (``state`` filters)."""
    with request.app.state.web.db() as db:
        return review.listing(db, state, with_excluded=user.can("admin"))


@router.get("/api/identifications/{ident}", tags=["review"])
async def api_get(request: Request, ident: int, user: User = Depends(api())) -> dict:
    """One identification with its events and confirmations, what the search said
    (``search_decision``, ``search_score``, ``search_threshold``, ``search_fpir``), the evidence
    ids a confirmation may cite, and ``warnings``."""
    with request.app.state.web.db() as db:
        return _json(db, visible(db, user, ident))


def _json(db, item: dict) -> dict:
    return {**item, "evidence_ids": review.evidence_ids(db, item)}


def _duplicate(dup: review.Duplicate) -> JSONResponse:
    return JSONResponse({"error": str(dup), "status": 409, "existing": dup.existing,
                         "url": f"/identifications/{dup.existing}"}, 409)


@router.post("/api/identifications", tags=["review"], status_code=201)
async def api_propose(request: Request, p: Proposal, user: User = Depends(api())) -> JSONResponse:
    """Propose a person for a face; the probe is saved to a case. 409 with ``existing`` (its id)
    if the person is already proposed or confirmed for that face."""
    with request.app.state.web.db() as db:
        try:
            ident = propose_face(request, db, user, p)
        except review.Duplicate as dup:
            return _duplicate(dup)
        return JSONResponse(_json(db, review.get(db, ident)), 201)


class Correction(BaseModel):
    """The name that replaces the one proposed, and why."""

    person: str
    note: str


@router.post("/api/identifications/{ident}/correct", tags=["review"], status_code=201)
async def api_correct(request: Request, ident: int, body: Correction,
                      user: User = Depends(api("reviewer"))) -> JSONResponse:
    """Retract an identification and propose another person for the same subject (reviewers)."""
    with request.app.state.web.db() as db:
        try:
            new = correct(request, db, user, ident, body.person, body.note)
        except review.Duplicate as dup:
            return _duplicate(dup)
        return JSONResponse(_json(db, review.get(db, new)), 201)


@router.post("/api/identifications/{ident}/{action}", tags=["review"])
async def api_act(request: Request, ident: int, action: str, body: Action,
                  user: User = Depends(api())) -> dict:
    """confirm (reviewer), dispute (anyone), reopen (reviewer), retract (reviewer or proposer).
    A confirmation cites ``evidence_seen`` (ids of ``evidence_ids``) and, when the search did
    not support the name, ``other_evidence``."""
    with request.app.state.web.db() as db:
        apply(db, user, ident, action, body.note, body.evidence_seen, body.other_evidence)
        return _json(db, review.get(db, ident))
