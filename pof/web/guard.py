"""The transport guard: hostile requests are refused before they cost memory, disk or time.

``Guard`` is a pure ASGI middleware in front of every route of ``create_app``. For each
request, before any body is read, it

- refuses a cross-site form post: an unsafe method carrying the session cookie whose
  ``Origin`` (or, without one, ``Referer``) is not this server's origin, or that says
  ``Sec-Fetch-Site: cross-site`` (403; the CSRF token of ``auth.page`` stays the first check);
- authenticates: ``/api/`` needs a valid bearer token (401), a page POST other than ``/login``
  a live session cookie (the login redirect); the route dependencies still check the role
  and the CSRF token;
- answers 404 for an integer path id outside SQLite's range (or negative), 400 for such an
  integer query parameter;
- counts the body as it streams (chunked included; a declared ``Content-Length`` is checked
  up front) against the route's limit (``body_limit``) and answers 413 as soon as it is
  passed;
- answers 408 when the client stops sending its body for ``Transport.body_timeout`` seconds.

A refusal is answered in the shapes of ``pof.web.errors`` (JSON under ``/api/``, a page or the
login redirect otherwise) with ``Connection: close`` when a body may still be on its way, so
the rest of it is never read. Every response gets the security headers.

``header_timeout_protocol`` makes uvicorn close a connection whose request line and headers
do not arrive in time (uvicorn has no such limit of its own); ``pof serve`` uses it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.routing import Match

from pof.web.auth import SESSION_COOKIE

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"))
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SQLITE_MAX = 2**63 - 1
PUBLIC_POSTS = frozenset({"/login"})      # page POSTs that need no session
UPLOADS = frozenset({"/api/search", "/search"})                    # one image or clip
MULTI_UPLOADS = frozenset({"/api/unknown/events", "/unknown/upload"})  # up to max_files images, clips
# what an integer path parameter names, for the 404 message
NOUNS = {"ident": "identification", "case_id": "case", "pid": "case photo", "gid": "group",
         "fid": "unknown face", "xid": "exclusion", "n": "face", "k": "frame"}


@dataclass
class Transport:
    """Limits of the transport layer (bytes and seconds). Upload limits derive from
    ``WebConfig`` (``max_upload_bytes``, ``max_files``, ``max_request_bytes``) and the
    setting ``max_video_bytes``."""

    form_bytes: int = 64 * 2**10           # a JSON API body or a plain form
    login_bytes: int = 4 * 2**10           # the sign-in form
    multipart_bytes: int = 64 * 2**10      # a multipart upload's boundaries and text fields
    body_timeout: float = 30.0             # seconds without a byte of a started body -> 408
    header_timeout: float = 10.0           # seconds for a request line and headers (pof serve)


def body_limit(route_path: str, config, transport: Transport) -> int:
    """The most bytes a request body to ``route_path`` (a route's path template) may have."""
    if route_path in UPLOADS:               # a photo or a clip
        limit = max(config.max_upload_bytes, video_bytes()) + transport.multipart_bytes
    elif route_path in MULTI_UPLOADS:       # photos, and room for a clip among them
        limit = config.max_files * (config.max_upload_bytes + transport.multipart_bytes) + video_bytes()
    elif route_path in PUBLIC_POSTS:
        limit = transport.login_bytes
    else:
        limit = transport.form_bytes
    return min(limit, config.max_request_bytes)


def video_bytes() -> int:
    """The largest clip accepted (the setting ``max_video_bytes``)."""
    from pof.settings import value
    return int(value("max_video_bytes"))


def largest_body(config, transport: Transport) -> int:
    """The largest body any route accepts (uploads are held in memory up to this)."""
    return max(body_limit(p, config, transport) for p in (*UPLOADS, *MULTI_UPLOADS))


def keep_uploads_in_memory(limit: int) -> None:
    """Starlette spools a multipart file over ``MultiPartParser.spool_max_size`` to a temporary
    file; the guard bounds every body, so pof keeps uploads (probe photos) in memory."""
    from starlette.formparsers import MultiPartParser
    MultiPartParser.spool_max_size = max(getattr(MultiPartParser, "spool_max_size", 0), limit)


class _Refused(Exception):
    """Raised into the app once the guard has answered for it."""


def _origin(url: str) -> str | None:
    """'https://Host:443/path' -> 'https://host'; None if it is no http(s) origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _own_origin(request: Request) -> str | None:
    """This server's origin as the client sees it: https where the request came over https,
    directly or through a trusted proxy (``WebConfig.trusted_proxies``, X-Forwarded-Proto)."""
    from pof.web.auth import _secure
    scheme = "https" if _secure(request) else request.url.scheme
    return _origin(f"{scheme}://{request.headers.get('host', '')}")


class Guard:
    """The ASGI middleware (``app.add_middleware(Guard, transport=...)``)."""

    def __init__(self, app, transport: Transport | None = None) -> None:
        self.app = app
        self.transport = transport or Transport()
        self._int_params: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._routes: list | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = started = False

        async def send_with_headers(message) -> None:
            nonlocal started
            if answered:
                return                     # the guard has answered; the app's reply is dropped
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                headers = [(k, v) for k, v in headers if k.lower() not in dict(SECURITY_HEADERS)]
                headers.extend(SECURITY_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        async def refuse(status: int, message: str, close: bool = True) -> None:
            nonlocal answered
            if answered or started:
                answered = True
                return
            from pof.web.errors import render_error
            response = render_error(Request(scope), status, message)
            if close:
                response.headers["connection"] = "close"
            await response(scope, _no_body, send_with_headers)
            answered = True

        request = Request(scope)
        has_body = _may_have_body(request)
        app = scope.get("app")
        route, params = self._route(scope, app)
        problem = await self._check(scope, request, app)
        if problem is None:
            problem = self._ids(scope, route, params)
            if problem and request.method in SAFE_METHODS and not request.url.path.startswith("/api/") \
                    and not await _has_session(app.state.web, request):
                problem = 401, "sign in first"     # a page: the login redirect, as for any id
        if problem is not None:
            await refuse(*problem, close=has_body)
            return
        limit = body_limit(getattr(route, "path", request.url.path), app.state.web.config, self.transport)
        seen, done = 0, not has_body
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await refuse(413, _too_large(limit))
            return
        timeout = self.transport.body_timeout

        async def guarded_receive():
            nonlocal seen, done
            if answered:
                raise _Refused
            if done:                       # the body is in: wait for a disconnect, no timeout
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout) if timeout else await receive()
            except asyncio.TimeoutError:
                await refuse(408, f"the request body stopped arriving for {timeout:g} s")
                raise _Refused from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if seen > limit:
                    await refuse(413, _too_large(limit))
                    raise _Refused
            else:
                done = True
            return message

        try:
            await self.app(scope, guarded_receive, send_with_headers)
        except Exception:
            if not answered:
                raise                       # ServerErrorMiddleware answers it (500, logged)

    async def _check(self, scope, request: Request, app) -> tuple[int, str] | None:
        """(status, message) of a refusal before the body, or None."""
        path, method = request.url.path, request.method
        if method not in SAFE_METHODS and request.cookies.get(SESSION_COOKIE):
            problem = _cross_site(request)
            if problem:
                return 403, problem
        state = getattr(getattr(app, "state", None), "web", None)
        if state is not None:
            if path.startswith("/api/"):
                if not await _has_token(state, request):
                    return 401, ("send an API token: Authorization: Bearer <token> (an admin "
                                 "issues tokens with the pof users command)")
            elif method not in SAFE_METHODS and path not in PUBLIC_POSTS:
                if not await _has_session(state, request):
                    return 401, "sign in first"
        return None

    def _route(self, scope, app):
        """(the route a request goes to, its path parameters), or (None, {})."""
        if self._routes is None:
            self._routes = list(leaf_routes(getattr(app, "routes", ())))
        probe = dict(scope)                # matching may annotate the scope: use a copy
        for route in self._routes:
            match, child = route.matches(probe)
            if match is Match.FULL:
                return route, child.get("path_params", {})
        return None, {}

    def _ids(self, scope, route, params) -> tuple[int, str] | None:
        """Integer path ids out of SQLite's range (or negative) -> 404; int queries -> 400."""
        if route is None:
            return None
        in_path, in_query = self._ints(route)
        for name in in_path:
            value = _as_int(params.get(name))
            if value is not None and not 0 <= value <= SQLITE_MAX:
                return 404, f"no such {NOUNS.get(name, name)}: {params[name]}"
        if in_query:
            query = Request(scope).query_params
            for name in in_query:
                value = _as_int(query.get(name))
                if value is not None and abs(value) > SQLITE_MAX:
                    return 400, f"{name}: number out of range"
        return None

    def _ints(self, route) -> tuple[tuple[str, ...], tuple[str, ...]]:
        key = id(route)
        if key not in self._int_params:
            dep = getattr(route, "dependant", None)
            def ints(fields) -> tuple[str, ...]:
                return tuple(f.name for f in fields
                             if getattr(getattr(f, "field_info", None), "annotation", None) in (int, int | None))
            self._int_params[key] = (ints(dep.path_params), ints(dep.query_params)) if dep else ((), ())
        return self._int_params[key]


def leaf_routes(routes):
    """Every route a request can end at: included routers are opened (recent FastAPI keeps
    them whole in ``app.routes``; a router included with a prefix is left as it is)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None and not getattr(getattr(route, "include_context", None), "prefix", ""):
            yield from leaf_routes(inner.routes)
        else:
            yield route


async def _no_body():
    return {"type": "http.request", "body": b"", "more_body": False}


def _too_large(limit: int) -> str:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 2**10} KiB"
    return f"request body over {size}"


def _may_have_body(request: Request) -> bool:
    length = request.headers.get("content-length", "")
    return "transfer-encoding" in request.headers or (length != "" and length != "0")


def _as_int(text) -> int | None:
    if text is None:
        return None
    try:
        return int(str(text))
    except ValueError:
        return None


def _cross_site(request: Request) -> str | None:
    """Why a cookie-carrying unsafe request looks cross-site, or None."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return "this form was sent from another site (Sec-Fetch-Site: cross-site); refused"
    own = _own_origin(request)
    sent = request.headers.get("origin")
    if sent is not None:
        if _origin(sent) != own:
            return (f"this form was sent from another origin ({sent.strip()[:100]}), not "
                    f"{own}; refused")
        return None
    referer = request.headers.get("referer")
    if referer is not None and _origin(referer) != own:
        return f"this form was sent from another page ({_origin(referer) or 'unknown'}), not {own}; refused"
    return None


async def _has_token(state, request: Request) -> bool:
    """Whether the request carries a live API token; its owner is kept on the request's state
    (``token_user``) for ``auth.api()``, so the token is looked up once."""
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return False
    from starlette.concurrency import run_in_threadpool

    def lookup():
        with state.db() as db:
            return state.accounts(db).user_for_token(token.strip())
    request.state.token_user = await run_in_threadpool(lookup)
    return request.state.token_user is not None


async def _has_session(state, request: Request) -> bool:
    """Whether the request carries a live session; (user, CSRF token) is kept on the request's
    state (``session``) for ``auth.page()``, so the session is looked up once."""
    sid = request.cookies.get(SESSION_COOKIE, "")
    if not sid:
        return False
    from starlette.concurrency import run_in_threadpool

    def lookup():
        with state.db() as db:
            return state.accounts(db).session(sid)
    request.state.session = await run_in_threadpool(lookup)
    return request.state.session is not None


def header_timeout_protocol(seconds: float):
    """uvicorn's h11 protocol, closing a connection whose request line and headers are not in
    ``seconds`` after it opens or after the first byte of its next request (with a 408)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol
    import h11

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self._header_timer is None:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                     b"connection: close\r\n\r\n")
                self.transport.close()

    return HeaderTimeoutProtocol
