"""Web errors: each carries its HTTP status; one handler renders them (a page or JSON).

Raise ``BadRequest("...")`` and the like anywhere in a route; ``install(app)`` makes the app
answer with the status and the message, never a traceback. API paths (``/api/``) get
``{"error": message, "status": code}``; pages get ``error.html``, or a redirect to the login
page when no one is signed in.
"""
from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import PofError

log = logging.getLogger("pof.web")


class WebError(Exception):
    """An error a user sees, with its HTTP status."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(WebError):
    status = 400


class LoginRequired(WebError):
    status = 401


class Forbidden(WebError):
    status = 403


class NotFound(WebError):
    status = 404


class Conflict(WebError):
    status = 409


class TooLarge(WebError):
    status = 413


class Unsupported(WebError):
    status = 415


class TooMany(WebError):
    status = 429


_TITLES = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found",
           405: "Not allowed here", 409: "Not possible now", 413: "Too large",
           415: "Not an image", 422: "Bad request", 429: "Too many requests", 500: "Internal error"}


def render_error(request: Request, status: int, message: str) -> Response:
    """The one place an error becomes a response."""
    if request.url.path.startswith("/api/"):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message, "status": status}, status, headers=headers)
    if status == 401:
        nxt = quote(request.url.path)
        return RedirectResponse(f"/login?next={nxt}", 303)
    templates = request.app.state.web.templates
    return templates.TemplateResponse(request, "error.html", {
        "status": status, "title": _TITLES.get(status, "Error"), "message": message,
        "user": getattr(request.state, "user", None), "csrf": getattr(request.state, "csrf", "")},
        status_code=status)


def install(app: FastAPI) -> None:
    """Register the handlers: WebError, PofError (status 400 or its own), Starlette's HTTP
    errors (404 route, 405), validation errors (422), numbers out of SQLite's range (400), and
    anything else (500, logged)."""

    @app.exception_handler(WebError)
    async def _web(request: Request, exc: WebError) -> Response:
        return render_error(request, exc.status, exc.message)

    @app.exception_handler(PofError)
    async def _pof(request: Request, exc: PofError) -> Response:
        return render_error(request, getattr(exc, "status", 400), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg = "no such page" if exc.status_code == 404 else str(exc.detail)
        return render_error(request, exc.status_code, msg)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(map(str, e.get('loc', ())[1:])) or 'request'}: {e.get('msg')}"
                 for e in exc.errors()]
        return render_error(request, 422, "; ".join(parts) or "invalid request")

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        # a number given in a form or query beyond what the catalog (SQLite) stores
        if "sqlite" in str(exc).lower():
            return render_error(request, 400, "a number in the request is out of range")
        return await _any(request, exc)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        return render_error(request, 500, f"internal error ({type(exc).__name__}); "
                            "the server log has the details")
