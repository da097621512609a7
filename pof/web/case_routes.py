"""Case pages and API: the cases a user may see, their photos, and sharing them.

Every route that takes a case id or a case photo id asks ``pof.casework.cases`` whether the user
may see it (``readable``, ``photo_readable``, ``face_readable``) and answers 404 otherwise, as
for a case that does not exist. Sharing and unsharing (the owner or an admin) and every export
and takedown are written to the audit log.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from pof.casework import audit, review
from pof.casework.accounts import User
from pof.web import imaging
from pof.casework import cases
from pof.web.auth import api, page
from pof.web.errors import BadRequest, NotFound
from pof.web.review_routes import without_excluded
from pof.web.search_routes import NO_STORE

router = APIRouter()


class Share(BaseModel):
    """Whom to share a case with (or stop sharing with): user names and/or a role
    (``everyone``, ``reviewers`` or ``admins``)."""

    users: list[str] = []
    role: str | None = None


def _case(db, user: User, case_id: int) -> dict:
    """A case ``user`` may see with its photos, excluded persons removed from their candidates
    (non-admins)."""
    case = cases.get(db, user, case_id)
    return dict(case, photos=[without_excluded(db, user, p) for p in case["photos"]])


def _photo_pixels(request: Request, pid: int, user: User, face: int | None = None):
    """A case photo's record as ``user`` may see it (an excluded person's face is no longer a
    match: blurred unless marked as an officer) and its pixels. ``face`` (0-based): only that
    face is wanted, which an identification's reader may see too."""
    with request.app.state.web.db() as db:
        rec = (cases.photo_readable(db, user, pid) if face is None
               else cases.face_readable(db, user, pid, face))
        return without_excluded(db, user, rec), cases.pixels(db, pid)


def _apply_share(db, user: User, case_id: int, body: Share, undo: bool) -> dict:
    """Share or unshare, log it, and answer with what was done, the errors and the shares now."""
    done, errors = (cases.unshare if undo else cases.share)(db, user, case_id, body.users, body.role)
    if done:
        audit.append(db, user.name, "unshare_case" if undo else "share_case", case=case_id, whom=done)
    return {"case": case_id, "unshared" if undo else "shared": done, "errors": errors,
            "shares": cases.shares(db, case_id)}


@router.get("/cases")
async def cases_page(request: Request, user: User = Depends(page())) -> Response:
    """Mine, shared with me, and (admins) everyone else's."""
    web = request.app.state.web
    with web.db() as db:
        items = cases.listing(db, user)
    sections = [("Mine", [c for c in items if c["access"] == "owner"]),
                ("Shared with me", [c for c in items if c["access"] == "shared"])]
    if user.can("admin"):
        sections.append(("Others' cases (you are an admin)", [c for c in items if c["access"] == "admin"]))
    return web.templates.TemplateResponse(request, "cases.html", {
        "user": user, "csrf": request.state.csrf, "items": items, "sections": sections})


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: int, user: User = Depends(page())) -> Response:
    return _case_response(request, user, case_id)


def _case_response(request: Request, user: User, case_id: int, share_errors: list[str] = ()) -> Response:
    """The case page (with the errors of a share just made, if any)."""
    web = request.app.state.web
    with web.db() as db:
        case = _case(db, user, case_id)
        idents = {p["id"]: review.listing(db, photo_id=p["id"], with_excluded=user.can("admin"))
                  for p in case["photos"]}
    return web.templates.TemplateResponse(request, "case.html", {
        "user": user, "csrf": request.state.csrf, "case": case, "idents": idents,
        "share_errors": list(share_errors), "roles": cases.ROLE_SHARES}, headers=NO_STORE)


def _share_form(form) -> Share:
    users = [u for part in form.getlist("users") for u in str(part).replace(",", " ").split()]
    return Share(users=users, role=str(form.get("role", "")).strip() or None)


@router.post("/cases/{case_id}/share")
async def case_share(request: Request, case_id: int, user: User = Depends(page())) -> Response:
    """Share the case with the users named (comma or space separated) and/or a role."""
    return await _share_page(request, case_id, user, undo=False)


@router.post("/cases/{case_id}/unshare")
async def case_unshare(request: Request, case_id: int, user: User = Depends(page())) -> Response:
    """Stop sharing the case with a user or a role."""
    return await _share_page(request, case_id, user, undo=True)


async def _share_page(request: Request, case_id: int, user: User, undo: bool) -> Response:
    """Share or unshare, then back to the case; the case page with the errors if a name failed."""
    body = _share_form(await request.form())
    with request.app.state.web.db() as db:
        out = _apply_share(db, user, case_id, body, undo)
    if out["errors"] and not out["unshared" if undo else "shared"]:
        raise BadRequest("; ".join(out["errors"]))
    if out["errors"]:
        return _case_response(request, user, case_id, out["errors"])
    return RedirectResponse(f"/cases/{case_id}#sharing", 303)


@router.get("/cases/photos/{pid}/image.jpg")
async def case_image(request: Request, pid: int, user: User = Depends(page())) -> Response:
    rec, px = _photo_pixels(request, pid, user)
    data = await run_in_threadpool(imaging.shown, px, rec["faces"], rec["officer"])
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.get("/cases/photos/{pid}/faces/{n}.jpg")
async def case_face(request: Request, pid: int, n: int, user: User = Depends(page())) -> Response:
    """A face of a case photo (to those who may see the case, or an identification naming it)."""
    rec, px = _photo_pixels(request, pid, user, n - 1)
    if not 1 <= n <= len(rec["faces"]) or not imaging.visible(rec["faces"][n - 1], n - 1, rec["officer"]):
        raise NotFound("this face is blurred (a bystander unless a reviewer marks it as an officer)")
    return Response(imaging.face_crop(px, rec["faces"], rec["officer"], n - 1), media_type="image/jpeg",
                    headers=NO_STORE)


@router.get("/cases/photos/{pid}/export.jpg")
async def case_export(request: Request, pid: int, user: User = Depends(page())) -> Response:
    """Download the photo as pof shows it (bystanders blurred); logged as an export."""
    rec, px = _photo_pixels(request, pid, user)
    data = await run_in_threadpool(imaging.shown, px, rec["faces"], rec["officer"])
    with request.app.state.web.db() as db:
        audit.append(db, user.name, "export", photo=pid, case=rec["case_id"], image_sha256=rec["sha256"])
    return Response(data, media_type="image/jpeg", headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="case{rec["case_id"]}-photo{pid}.jpg"'})


@router.post("/cases/photos/{pid}/faces/{n}/officer")
async def case_officer(request: Request, pid: int, n: int, user: User = Depends(page("reviewer"))) -> Response:
    """Mark a face as an officer (those who may see the case, or an identification naming the
    face); back to the case, or to the identification for those who may not see the case."""
    with request.app.state.web.db() as db:
        rec = cases.face_readable(db, user, pid, n - 1)
        cases.mark_officer(db, pid, n - 1)
        audit.append(db, user.name, "mark_officer", photo=pid, face=n)
        if cases.access(db, user, rec["case_id"]) is not None:
            return RedirectResponse(f"/cases/{rec['case_id']}#photo-{pid}", 303)
        ident = review.listing(db, photo_id=pid, with_excluded=user.can("admin"))
    return RedirectResponse(next((f"/identifications/{i['id']}" for i in ident if i["face_index"] == n - 1),
                                 "/identifications"), 303)


@router.post("/cases/photos/{pid}/takedown")
async def case_takedown(request: Request, pid: int, user: User = Depends(page("admin"))) -> Response:
    form = await request.form()
    with request.app.state.web.db() as db:
        cid = cases.photo_readable(db, user, pid)["case_id"]
        cases.take_down(db, pid, str(form.get("reason", "")), user.name)
        audit.append(db, user.name, "takedown", photo=pid, reason=str(form.get("reason", "")))
    return RedirectResponse(f"/cases/{cid}", 303)


@router.get("/api/cases", tags=["cases"])
async def api_cases(request: Request, user: User = Depends(api())) -> list[dict]:
    """The cases you may see, newest first; ``access``: ``owner``, ``shared`` (shared with you
    or your role) or ``admin`` (another's case, seen as an admin)."""
    with request.app.state.web.db() as db:
        return cases.listing(db, user)


@router.get("/api/cases/{case_id}", tags=["cases"])
async def api_case(request: Request, case_id: int, user: User = Depends(api())) -> dict:
    """A case you may see, with its photos and ``shares`` (404 for one you may not see)."""
    with request.app.state.web.db() as db:
        return _case(db, user, case_id)


@router.post("/api/cases/{case_id}/share", tags=["cases"])
async def api_share(request: Request, case_id: int, body: Share, user: User = Depends(api())) -> dict:
    """Share a case with ``users`` and/or a ``role`` (``everyone``, ``reviewers``, ``admins``):
    its owner or an admin (403 for others who see it, 404 for those who do not). An unknown
    user is listed in ``errors``; the others are shared with."""
    with request.app.state.web.db() as db:
        return _apply_share(db, user, case_id, body, undo=False)


@router.post("/api/cases/{case_id}/unshare", tags=["cases"])
async def api_unshare(request: Request, case_id: int, body: Share, user: User = Depends(api())) -> dict:
    """Stop sharing a case with ``users`` and/or a ``role`` (its owner or an admin)."""
    with request.app.state.web.db() as db:
        return _apply_share(db, user, case_id, body, undo=True)
