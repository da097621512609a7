"""Sign-in under abuse: device cookies against name lockout, forwarded addresses, password
checks off the event loop, what a failed sign-in leaves in the audit log, and API tokens on
the admin page. On an empty dataset (accounts only), with real argon2 and a real server."""
from __future__ import annotations

import asyncio
import json
import socket
import threading

import httpx
import pytest
from argon2 import PasswordHasher

from pof.casework.accounts import UNKNOWN_USER, Accounts, fast_hasher
from pof.dataset.catalog import Catalog

from .webkit import PASSWORD, USERS, Session, TestClient


def _config(**kw):
    from pof.web.state import WebConfig
    kw.setdefault("hasher", fast_hasher())
    return WebConfig(**kw)


@pytest.fixture()
def ds(tmp_path):
    ds = tmp_path / "ds"
    with Catalog(ds, create=True) as cat:
        acc = Accounts(cat.db, fast_hasher())
        for name, role in USERS.items():
            acc.add(name, role, PASSWORD)
    return ds


def _client(app, ip: str, **kw) -> TestClient:
    return TestClient(app, client=(ip, 40000), follow_redirects=False, **kw)


def _login(client, name: str, password: str, **kw):
    csrf = client.get("/login").cookies.get("pof_login_csrf")
    return client.post("/login", data={"csrf": csrf, "name": name, "password": password}, **kw)


def _audit(ds) -> list[tuple]:
    with Catalog(ds) as cat:
        return [tuple(r) for r in cat.db.execute("SELECT actor, action, detail FROM audit ORDER BY seq")]


def test_device_cookie_holder_signs_in_while_an_attacker_hammers_the_name(ds):
    from pof.web.app import create_app
    app = create_app(ds, _config(login_rate=(5, 60.0)))
    vera = _client(app, "10.0.0.5")
    assert _login(vera, "vera", PASSWORD).status_code == 303
    assert vera.cookies.get("pof_device", "").startswith("vera:")
    # the attacker rotates addresses, so only the per-name rule can slow them down
    codes = [_login(_client(app, f"10.1.0.{i}"), "vera", "guess number %d" % i).status_code
             for i in range(12)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    blocked = _login(_client(app, "10.1.0.99"), "vera", PASSWORD)       # right password, no device cookie
    assert blocked.status_code == 429 and "wait" in blocked.text
    assert _login(vera, "vera", PASSWORD).status_code == 303            # the real user is not locked out
    # vera's device cookie vouches for vera only
    assert _login(_client(app, "10.1.1.1"), "rita", "wrong wrong wrong").status_code == 401
    cookie = {"pof_device": vera.cookies.get("pof_device")}
    forged = {"pof_device": cookie["pof_device"][:-4] + "0000"}
    assert _login(_client(app, "10.0.0.6", cookies=forged), "vera", PASSWORD).status_code == 429
    # a stolen device cookie gets the same few tries, then is no longer trusted
    thief = _client(app, "10.2.0.1", cookies=cookie)
    codes = [_login(thief, "vera", "guess %d" % i).status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}


def test_failures_under_a_name_add_a_growing_delay_then_are_forgotten():
    from pof.web.auth import FORGET_AFTER, MAX_DELAY, Throttle
    now = [1000.0]
    t = Throttle(free=3, clock=lambda: now[0])
    for _ in range(3):
        assert t.wait("vera") == 0
        t.failed("vera")
    waits = []
    for _ in range(12):
        waits.append(t.wait("vera"))
        now[0] += waits[-1]
        assert t.wait("vera") == 0
        t.failed("vera")
    assert waits[:5] == [1, 2, 4, 8, 16] and waits[-1] == MAX_DELAY
    assert t.wait("other name") == 0
    now[0] += FORGET_AFTER + 1
    assert t.wait("vera") == 0 and t.failures("vera") == 0


def test_forwarded_for_counts_only_from_a_trusted_proxy(ds):
    from pof.web.app import create_app
    spoof = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    plain = create_app(ds, _config())
    r = _login(_client(plain, "10.0.0.7"), "vera", "wrong wrong wrong", headers=spoof)
    assert r.status_code == 401
    assert "Secure" not in r.headers["set-cookie"]
    proxied = create_app(ds, _config(trusted_proxies=("10.0.0.0/24",)))
    hops = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.0.0.8", "X-Forwarded-Proto": "https"}
    r = _login(_client(proxied, "10.0.0.7"), "vera", PASSWORD, headers=hops)
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    _login(_client(proxied, "10.9.9.9"), "vera", "wrong wrong wrong", headers=spoof)   # not a proxy
    ips = [_ip(d) for _, a, d in _audit(ds) if a.startswith("login")]
    assert ips == ["10.0.0.7", "203.0.113.9", "10.9.9.9"]
    # per-address limit: a client cannot dodge it by inventing X-Forwarded-For
    limited = create_app(ds, _config(login_rate=(2, 60.0)))
    c = _client(limited, "10.0.0.20")
    codes = [_login(c, "nobody", "x" * 12, headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
             for i in range(3)]
    assert codes == [401, 401, 429]
    from pof.errors import SettingError
    from pof.web.auth import parse_proxies
    assert parse_proxies("127.0.0.1, 10.0.0.0/8") == ("127.0.0.1/32", "10.0.0.0/8")
    with pytest.raises(SettingError, match="trusted proxy 'proxy.local'"):
        parse_proxies("proxy.local")


def _ip(detail: str) -> str:
    return json.loads(detail)["ip"]


def test_a_failed_sign_in_keeps_only_names_that_exist(ds):
    from pof.web.app import create_app
    app = create_app(ds, _config())
    c = _client(app, "10.0.0.7")
    typed = "my-Secret-Passw0rd"                 # a password typed into the name field
    assert _login(c, typed, "whatever else").status_code == 401
    assert _login(c, "vera", "wrong wrong wrong").status_code == 401
    assert _login(c, "vera", PASSWORD).status_code == 303
    rows = _audit(ds)
    assert [(actor, action) for actor, action, _ in rows] == [
        (UNKNOWN_USER, "login_failed"), ("vera", "login_failed"), ("vera", "login")]
    assert not any(typed.lower() in " ".join(r).lower() for r in rows)


class GatedHasher(PasswordHasher):
    """argon2 (test parameters) whose verifications wait for ``release``, counting how many
    run at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.release = threading.Event()
        self.inside = self.most = 0
        self._lock = threading.Lock()

    def verify(self, hash, password):
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            self.release.wait(60)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.inside -= 1


def _until(condition, tries: int = 1200) -> bool:
    """Poll ``condition`` (every 50 ms, up to ``tries`` times)."""
    ready = threading.Event()
    for _ in range(tries):
        if condition():
            return True
        ready.wait(0.05)
    return condition()


def test_password_checks_run_off_the_event_loop_two_at_a_time(ds):
    import uvicorn

    from pof.web.app import create_app
    hasher = GatedHasher()
    app = create_app(ds, _config(hasher=hasher, login_rate=(100, 60.0)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           proxy_headers=False))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{port}"
    codes: list[int] = []
    logins: list[threading.Thread] = []

    def attempt(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            codes.append(_login(c, "vera", f"wrong password {i}").status_code)

    try:
        assert _until(lambda: server.started)
        with httpx.Client(base_url=base, timeout=10) as c:
            c.get("/login")
        logins += [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in logins:
            t.start()
        gate = lambda: getattr(app.state, "login_parts", (None,))[0]      # noqa: E731
        # two checks are held inside argon2; the other six wait for a slot
        assert _until(lambda: hasher.inside == 2 and gate() is not None and gate().waiting == 6)
        with httpx.Client(base_url=base, timeout=10) as c:
            r = c.get("/static/pof.css")
        assert r.status_code == 200 and hasher.inside == 2 and not hasher.release.is_set()
    finally:
        hasher.release.set()
        for t in logins:
            t.join(60)
        server.should_exit = True
        serving.join(30)
    assert codes == [401] * 8 and hasher.most == 2


def test_the_gate_turns_away_a_flood_beyond_its_queue():
    from pof.web.auth import Gate
    from pof.web.errors import TooMany
    hold = threading.Event()

    async def flood():
        gate = Gate(1, queue=2)
        runs = [asyncio.ensure_future(gate.run(hold.wait, 30)) for _ in range(3)]
        while gate.waiting < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(TooMany, match="busy"):
            await gate.run(hold.wait, 30)
        hold.set()
        return await asyncio.gather(*runs)

    assert asyncio.run(flood()) == [True, True, True]


def test_admin_page_lists_and_revokes_tokens(ds):
    from pof.web.app import create_app
    app = create_app(ds, _config())
    with Catalog(ds) as cat:
        acc = Accounts(cat.db, fast_hasher())
        token = acc.new_token("vera", days=30, label="field laptop")
        other = acc.new_token("rita")
        tid = acc.token_row(token)["id"]
    api = TestClient(app)
    assert api.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    admin = Session(app, ds, "ada")
    page = admin.get("/admin")
    assert page.status_code == 200 and tid in page.text and "field laptop" in page.text
    assert f'action="/admin/tokens/{tid}/revoke"' in page.text
    assert admin.post(f"/admin/tokens/{tid}/revoke", csrf=False).status_code == 403
    assert Session(app, ds, "rita").post(f"/admin/tokens/{tid}/revoke").status_code == 403
    r = admin.post(f"/admin/tokens/{tid}/revoke")
    assert r.status_code == 303 and r.headers["location"] == "/admin#tokens"
    assert api.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert api.get("/api/me", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    assert admin.post("/admin/tokens/feedbeef/revoke").status_code == 404
    assert "revoked" in admin.get("/admin").text
    assert ("ada", "token_revoke") in [(a, b) for a, b, _ in _audit(ds)]
    # and through the API, for an admin token
    with Catalog(ds) as cat:
        admin_token = {"Authorization": f"Bearer {Accounts(cat.db, fast_hasher()).new_token('ada')}"}
    listed = api.get("/api/tokens", headers=admin_token).json()
    assert {t["id"]: t["revoked"] for t in listed}[tid] == 1
    rita_id = next(t["id"] for t in listed if t["user"] == "rita")
    assert api.post(f"/api/tokens/{rita_id}/revoke", headers={"Authorization": f"Bearer {other}"}).status_code == 403
    assert api.post(f"/api/tokens/{rita_id}/revoke", headers=admin_token).json()["revoked"] is True
    assert api.get("/api/me", headers={"Authorization": f"Bearer {other}"}).status_code == 401


def test_a_reset_signs_the_user_out_of_the_web_app(ds):
    from pof.web.app import create_app
    app = create_app(ds, _config())
    vera = _client(app, "10.0.0.5")
    assert _login(vera, "vera", PASSWORD).status_code == 303
    with Catalog(ds) as cat:
        token = Accounts(cat.db, fast_hasher()).new_token("vera")
    assert vera.get("/search").status_code == 200
    with Catalog(ds) as cat:
        Accounts(cat.db, fast_hasher()).add("vera", "viewer", "a brand new password")
    assert vera.get("/search").headers["location"].startswith("/login")
    assert TestClient(app).get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _login(vera, "vera", "a brand new password").status_code == 303


class NiceRecordingHasher(PasswordHasher):
    """A cheap hasher that notes the CPU priority (niceness) of the thread that verifies."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.niceness: list[int] = []

    def verify(self, hash, password):
        import os
        import threading
        self.niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().verify(hash, password)


def test_password_checks_run_at_a_lower_cpu_priority_than_searches(ds):
    """A burst of sign-ins must not take the cores from searches: argon2 runs in threads niced
    by LOGIN_NICE (Linux lets a thread lower its own priority)."""
    import os
    import threading
    from pof.web.app import create_app
    from pof.web.auth import LOGIN_NICE
    hasher = NiceRecordingHasher()
    app = create_app(ds, _config(hasher=hasher))
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with _client(app, "198.51.100.7") as client:
        assert _login(client, "vera", PASSWORD).status_code == 303
        assert _login(client, "nobody-here", PASSWORD).status_code == 401
    assert len(hasher.niceness) == 2
    assert hasher.niceness == [min(19, own + LOGIN_NICE)] * 2
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own     # this thread untouched
