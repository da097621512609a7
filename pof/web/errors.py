"""Web errors: each carries its HTTP status; one handler renders them (a page or JSON).

Raise ``BadRequest("...")`` and the like anywhere in a route; ``install(app)`` makes the app
answer with the status and the message, never a traceback. API paths (``/api/``) get
``{"error": message, "status": code}``; pages get ``error.html``, or a redirect to the login
page when no one is signed in. An error page answering a form (any method but GET and HEAD)
links back to the page that form is on (``back_link``).
"""
from __future__ import annotations

import logging
import re
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pof.errors import PofError

log = logging.getLogger("pof.web")


class WebError(Exception):
    """An error a user sees, with its HTTP status."""

    status = 500
    title: str | None = None          # the page's heading; None: the status's (_TITLES)

    def __init__(self, message: str, status: int | None = None, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title


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


def title_of(status: int, title: str | None = None) -> str:
    """The heading of an error: ``title`` if given, else the status's."""
    return title or _TITLES.get(status, "Error")


# Where a form posted to a path sends the user back: a pattern of the whole path (ids and
# tokens only of characters that need no escaping), the page, its name.
_BACK = [
    (r"/search", "/search", "the search form"),
    (r"/login", "/login", "the sign-in page"),
    (r"/probes/([A-Za-z0-9_-]+)/.+", "/probes/{0}", "the search result"),
    (r"/identifications/(\d+)/.+", "/identifications/{0}", "the identification"),
    (r"/cases/(\d+)(/.*)?", "/cases/{0}", "the case"),
    (r"/admin/settings", "/admin#review-settings", "the admin page"),
    (r"/admin/(exclusions|tokens)(/.*)?", "/admin#{0}", "the admin page"),
    (r"/admin(/.*)?", "/admin", "the admin page"),
    (r"/unknown(/.*)?", "/unknown", "the unknown faces"),
]
_SAFE_PATH = re.compile(r"/(?!/)[A-Za-z0-9/_.-]*")


def back_link(request: Request) -> tuple[str, str] | None:
    """(url, words) of the page a failed form came from, or None (a GET needs none: the page
    asked for is where the user is). Chosen from the request's own path; where the path does
    not tell (a form found on several pages), the Referer, only if it is a page of this same
    site, reduced to its path. Never a URL of another site."""
    if request.method in ("GET", "HEAD"):
        return None
    path = request.url.path
    for pattern, url, words in _BACK:
        m = re.fullmatch(pattern, path)
        if m:
            return url.format(*m.groups()), f"Back to {words}"
    ref = urlsplit(request.headers.get("referer", ""))
    if ref.netloc == request.url.netloc and ref.scheme in ("http", "https") \
            and _SAFE_PATH.fullmatch(ref.path) and ref.path != path:
        return ref.path, "Back to the previous page"
    return "/search", "Back to the search form"


def render_error(request: Request, status: int, message: str, title: str | None = None) -> Response:
    """The one place an error becomes a response."""
    if request.url.path.startswith("/api/"):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message, "status": status}, status, headers=headers)
    if status == 401:
        nxt = quote(request.url.path)
        return RedirectResponse(f"/login?next={nxt}", 303)
    templates = request.app.state.web.templates
    return templates.TemplateResponse(request, "error.html", {
        "status": status, "title": title_of(status, title), "message": message,
        "back": back_link(request),
        "user": getattr(request.state, "user", None), "csrf": getattr(request.state, "csrf", "")},
        status_code=status)


def install(app: FastAPI) -> None:
    """Register the handlers: WebError, PofError (status 400 or its own), Starlette's HTTP
    errors (404 route, 405), validation errors (422), numbers out of SQLite's range (400), and
    anything else (500, logged)."""

    @app.exception_handler(WebError)
    async def _web(request: Request, exc: WebError) -> Response:
        return render_error(request, exc.status, exc.message, exc.title)

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
