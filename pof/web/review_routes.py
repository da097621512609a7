"""Review pages and API: propose a name for a face, confirm with independent reviewers,
dispute, reopen, retract; the cases that hold the saved photos.

Every proposal, confirmation, dispute, retraction, export and takedown is written to the
audit log. The role each action needs is ``pof.review.TRANSITIONS``'s.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from .. import audit, review
from ..accounts import User
from . import cases, imaging
from .auth import api, page
from .errors import BadRequest, NotFound
from .search_routes import NO_STORE, save_to_case

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
    """A note, and for a confirmation the evidence images looked at (gallery image ids)."""

    note: str
    evidence_seen: list[str] = []


def _enrolled(db, person: str) -> None:
    if db.execute("SELECT 1 FROM persons WHERE label = ?", (person,)).fetchone() is None:
        raise BadRequest(f"{person!r} is not an enrolled person; pick one of the candidates or a gallery label")


def propose_face(request: Request, db, user: User, p: Proposal) -> int:
    """Save the probe to a case if needed and propose ``p.person`` for its face; returns the id."""
    state = request.app.state.web
    if p.probe:
        probe = state.probes.get(p.probe, user.name)
        photo_id = save_to_case(state, db, probe, user, str(p.case_id or ""), p.case_title)
    elif p.photo:
        photo_id = p.photo
    else:
        raise BadRequest("say which photo: a probe token or a case photo id")
    faces = cases.photo(db, photo_id)["faces"]
    if not 1 <= p.face <= len(faces):
        raise NotFound(f"the photo has no face {p.face}")
    _enrolled(db, p.person)
    cand = next((c for c in faces[p.face - 1]["candidates"] if c["person"] == p.person), {})
    ident = review.create(db, review.Subject("face", photo_id, p.face - 1), p.person, user, p.note,
                          cand.get("score"), cand.get("fmr"), cand.get("evidence"))
    audit.append(db, user.name, "propose", identification=ident, person=p.person, photo=photo_id,
                 face=p.face, score=cand.get("score"), fmr=cand.get("fmr"))
    return ident


def apply(db, user: User, ident: int, action: str, note: str, seen: list[str]) -> str:
    """Apply a review action and log it; returns the new state."""
    new = review.act(db, ident, action, user, note, seen)
    audit.append(db, user.name, action, identification=ident, state=new, note=note, evidence_seen=seen)
    return new


def subject_view(db, item: dict) -> dict:
    """What the identification page shows of its subject."""
    if item["subject"] == "face":
        rec = cases.photo(db, item["photo_id"])
        i = item["face_index"]
        face = rec["faces"][i]
        return {"kind": "face", "photo": rec, "face": face, "n": i + 1,
                "visible": imaging.visible(face, i, rec["officer"]) and not rec["taken_down"]}
    return {"kind": "group", "group_id": item["group_id"]}


def person_images(db, person: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT id FROM faces WHERE person = ? ORDER BY id", (person,))]


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
        ident = propose_face(request, db, user, p)
    return RedirectResponse(f"/identifications/{ident}", 303)


@router.get("/identifications")
async def queue_page(request: Request, state: str | None = None, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    if state is not None and state not in review.STATES:
        raise BadRequest(f"state must be one of {', '.join(review.STATES)}")
    with web.db() as db:
        items = review.listing(db, state)
    return web.templates.TemplateResponse(request, "identifications.html", {
        "user": user, "csrf": request.state.csrf, "items": items, "state": state,
        "states": review.STATES})


@router.get("/identifications/{ident}")
async def identification_page(request: Request, ident: int, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        item = review.get(db, ident)
        subject = subject_view(db, item)
        images = person_images(db, item["person"])
        person = db.execute("SELECT * FROM persons WHERE label = ?", (item["person"],)).fetchone()
        later = db.execute("SELECT id FROM identifications WHERE corrects = ?", (ident,)).fetchone()
    return web.templates.TemplateResponse(request, "identification.html", {
        "user": user, "csrf": request.state.csrf, "item": item, "subject": subject,
        "images": images, "person": dict(person) if person else None,
        "corrected_by": later[0] if later else None}, headers=NO_STORE)


def correct(request: Request, db, user: User, ident: int, person: str, note: str) -> int:
    """Retract ``ident`` and propose ``person`` for its subject (faces: an enrolled person)."""
    item = review.get(db, ident)
    if item["subject"] == "face":
        _enrolled(db, person)
    new = review.correct(db, ident, person, user, note)
    audit.append(db, user.name, "correct", identification=ident, new_identification=new,
                 person=person.strip(), note=note)
    return new


@router.post("/identifications/{ident}/correct")
async def correct_page(request: Request, ident: int, user: User = Depends(page("reviewer"))) -> Response:
    form = await request.form()
    with request.app.state.web.db() as db:
        new = correct(request, db, user, ident, str(form.get("person", "")), str(form.get("note", "")))
    return RedirectResponse(f"/identifications/{new}", 303)


@router.post("/identifications/{ident}/{action}")
async def act_page(request: Request, ident: int, action: str, user: User = Depends(page())) -> Response:
    form = await request.form()
    seen = [str(v) for v in form.getlist("evidence_seen")]
    with request.app.state.web.db() as db:
        apply(db, user, ident, action, str(form.get("note", "")), seen)
    return RedirectResponse(f"/identifications/{ident}", 303)


@router.get("/cases")
async def cases_page(request: Request, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        items = cases.listing(db)
    return web.templates.TemplateResponse(request, "cases.html", {
        "user": user, "csrf": request.state.csrf, "items": items})


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: int, user: User = Depends(page())) -> Response:
    web = request.app.state.web
    with web.db() as db:
        case = cases.get(db, case_id)
        idents = {p["id"]: review.listing(db, photo_id=p["id"]) for p in case["photos"]}
    return web.templates.TemplateResponse(request, "case.html", {
        "user": user, "csrf": request.state.csrf, "case": case, "idents": idents}, headers=NO_STORE)


def _photo_pixels(request: Request, pid: int):
    with request.app.state.web.db() as db:
        return cases.photo(db, pid), cases.pixels(db, pid)


@router.get("/cases/photos/{pid}/image.jpg")
async def case_image(request: Request, pid: int, user: User = Depends(page())) -> Response:
    rec, px = _photo_pixels(request, pid)
    data = await run_in_threadpool(imaging.shown, px, rec["faces"], rec["officer"])
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.get("/cases/photos/{pid}/faces/{n}.jpg")
async def case_face(request: Request, pid: int, n: int, user: User = Depends(page())) -> Response:
    rec, px = _photo_pixels(request, pid)
    if not 1 <= n <= len(rec["faces"]) or not imaging.visible(rec["faces"][n - 1], n - 1, rec["officer"]):
        raise NotFound("this face is blurred (a bystander unless a reviewer marks it as an officer)")
    return Response(imaging.face_crop(px, rec["faces"], rec["officer"], n - 1), media_type="image/jpeg",
                    headers=NO_STORE)


@router.get("/cases/photos/{pid}/export.jpg")
async def case_export(request: Request, pid: int, user: User = Depends(page())) -> Response:
    """Download the photo as pof shows it (bystanders blurred); logged as an export."""
    rec, px = _photo_pixels(request, pid)
    data = await run_in_threadpool(imaging.shown, px, rec["faces"], rec["officer"])
    with request.app.state.web.db() as db:
        audit.append(db, user.name, "export", photo=pid, case=rec["case_id"], image_sha256=rec["sha256"])
    return Response(data, media_type="image/jpeg", headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="case{rec["case_id"]}-photo{pid}.jpg"'})


@router.post("/cases/photos/{pid}/faces/{n}/officer")
async def case_officer(request: Request, pid: int, n: int, user: User = Depends(page("reviewer"))) -> Response:
    with request.app.state.web.db() as db:
        cases.mark_officer(db, pid, n - 1)
        audit.append(db, user.name, "mark_officer", photo=pid, face=n)
        cid = cases.photo(db, pid)["case_id"]
    return RedirectResponse(f"/cases/{cid}#photo-{pid}", 303)


@router.post("/cases/photos/{pid}/takedown")
async def case_takedown(request: Request, pid: int, user: User = Depends(page("admin"))) -> Response:
    form = await request.form()
    with request.app.state.web.db() as db:
        cases.take_down(db, pid, str(form.get("reason", "")), user.name)
        audit.append(db, user.name, "takedown", photo=pid, reason=str(form.get("reason", "")))
        cid = cases.photo(db, pid)["case_id"]
    return RedirectResponse(f"/cases/{cid}", 303)


@router.get("/api/identifications", tags=["review"])
async def api_list(request: Request, state: str | None = None, user: User = Depends(api())) -> list[dict]:
    """Identifications, newest first (``state`` filters)."""
    with request.app.state.web.db() as db:
        return review.listing(db, state)


@router.get("/api/identifications/{ident}", tags=["review"])
async def api_get(request: Request, ident: int, user: User = Depends(api())) -> dict:
    """One identification with its events and confirmations."""
    with request.app.state.web.db() as db:
        return review.get(db, ident)


@router.post("/api/identifications", tags=["review"], status_code=201)
async def api_propose(request: Request, p: Proposal, user: User = Depends(api())) -> JSONResponse:
    """Propose a person for a face; the probe is saved to a case."""
    with request.app.state.web.db() as db:
        ident = propose_face(request, db, user, p)
        return JSONResponse(review.get(db, ident), 201)


class Correction(BaseModel):
    """The name that replaces the one proposed, and why."""

    person: str
    note: str


@router.post("/api/identifications/{ident}/correct", tags=["review"], status_code=201)
async def api_correct(request: Request, ident: int, body: Correction,
                      user: User = Depends(api("reviewer"))) -> JSONResponse:
    """Retract an identification and propose another person for the same subject (reviewers)."""
    with request.app.state.web.db() as db:
        return JSONResponse(review.get(db, correct(request, db, user, ident, body.person, body.note)), 201)


@router.post("/api/identifications/{ident}/{action}", tags=["review"])
async def api_act(request: Request, ident: int, action: str, body: Action,
                  user: User = Depends(api())) -> dict:
    """confirm (reviewer), dispute (anyone), reopen (reviewer), retract (reviewer or proposer)."""
    with request.app.state.web.db() as db:
        apply(db, user, ident, action, body.note, body.evidence_seen)
        return review.get(db, ident)


@router.get("/api/cases", tags=["review"])
async def api_cases(request: Request, user: User = Depends(api())) -> list[dict]:
    with request.app.state.web.db() as db:
        return cases.listing(db)


@router.get("/api/cases/{case_id}", tags=["review"])
async def api_case(request: Request, case_id: int, user: User = Depends(api())) -> dict:
    with request.app.state.web.db() as db:
        return cases.get(db, case_id)
