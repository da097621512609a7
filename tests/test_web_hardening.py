"""The transport layer of ``pof serve`` against hostile clients, on a real server process:
bodies read only from a signed-in client and only up to the route's limit, stalled bodies and
headers cut off, impossible ids answered 404, cross-site form posts refused, uploads kept in
memory, connections beyond the limit answered 503."""
from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pof.casework.accounts import Accounts, fast_hasher
from pof.dataset.catalog import Catalog

from .webkit import USERS, build_dataset, copy_dataset, token_for

MiB = 2**20
HUGE = "99999999999999999999999"
TIMEOUT = 1.0            # the server's header and body timeouts in this module
LIMIT = 12               # the server's connection limit in this module
FILE_PART = (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
             b"Content-Type: image/jpeg\r\n\r\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`pof serve` over a small dataset, with short timeouts and TMPDIR in an empty folder."""
    built = build_dataset(tmp_path_factory.mktemp("hardbuild"))
    root = tmp_path_factory.mktemp("hardening")
    ds = copy_dataset(built, root / "ds")
    tmp = root / "tmp"
    tmp.mkdir()
    tokens = {name: token_for(ds, name) for name in USERS}
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp)}
    err = open(root / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "pof", "serve", str(ds), "--port", str(port),
                             "--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT),
                             "--limit-concurrency", str(LIMIT)],
                            stdout=subprocess.DEVNULL, stderr=err, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("pof serve did not answer")
        yield {"ds": ds, "port": port, "base": base, "proc": proc, "tokens": tokens, "tmp": tmp,
               "stderr": root / "stderr.txt"}
    finally:
        proc.terminate()
        proc.wait(10)
        err.close()
    log = (root / "stderr.txt").read_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


def _session(ds: Path, name: str) -> tuple[str, str]:
    with Catalog(ds) as cat:
        return Accounts(cat.db, fast_hasher()).new_session(name)


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server["port"]), timeout=20)
    return sock


def _read_response(sock: socket.socket, wait: float = 20.0) -> bytes:
    """What the server sent until it closed the connection (or ``wait`` passed)."""
    sock.settimeout(wait)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def _status(response: bytes) -> int:
    found = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert found, response[:200]
    return int(found.group(1))


def _stream(server, head: str, total: int, chunk: int = MiB, start: bytes = b"") -> tuple[bytes, int]:
    """Send ``head`` then a chunked body of ``total`` bytes (beginning with ``start``),
    stopping as soon as the server answers or closes; (response, body bytes sent)."""
    sock = _connect(server)
    sent = 0
    try:
        sock.sendall(head.encode())
        if start:
            sock.sendall(b"%x\r\n" % len(start) + start + b"\r\n")
        piece = b"%x\r\n" % chunk + b"7" * chunk + b"\r\n"
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += chunk
        return _read_response(sock), sent
    finally:
        sock.close()


def test_unauthenticated_chunked_upload_is_refused_before_its_body(server):
    pid = server["proc"].pid
    before = _rss_kib(pid)
    head = (f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:{server['port']}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nTransfer-Encoding: chunked\r\n\r\n")
    response, sent = _stream(server, head, 300 * MiB, start=FILE_PART)
    assert _status(response) == 401 and b'"status":401' in response.replace(b" ", b"")
    assert sent < 32 * MiB, f"{sent // MiB} MiB sent before the 401"
    assert _rss_kib(pid) - before < 50 * 1024
    assert httpx.get(f"{server['base']}/login").status_code == 200   # the server goes on


def test_unauthenticated_page_post_is_refused_before_its_body(server):
    head = (f"POST /unknown/upload HTTP/1.1\r\nHost: 127.0.0.1:{server['port']}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nTransfer-Encoding: chunked\r\n\r\n")
    response, sent = _stream(server, head, 300 * MiB, start=FILE_PART)
    assert _status(response) == 303 and b"location: /login" in response.lower()
    assert sent < 32 * MiB


def test_oversize_json_with_a_token_gets_413_early(server):
    pid = server["proc"].pid
    before = _rss_kib(pid)
    head = (f"POST /api/identifications/1/confirm HTTP/1.1\r\nHost: 127.0.0.1:{server['port']}\r\n"
            f"Authorization: Bearer {server['tokens']['rita']}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    response, sent = _stream(server, head, 40 * MiB, chunk=256 * 2**10, start=b'{"note": "')
    assert _status(response) == 413 and b"request body over 64 KiB" in response
    assert sent < 16 * MiB
    assert _rss_kib(pid) - before < 50 * 1024


def test_declared_oversize_body_gets_413_before_it_is_sent(server):
    sock = _connect(server)
    with sock:
        sock.sendall((f"POST /api/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      f"{server['tokens']['vera']}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                      f"Content-Length: {300 * MiB}\r\n\r\n").encode())
        response = _read_response(sock)
    assert _status(response) == 413 and b"request body over 100 MiB" in response   # room for a clip


def test_forms_and_sign_in_are_small(server):
    sid, csrf = _session(server["ds"], "ada")
    r = httpx.post(f"{server['base']}/admin/settings", headers={"Cookie": f"pof_session={sid}"},
                   data={"csrf": csrf, "required_confirmations": "2", "pad": "x" * 100_000})
    assert r.status_code == 413 and "Too large" in r.text and "64 KiB" in r.text
    r = httpx.post(f"{server['base']}/login", data={"name": "ada", "password": "p" * 10_000})
    assert r.status_code == 413 and "4 KiB" in r.text
    r = httpx.post(f"{server['base']}/api/exclusions", headers={"Authorization": f"Bearer {server['tokens']['ada']}"},
                   json={"person": "Nobody_big", "reason": "r" * 100_000})
    assert r.status_code == 413 and r.json() == {"error": "request body over 64 KiB", "status": 413}


def test_a_stalled_body_gets_408_and_the_connection_is_closed(server):
    sock = _connect(server)
    with sock:
        sock.sendall((f"POST /api/identifications/1/confirm HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {server['tokens']['rita']}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"note\": ").encode())
        response = _read_response(sock, wait=10 * TIMEOUT + 10)
        assert _status(response) == 408 and b"stopped arriving" in response
        assert sock.recv(10) == b""                                # closed


HEADS = [(False, b""), (False, b"GET /login HT"), (False, b"GET /login HTTP/1.1\r\nHost: x\r\n"),
         (True, b"GET /login HT"), (True, b"GET /login HTTP/1.1\r\nHost: x\r\n")]


@pytest.mark.parametrize("after_a_request, partial", HEADS,
                         ids=["nothing", "half a request line", "headers without their end",
                              "half a second request line", "second headers without their end"])
def test_a_stalled_request_head_is_closed(server, after_a_request, partial):
    sock = _connect(server)
    with sock:
        if after_a_request:                # the head of the next request on a kept-alive connection
            sock.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status(_read_response(sock)) == 200
        sock.sendall(partial)
        response = _read_response(sock, wait=10 * TIMEOUT + 10)
        assert response == b"" or _status(response) == 408
        sock.settimeout(5)
        assert sock.recv(10) == b""                                # closed, not left open


def test_out_of_range_ids_are_404_on_every_int_route_for_every_role(server):
    from fastapi.routing import APIRoute

    from pof.web.app import create_app
    app = create_app(server["ds"])
    from pof.web.guard import leaf_routes
    routes = [(m, r.path, [p.name for p in r.dependant.path_params if p.field_info.annotation is int])
              for r in leaf_routes(app.routes) if isinstance(r, APIRoute) for m in sorted(r.methods)]
    routes = [r for r in routes if r[2]]
    assert len(routes) >= 10
    checked = 0
    for who in (None, *USERS):
        sid, csrf = _session(server["ds"], who) if who else ("", "")
        with httpx.Client(base_url=server["base"], follow_redirects=False, timeout=30) as c:
            for method, path, ints in routes:
                for bad in (HUGE, "-1" if who else HUGE):
                    url = path
                    for name in re.findall(r"{(\w+)}", path):
                        url = url.replace("{" + name + "}", bad if name in ints else "confirm")
                    api = path.startswith("/api/")
                    headers = {"Authorization": f"Bearer {server['tokens'][who]}"} if api and who else {}
                    if sid and not api:
                        headers["Cookie"] = f"pof_session={sid}"
                    kw = ({"json": {"note": "n", "evidence_seen": ["x"], "person": "p"}} if api else
                          {"data": {"csrf": csrf, "note": "n", "reason": "r"}}) if method == "POST" else {}
                    r = c.request(method, url, headers=headers, **kw)
                    if who is None:
                        assert r.status_code == (401 if api else 303), (method, url, r.text[:300])
                    else:
                        assert r.status_code == 404, (who, method, url, r.status_code, r.text[:300])
                        if api:
                            assert r.json()["status"] == 404 and r.json()["error"].startswith("no such")
                        else:
                            assert "Not found" in r.text and "no such" in r.text
                    assert "Traceback" not in r.text
                    checked += 1
    assert checked >= 5 * len(routes)


def test_huge_numbers_in_queries_forms_and_json_are_400_not_500(server):
    admin = {"Authorization": f"Bearer {server['tokens']['ada']}"}
    r = httpx.get(f"{server['base']}/api/audit", params={"offset": HUGE}, headers=admin)
    assert r.status_code == 400 and "out of range" in r.json()["error"]
    r = httpx.post(f"{server['base']}/api/identifications", headers=admin,
                   json={"photo": int(HUGE), "face": 1, "person": "subject01", "note": "n"})
    assert r.status_code == 400 and r.json()["error"] == "a number in the request is out of range"
    sid, csrf = _session(server["ds"], "ada")
    r = httpx.post(f"{server['base']}/identifications", headers={"Cookie": f"pof_session={sid}"},
                   data={"csrf": csrf, "photo": HUGE, "face": "1", "person": "subject01", "note": "n"})
    assert r.status_code == 400 and "out of range" in r.text and "Traceback" not in r.text


def test_cross_site_cookie_posts_are_refused(server):
    sid, csrf = _session(server["ds"], "ada")
    own = server["base"]
    form = {"csrf": csrf, "required_confirmations": "2"}

    def post(**headers):
        return httpx.post(f"{own}/admin/settings", data=form, follow_redirects=False,
                          headers={"Cookie": f"pof_session={sid}", **headers})
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/form"}, {"Origin": own, "Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"http://127.0.0.1:{server['port'] + 1}"}):
        r = post(**headers)
        assert r.status_code == 403 and ("another origin" in r.text or "another site" in r.text
                                         or "another page" in r.text), (headers, r.text[:300])
    assert post(Origin=own, **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    assert post(Referer=f"{own}/admin").status_code == 303
    assert post().status_code == 303                      # neither: the CSRF token decides
    # a token without the cookie is no cross-site risk
    r = httpx.post(f"{own}/api/exclusions", headers={"Authorization": f"Bearer {server['tokens']['ada']}",
                                                    "Origin": "http://evil.example"},
                   json={"person": "Nobody_cross", "reason": "court order 7"})
    assert r.status_code == 201


def test_a_5_mib_upload_never_touches_the_disk(server, tmp_path):
    """The upload is held in memory: no file of the server's is ever open in its TMPDIR."""
    rng = np.random.default_rng(1)
    photo = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 255, (1400, 1300, 3), dtype=np.uint8)).save(photo, compress_level=0)
    assert photo.stat().st_size > 5 * MiB
    pid, tmp = server["proc"].pid, str(server["tmp"])
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(tmp):
                    seen.add(target)
            time.sleep(0.005)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        r = httpx.post(f"{server['base']}/api/search", timeout=300,
                       headers={"Authorization": f"Bearer {server['tokens']['vera']}"},
                       files={"image": ("big.png", photo.read_bytes(), "image/png")})
    finally:
        done.set()
        watcher.join()
    assert r.status_code == 200 and r.json()["error"] == "no face found", r.text[:300]
    assert not seen and not list(server["tmp"].iterdir())


def test_connections_beyond_the_limit_get_503(server):
    idle = [_connect(server) for _ in range(LIMIT)]
    try:
        time.sleep(0.2)                  # the server has accepted them
        with _connect(server) as sock:
            sock.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
            response = _read_response(sock)
        assert _status(response) == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{server['base']}/login").status_code == 200


def test_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_sign_in_limit(server):
    """Without --trusted-proxies, X-Forwarded-For is the client's word: a client that sends a new
    one with each try is still one address, limited to `login_rate` tries a minute. (Kept last
    in this module: it spends this address's sign-in tries.)"""
    statuses = []
    with httpx.Client(base_url=server["base"], timeout=30) as client:
        for i in range(12):
            page = client.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            r = client.post("/login", data={"csrf": csrf, "name": f"nobody{i}", "password": "x" * 12,
                                            "next": "/search"},
                            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
            statuses.append(r.status_code)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses
