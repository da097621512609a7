"""Who is asking: session cookies for pages (with CSRF on every POST), bearer tokens for the
API, a role check on every route, and the login and logout pages.

Use ``Depends(page("reviewer"))`` on a page route and ``Depends(api("reviewer"))`` on an API
route: each returns the ``User`` or raises (401 / 403). A page POST must carry the session's
CSRF token in the form field ``csrf``; the login form carries a pre-session token that must
equal its cookie (double submit).
"""
from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from .. import audit
from ..accounts import RANK, User, same
from .errors import BadRequest, Forbidden, LoginRequired

SESSION_COOKIE = "pof_session"
LOGIN_COOKIE = "pof_login_csrf"

router = APIRouter()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """An HttpOnly, SameSite=Strict cookie, Secure when served over https."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                        secure=_secure(request), path="/")


def _check_role(user: User, role: str) -> User:
    if RANK[user.role] < RANK[role]:
        raise Forbidden(f"this needs the {role} role; you are signed in as a {user.role}")
    return user


def page(role: str = "viewer") -> Callable:
    """Dependency for pages: the signed-in user with at least ``role``; CSRF-checked POSTs."""
    async def dependency(request: Request) -> User:
        state = request.app.state.web
        sid = request.cookies.get(SESSION_COOKIE, "")
        found = None
        if sid:
            with state.db() as db:
                found = state.accounts(db).session(sid)
        if found is None:
            raise LoginRequired("sign in first")
        user, csrf = found
        request.state.user, request.state.csrf = user, csrf
        if request.method == "POST":
            form = await request.form()
            if not same(str(form.get("csrf", "")), csrf):
                raise Forbidden("the form's security token is missing or stale; reload the page "
                                "and try again")
        return _check_role(user, role)
    return dependency


def api(role: str = "viewer") -> Callable:
    """Dependency for the API: the owner of the bearer token, with at least ``role``."""
    async def dependency(request: Request) -> User:
        state = request.app.state.web
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        user = None
        if kind.lower() == "bearer" and token:
            with state.db() as db:
                user = state.accounts(db).user_for_token(token.strip())
        if user is None:
            raise LoginRequired("send an API token: Authorization: Bearer <token> "
                                "(pof users add DATASET NAME --role ROLE --token)")
        request.state.user = user
        return _check_role(user, role)
    return dependency


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
async def login_form(request: Request, next: str = "/search") -> Response:
    """The sign-in page (sets the pre-session CSRF cookie)."""
    token = secrets.token_urlsafe(24)
    resp = request.app.state.web.templates.TemplateResponse(
        request, "login.html", {"user": None, "csrf": token, "next": _safe_next(next), "error": None})
    set_cookie(resp, request, LOGIN_COOKIE, token, 1800)
    return resp


def _safe_next(target: str) -> str:
    """Only local paths (no open redirect)."""
    local = target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target
    return target if local else "/search"


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the password (rate-limited per IP and per name); start a session."""
    state = request.app.state.web
    form = await request.form()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same(str(form.get("csrf", "")), expected):
        raise Forbidden("the sign-in form is stale; reload the page and try again")
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    ip = client_ip(request)
    state.limiter.hit(f"login-ip:{ip}", state.config.login_rate, "sign-in attempts")
    state.limiter.hit(f"login-name:{name.casefold()}", state.config.login_rate, "sign-in attempts")
    if not name or not password:
        raise BadRequest("give your user name and password")
    with state.db() as db:
        user = state.accounts(db).check_password(name, password)
        audit.append(db, name, "login" if user else "login_failed", ip=ip)
        if user is None:
            token = secrets.token_urlsafe(24)
            resp = state.templates.TemplateResponse(request, "login.html", {
                "user": None, "csrf": token, "next": _safe_next(str(form.get("next", "/search"))),
                "error": "wrong user name or password"}, status_code=401)
            set_cookie(resp, request, LOGIN_COOKIE, token, 1800)
            return resp
        sid, _ = state.accounts(db).new_session(user.name)
    resp = RedirectResponse(_safe_next(str(form.get("next", "/search"))), 303)
    set_cookie(resp, request, SESSION_COOKIE, sid, 12 * 3600)
    resp.delete_cookie(LOGIN_COOKIE, path="/")
    return resp


@router.post("/logout")
async def logout(request: Request, user: User = Depends(page("viewer"))) -> Response:
    """End the session."""
    state = request.app.state.web
    with state.db() as db:
        state.accounts(db).end_session(request.cookies.get(SESSION_COOKIE, ""))
        audit.append(db, user.name, "logout", ip=client_ip(request))
    resp = RedirectResponse("/login", 303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
