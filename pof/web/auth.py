"""Who is asking: session cookies for pages (with CSRF on every POST), bearer tokens for the
API, a role check on every route, and the login and logout pages.

Use ``Depends(page("reviewer"))`` on a page route and ``Depends(api("reviewer"))`` on an API
route: each returns the ``User`` or raises (401 / 403). A page POST must carry the session's
CSRF token in the form field ``csrf``; the login form carries a pre-session token that must
equal its cookie (double submit).

Sign-in is throttled three ways (``WebConfig.login_rate`` = (n, seconds)):

- per client address: n attempts per window (the address is the direct peer, or the
  X-Forwarded-For hop a trusted proxy reports: ``client_ip``);
- per user name, for browsers without a device cookie of that user: after n failures, each
  further try waits twice as long as the one before (1 s, 2 s, ... up to ``MAX_DELAY``) after
  the latest failure; the count is forgotten ``FORGET_AFTER`` seconds after the last failure;
- a browser that signed in as that user before carries a signed device cookie naming the user;
  it skips the per-name delay, so an attacker hammering a name does not lock its owner out.
  The cookie itself is trusted for n failures only, then the per-name rule applies to it too.

Passwords are checked in a worker thread, at most ``WebConfig.argon2_slots`` at a time; the
rest wait their turn (and past ``BUSY_QUEUE`` waiting, get 429), so the event loop keeps
answering other requests.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from pof.casework import audit
from pof.casework.accounts import RANK, UNKNOWN_USER, User, same
from pof.errors import SettingError
from pof.web.errors import BadRequest, Forbidden, LoginRequired, TooMany

SESSION_COOKIE = "pof_session"
LOGIN_COOKIE = "pof_login_csrf"
DEVICE_COOKIE = "pof_device"
DEVICE_DAYS = 365
MAX_DELAY = 900.0           # longest wait between failed sign-ins under one name, seconds
FORGET_AFTER = 3600.0       # failures under a name are forgotten this long after the last one
BUSY_QUEUE = 32             # sign-ins waiting for a password check before new ones get 429

router = APIRouter()


def parse_proxies(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Trusted proxies from '10.0.0.1, 192.168.0.0/24' (or a list), each checked; SettingError
    names a bad one. For ``WebConfig.trusted_proxies``."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingError(f"trusted proxy {item!r}: give IP addresses or networks "
                               "(e.g. 127.0.0.1, 10.0.0.0/8)") from None
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in parse_proxies(proxies))


def _address(text: str):
    """An IP address from a forwarded hop ('1.2.3.4', '1.2.3.4:80', '[::1]:80'), or None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _from_trusted_proxy(request: Request) -> bool:
    nets = _networks(tuple(request.app.state.web.config.trusted_proxies))
    peer = _address(request.client.host) if request.client else None
    return bool(nets) and peer is not None and any(peer in n for n in nets)


def client_ip(request: Request) -> str:
    """The client's address: the direct peer; or, when the peer is one of
    ``WebConfig.trusted_proxies``, the right-most X-Forwarded-For hop that is not a trusted
    proxy (hops to its left may be made up by the client)."""
    peer = request.client.host if request.client else "unknown"
    if not _from_trusted_proxy(request):
        return peer
    nets = _networks(tuple(request.app.state.web.config.trusted_proxies))
    hops = [h for v in request.headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
    nearest = peer
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:                # not an address: trust the proxy that passed it on
            return nearest
        if not any(addr in n for n in nets):
            return str(addr)
        nearest = str(addr)
    return nearest


def _secure(request: Request) -> bool:
    """https, directly or as a trusted proxy says (X-Forwarded-Proto)."""
    if request.url.scheme == "https":
        return True
    if _from_trusted_proxy(request):
        proto = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        return proto == "https"
    return False


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
        found = getattr(request.state, "session", None)      # looked up by the guard (POSTs)
        if found is None and sid:
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
        user = getattr(request.state, "token_user", None)   # looked up by the guard
        if user is None and kind.lower() == "bearer" and token:
            with state.db() as db:
                user = state.accounts(db).user_for_token(token.strip())
        if user is None:
            raise LoginRequired("send an API token: Authorization: Bearer <token> "
                                "(pof users tokens DATASET NAME --new)")
        request.state.user = user
        return _check_role(user, role)
    return dependency


class Throttle:
    """Failed sign-ins by key (a user name's hash, a device cookie's nonce): after ``free``
    failures each further try waits 1 s, 2 s, 4 s ... (at most MAX_DELAY) after the latest
    one. Holds at most ``size`` keys (the oldest are dropped)."""

    def __init__(self, free: int, size: int = 20000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.size, self.clock = free, size, clock
        self._fails: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: str, now: float) -> tuple[int, float]:
        count, last = self._fails.get(key, (0, 0.0))
        if count and now - last > FORGET_AFTER:
            self._fails.pop(key, None)
            return 0, 0.0
        return count, last

    def failures(self, key: str) -> int:
        with self._lock:
            return self._get(key, self.clock())[0]

    def wait(self, key: str) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            count, last = self._get(key, now)
        if count < self.free:
            return 0.0
        return max(0.0, last + min(2.0 ** (count - self.free), MAX_DELAY) - now)

    def failed(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            count, _ = self._get(key, now)
            self._fails[key] = (count + 1, now)
            self._fails.move_to_end(key)
            while len(self._fails) > self.size:
                self._fails.popitem(last=False)

    def clear(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)


LOGIN_NICE = 10        # how much lower than searches password checks run (Linux thread niceness)


def _lower_priority() -> None:
    """Run this thread, and the threads argon2 starts from it, at a lower CPU priority: a burst
    of sign-ins (each argon2 hash keeps every core busy) then takes the cores only when the
    searches leave them idle. Where the system does not allow it, nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOGIN_NICE)
    except (AttributeError, OSError):
        pass


class Gate:
    """At most ``slots`` password checks at once, each in a worker thread of its own pool (run
    at a lower CPU priority); callers beyond that wait without holding a thread, and past
    ``queue`` waiting get TooMany."""

    def __init__(self, slots: int, queue: int = BUSY_QUEUE) -> None:
        self.slots, self.queue = max(1, slots), queue
        self.waiting = 0
        self._loop = None
        self._sem: asyncio.Semaphore | None = None
        self._pool = ThreadPoolExecutor(self.slots, thread_name_prefix="pof-sign-in",
                                        initializer=_lower_priority)

    async def run(self, fn: Callable, *args):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._sem = loop, asyncio.Semaphore(self.slots)
        sem = self._sem
        if sem.locked() and self.waiting >= self.queue:
            raise TooMany("the server is busy checking sign-ins; try again in a few seconds")
        self.waiting += 1
        try:
            await sem.acquire()
        finally:
            self.waiting -= 1
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
        finally:
            sem.release()


def _login_parts(request: Request) -> tuple[Gate, Throttle, bytes]:
    """The app's password-check gate, sign-in throttle and device-cookie key (made once)."""
    app = request.app.state
    if getattr(app, "login_parts", None) is None:
        web = app.web
        with web.db() as db:
            key = web.accounts(db).key("device_cookie")
        app.login_parts = (Gate(web.config.argon2_slots), Throttle(web.config.login_rate[0]), key)
    return app.login_parts


def _device_sig(key: bytes, name: str, nonce: str) -> str:
    return hmac.new(key, f"{name}:{nonce}".encode(), hashlib.sha256).hexdigest()


def device_cookie(key: bytes, name: str) -> str:
    """A signed device cookie value for user ``name``: NAME:NONCE:SIGNATURE."""
    nonce = secrets.token_urlsafe(12)
    return f"{name}:{nonce}:{_device_sig(key, name, nonce)}"


def _device_nonce(key: bytes, cookie: str, name: str) -> str | None:
    """The nonce of a genuine device cookie of user ``name``, else None."""
    parts = cookie.split(":")
    if len(parts) != 3 or parts[0] != name or not parts[1]:
        return None
    return parts[1] if same(parts[2], _device_sig(key, parts[0], parts[1])) else None


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
    """Check the password (throttled per address, per name and per device cookie, and off the
    event loop); start a session and renew the browser's device cookie."""
    state = request.app.state.web
    form = await request.form()
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same(str(form.get("csrf", "")), expected):
        raise Forbidden("the sign-in form is stale; reload the page and try again")
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    ip = client_ip(request)
    state.limiter.hit(f"login-ip:{ip}", state.config.login_rate, "sign-in attempts")
    if not name or not password:
        raise BadRequest("give your user name and password")
    gate, throttle, key = _login_parts(request)
    nonce = _device_nonce(key, request.cookies.get(DEVICE_COOKIE, ""), name)
    if nonce is not None and throttle.failures(f"device:{nonce}") >= throttle.free:
        nonce = None                     # this device cookie failed too often: no longer trusted
    name_key = "name:" + hashlib.sha256(name.casefold().encode()).hexdigest()
    if nonce is None:
        wait = throttle.wait(name_key)
        if wait > 0:
            raise TooMany(f"too many failed sign-ins under this name; wait {math.ceil(wait)} s "
                          "(a browser that signed in as this user before is not held up)")

    def check() -> tuple[User | None, str | None]:
        with state.db() as db:
            accounts = state.accounts(db)
            user = accounts.check_password(name, password)
            if user is None:
                audit.append(db, name if accounts.exists(name) else UNKNOWN_USER, "login_failed", ip=ip)
                return None, None
            audit.append(db, user.name, "login", ip=ip)
            return user, accounts.new_session(user.name)[0]

    user, sid = await gate.run(check)
    if user is None:
        throttle.failed(f"device:{nonce}" if nonce else name_key)
        token = secrets.token_urlsafe(24)
        resp = state.templates.TemplateResponse(request, "login.html", {
            "user": None, "csrf": token, "next": _safe_next(str(form.get("next", "/search"))),
            "error": "wrong user name or password"}, status_code=401)
        set_cookie(resp, request, LOGIN_COOKIE, token, 1800)
        return resp
    if nonce:
        throttle.clear(f"device:{nonce}")
    else:
        throttle.clear(name_key)
    resp = RedirectResponse(_safe_next(str(form.get("next", "/search"))), 303)
    set_cookie(resp, request, SESSION_COOKIE, sid, 12 * 3600)
    set_cookie(resp, request, DEVICE_COOKIE, device_cookie(key, user.name), DEVICE_DAYS * 86400)
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
