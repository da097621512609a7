"""Admin pages and API: accounts (read-only here; ``pof users`` changes them) and their API
tokens (listed and revoked one by one here), the exclusion list, the confirmations an
identification needs, and the audit log with its verification."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from pof.casework import audit, review
from pof.casework.accounts import AccountError, User
from pof.web.auth import api, page
from pof.web.errors import BadRequest, NotFound

router = APIRouter()


class Exclusion(BaseModel):
    """A person (gallery label) who must never be returned, and why (e.g. a court order)."""

    person: str
    reason: str


@router.get("/admin")
async def admin_page(request: Request, user: User = Depends(page("admin"))) -> Response:
    web = request.app.state.web
    with web.db() as db:
        accounts = web.accounts(db)
        ctx = {"users": accounts.list(), "tokens": accounts.tokens(),
               "exclusions": review.exclusions(db), "required": review.min_reviewers(db),
               "team": review.team_check(db)}
    return web.templates.TemplateResponse(request, "admin.html", {"user": user, "csrf": request.state.csrf, **ctx})


@router.post("/admin/tokens/{token_id}/revoke")
async def revoke_token_page(request: Request, token_id: str, user: User = Depends(page("admin"))) -> Response:
    """Revoke one API token (by its public id)."""
    with request.app.state.web.db() as db:
        revoke_token(request.app.state.web.accounts(db), user, token_id)
    return RedirectResponse("/admin#tokens", 303)


def revoke_token(accounts, user: User, token_id: str) -> dict:
    """Revoke and audit; NotFound if there is no such token."""
    try:
        row = accounts.revoke_token(token_id)
    except AccountError as exc:
        raise NotFound(str(exc)) from None
    audit.append(accounts.db, user.name, "token_revoke", user=row["user"], token_id=row["id"])
    return row


@router.post("/admin/exclusions")
async def exclude_page(request: Request, user: User = Depends(page("admin"))) -> Response:
    form = await request.form()
    with request.app.state.web.db() as db:
        add_exclusion(db, user, str(form.get("person", "")), str(form.get("reason", "")))
    return RedirectResponse("/admin#exclusions", 303)


def add_exclusion(db, user: User, person: str, reason: str) -> int:
    xid = review.exclude(db, person, reason, user)
    audit.append(db, user.name, "exclude", person=person.strip(), reason=reason.strip())
    return xid


@router.post("/admin/exclusions/{xid}/lift")
async def lift_page(request: Request, xid: int, user: User = Depends(page("admin"))) -> Response:
    form = await request.form()
    reason = str(form.get("reason", ""))
    with request.app.state.web.db() as db:
        person = review.lift(db, xid, reason, user)
        audit.append(db, user.name, "lift_exclusion", person=person, reason=reason)
    return RedirectResponse("/admin#exclusions", 303)


@router.post("/admin/settings")
async def settings_page(request: Request, user: User = Depends(page("admin"))) -> Response:
    form = await request.form()
    try:
        n = int(str(form.get("required_confirmations", "")))
    except ValueError:
        raise BadRequest("required confirmations must be a whole number") from None
    with request.app.state.web.db() as db:
        review.set_required_confirmations(db, n)
        audit.append(db, user.name, "settings", required_confirmations=n)
    return RedirectResponse("/admin", 303)


def detail_text(value) -> str:
    """An audit detail value as plain words: a record as ``key: value`` pairs joined by
    commas, a list of records one after another (``;``), other lists by commas; no JSON
    punctuation. The page escapes it."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {detail_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        nested = any(isinstance(v, (dict, list, tuple)) for v in value)
        return ("; " if nested else ", ").join(detail_text(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def detail_lines(detail) -> list[tuple[str, str]]:
    """(key, value) lines of an audit row's detail, empty values left out."""
    if not isinstance(detail, dict):
        return [("", detail_text(detail))]
    return [(str(k), detail_text(v)) for k, v in detail.items() if v not in (None, "", [], {})]


@router.get("/admin/audit")
async def audit_page(request: Request, action: str | None = None, page_no: int = 0,
                     user: User = Depends(page("admin"))) -> Response:
    web = request.app.state.web
    with web.db() as db:
        verdict = audit.verify(db)
        rows = audit.rows(db, 100, max(page_no, 0) * 100, action or None)
    for r in rows:
        r["lines"] = detail_lines(r["detail"])
    return web.templates.TemplateResponse(request, "audit.html", {
        "user": user, "csrf": request.state.csrf, "rows": rows, "verdict": verdict,
        "action": action or "", "page_no": max(page_no, 0)})


@router.get("/api/me", tags=["accounts"])
async def api_me(user: User = Depends(api())) -> dict:
    """The token's user and role."""
    return {"name": user.name, "role": user.role}


@router.get("/api/users", tags=["accounts"])
async def api_users(request: Request, user: User = Depends(api("admin"))) -> list[dict]:
    with request.app.state.web.db() as db:
        return request.app.state.web.accounts(db).list()


@router.get("/api/tokens", tags=["accounts"])
async def api_tokens(request: Request, user: User = Depends(api("admin"))) -> list[dict]:
    """Every API token: id, user, label, created, expires, last_used, revoked, expired."""
    with request.app.state.web.db() as db:
        return request.app.state.web.accounts(db).tokens()


@router.post("/api/tokens/{token_id}/revoke", tags=["accounts"])
async def api_revoke_token(request: Request, token_id: str, user: User = Depends(api("admin"))) -> dict:
    """Revoke one API token by its id."""
    with request.app.state.web.db() as db:
        row = revoke_token(request.app.state.web.accounts(db), user, token_id)
    return {"id": row["id"], "user": row["user"], "revoked": True}


@router.get("/api/audit", tags=["audit"])
async def api_audit(request: Request, limit: int = 100, offset: int = 0,
                    user: User = Depends(api("admin"))) -> dict:
    """The newest audit rows, and whether the whole chain verifies."""
    with request.app.state.web.db() as db:
        v = audit.verify(db)
        return {"ok": v.ok, "rows_checked": v.rows, "head": v.head, "problem": v.problem,
                "rows": audit.rows(db, min(max(limit, 1), 1000), max(offset, 0))}


@router.get("/api/exclusions", tags=["review"])
async def api_exclusions(request: Request, user: User = Depends(api("admin"))) -> list[dict]:
    with request.app.state.web.db() as db:
        return review.exclusions(db)


@router.post("/api/exclusions", tags=["review"], status_code=201)
async def api_exclude(request: Request, body: Exclusion, user: User = Depends(api("admin"))) -> dict:
    """Exclude a person from every search."""
    with request.app.state.web.db() as db:
        return {"id": add_exclusion(db, user, body.person, body.reason)}
