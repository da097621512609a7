"""What hostile requests cost `pof serve`, and how a normal search fares while they run.

    python -m bench hostile_requests [--searches 8] [--json OUT.json]

Builds a small dataset (pof's demo gallery and Yale subjects 01-04), adds a viewer with an
API token, starts `pof serve` in a subprocess on 127.0.0.1 (TMPDIR pointed at an empty
folder, so spooled uploads can be seen), and then, one attack at a time:

- ``unauth_upload``: a chunked ``POST /api/search`` with no token and a 300 MiB file part,
  sent as fast as the socket takes it until the server answers or closes;
- ``unauth_json``: a chunked 40 MiB JSON body to ``POST /api/identifications/1/confirm`` with
  no token;
- ``zero_png``: four searches by one viewer with an all-zero PNG of 6300 x 6300 pixels (40 MP,
  37 KiB);
- ``logins``: 8 wrong-password sign-ins in parallel;
- ``slow_headers``: 50 connections that send half a request line and then nothing.

For each: the answer (status line) and when it came, the server's resident memory (VmRSS)
before, the largest seen while the attack runs (sampled every 50 ms) and after, the largest
size TMPDIR reached (spooled uploads, named or already deleted), and the median time of a normal token search
(a real photo of an enrolled person, by four other viewers in turn) made while the attack
runs, against its quiet value measured first. Figures go to BENCHMARKS.md; every figure to
bench/results/hostile_requests.json (and ``--json``).
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.harness import DEMO, PASSWORD, parser, save, small_dataset


def add_user(ds: Path, work: Path, name: str, role: str) -> str:
    """A user with a token; returns the token (printed by `pof users add --token`)."""
    pw = work / "pw.txt"
    pw.write_text(PASSWORD + "\n")
    r = subprocess.run([sys.executable, "-m", "pof", "users", "add", str(ds), name, "--role", role,
                        "--password-file", str(pw), "--token"], capture_output=True, text=True,
                       check=True)
    return [w for w in r.stdout.split() if w.startswith("pof_")][-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process (and its children's RSS summed), in MiB."""
    out = {"rss_mib": 0, "peak_mib": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss_mib"] = int(line.split()[1]) // 1024
        elif line.startswith("VmHWM:"):
            out["peak_mib"] = int(line.split()[1]) // 1024
    return out


def dir_bytes(path: Path, pid: int | None = None) -> int:
    """Bytes of the files in ``path``, and of the files there that process ``pid`` holds open
    after deleting them (Python's temporary files have no name while they are used)."""
    total = 0
    for p in path.rglob("*"):
        try:
            total += p.stat().st_size if p.is_file() else 0
        except OSError:
            pass
    if pid is not None:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.readlink(fd).startswith(str(path)) and os.readlink(fd).endswith("(deleted)"):
                    total += fd.stat().st_size
            except OSError:
                pass
    return total


class Server:
    def __init__(self, ds: Path, tmpdir: Path) -> None:
        self.port = free_port()
        env = dict(os.environ, TMPDIR=str(tmpdir))
        self.proc = subprocess.Popen([sys.executable, "-m", "pof", "serve", str(ds), "--port",
                                      str(self.port)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("pof serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def read_status(sock: socket.socket, timeout: float) -> str:
    """The status line of whatever the server answered, or why there is none."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except socket.timeout:
        return "no answer"
    except OSError as exc:
        return f"connection error ({exc.__class__.__name__})"
    return data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed without an answer"


def chunked_attack(port: int, path: str, head: bytes, filler: bytes, total: int,
                   content_type: str, limit_s: float = 60.0) -> dict:
    """Send ``head`` then ``filler`` repeated up to ``total`` bytes as a chunked body, with no
    token, until the server answers (or closes); report what was sent and what came back."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
    t0, sent, answer = time.perf_counter(), 0, None
    sock.setblocking(False)
    chunk = head
    try:
        while sent < total and time.perf_counter() - t0 < limit_s:
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            view = memoryview(frame)
            while view:
                try:
                    n = sock.send(view)
                    view = view[n:]
                except BlockingIOError:
                    try:
                        peek = sock.recv(4096, socket.MSG_PEEK)
                    except BlockingIOError:
                        peek = None
                    if peek is not None:
                        raise StopIteration
                    time.sleep(0.001)
            sent += len(chunk)
            chunk = filler
            try:
                if sock.recv(1, socket.MSG_PEEK) is not None:
                    raise StopIteration
            except BlockingIOError:
                pass
        sock.setblocking(True)
        sock.sendall(b"0\r\n\r\n")
    except (StopIteration, BrokenPipeError, ConnectionResetError):
        pass
    sock.setblocking(True)
    answer = read_status(sock, 30)
    took = time.perf_counter() - t0
    sock.close()
    return {"answer": answer, "seconds": round(took, 2), "sent_mib": round(sent / 2**20, 1)}


def search_once(port: int, token: str, photo: bytes) -> tuple[float, int]:
    import httpx
    t0 = time.perf_counter()
    r = httpx.post(f"http://127.0.0.1:{port}/api/search", files={"image": ("probe.jpg", photo, "image/jpeg")},
                   headers={"Authorization": f"Bearer {token}"}, timeout=120)
    return time.perf_counter() - t0, r.status_code


def searches_during(port: int, token, photo: bytes, n: int, attack) -> tuple[dict, list[float]]:
    """Run ``attack()`` in a thread while ``n`` normal searches go one after another."""
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(attack()))
    t.start()
    times = []
    for _ in range(n):
        took, status = search_once(port, token(), photo)
        if status == 200:
            times.append(took)
        if not t.is_alive():
            break
    t.join()
    return result, times


def zero_png() -> bytes:
    import numpy as np
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.zeros((6300, 6300), np.uint8)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def record(rows: dict, name: str, attack, pid: int, port: int, token, photo: bytes, tmpdir: Path,
           searches: int, quiet_s: float) -> None:
    """Run ``attack`` while normal searches go on; the largest RSS and TMPDIR size seen while it
    runs (sampled every 50 ms), the RSS before and after, and the searches' median time."""
    before = proc_status(pid)
    stop, top = threading.Event(), {"rss": 0, "tmp": 0}

    def watch():
        while not stop.is_set():
            top["rss"] = max(top["rss"], proc_status(pid)["rss_mib"])
            top["tmp"] = max(top["tmp"], dir_bytes(tmpdir, pid))
            time.sleep(0.05)
    watcher = threading.Thread(target=watch)
    watcher.start()
    res, times = searches_during(port, token, photo, searches, attack)
    stop.set()
    watcher.join()
    after = proc_status(pid)
    med = statistics.median(times) if times else float("nan")
    rows[name] = {**res, "rss_before_mib": before["rss_mib"], "rss_after_mib": after["rss_mib"],
                  "rss_max_mib": top["rss"], "tmp_max_bytes": top["tmp"],
                  "searches_ok": len(times), "search_median_s": round(med, 3),
                  "slowdown": round(med / quiet_s, 2)}
    print(name, json.dumps(rows[name]), flush=True)


def attacks(port: int, attacker: str) -> dict:
    """The hostile requests, in order: name -> a function that makes them and says how the
    server answered."""
    import httpx
    boundary = "pofbench"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()
    png = zero_png()

    def zero_searches():
        statuses = []
        t0 = time.perf_counter()
        for _ in range(4):
            r = httpx.post(f"http://127.0.0.1:{port}/api/search",
                           files={"image": ("zero.png", png, "image/png")},
                           headers={"Authorization": f"Bearer {attacker}"}, timeout=300)
            statuses.append(r.status_code)
        return {"answer": " ".join(map(str, statuses)), "seconds": round(time.perf_counter() - t0, 2),
                "png_kib": len(png) // 1024}

    def logins():
        def one(_):
            s = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            page = s.get("/login")
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
            return s.post("/login", data={"csrf": csrf, "name": "viewer1",
                                          "password": "wrong password!!", "next": "/search"},
                          headers={"Origin": f"http://127.0.0.1:{port}"}).status_code
        from concurrent.futures import ThreadPoolExecutor
        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            statuses = list(ex.map(one, range(8)))
        return {"answer": " ".join(map(str, sorted(statuses))),
                "seconds": round(time.perf_counter() - t0, 2)}

    def static_get_during_logins():
        res: dict = {}
        t = threading.Thread(target=lambda: res.update(logins()))
        t.start()
        worst = 0.0
        while t.is_alive():
            t0 = time.perf_counter()
            httpx.get(f"http://127.0.0.1:{port}/static/pof.css", timeout=60)
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.02)
        t.join()
        res["static_get_worst_s"] = round(worst, 3)
        return res

    def slow_headers():
        socks = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /login HTT")
            socks.append(s)
        t0 = time.perf_counter()
        deadline = t0 + 90
        open_ = len(socks)
        for s in socks:
            s.settimeout(max(0.1, deadline - time.perf_counter()))
            try:
                s.recv(1)
                open_ -= 1                  # closed (or answered) by the server
            except (socket.timeout, OSError):
                pass
            s.close()
        return {"answer": f"{50 - open_} of 50 closed by the server within 90 s",
                "seconds": round(time.perf_counter() - t0, 2)}

    return {
        "unauth_upload": lambda: chunked_attack(
            port, "/api/search", head, b"\0" * 2**20, 300 * 2**20,
            f"multipart/form-data; boundary={boundary}"),
        "unauth_json": lambda: chunked_attack(
            port, "/api/identifications/1/confirm", b'{"evidence_seen": [', b"1," * 2**19,
            40 * 2**20, "application/json"),
        "zero_png": zero_searches,
        "logins": static_get_during_logins,
        "slow_headers": slow_headers,
    }


def table(rows: dict) -> str:
    lines = ["| request | answer | after (s) | sent (MiB) | RSS before -> max -> after (MiB) | "
             "TMPDIR max (MiB) | search median (s) | x quiet |",
             "|---|---|---|---|---|---|---|---|",
             f"| none (quiet) | | | | {rows['quiet']['rss_mib']} | | "
             f"{rows['quiet']['search_median_s']} | 1 |"]
    for name, r in rows.items():
        if name == "quiet":
            continue
        extra = f" (static GET worst {r['static_get_worst_s']} s)" if "static_get_worst_s" in r else ""
        lines.append(f"| {name} | {r.get('answer', '')}{extra} | {r.get('seconds', '')} | {r.get('sent_mib', '')} | "
                     f"{r['rss_before_mib']} -> {r['rss_max_mib']} -> {r['rss_after_mib']} | "
                     f"{r['tmp_max_bytes'] / 2**20:.1f} | "
                     f"{r['search_median_s']} | {r['slowdown']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--searches", type=int, default=8, help="normal searches per measurement")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pof-hostile-"))
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    try:
        ds = small_dataset(work, command_line=True)
        # normal searches rotate over four viewers (each stays under the per-user search rate);
        # the photo attack comes from a fifth
        tokens = [add_user(ds, work, f"viewer{i}", "viewer") for i in range(1, 5)]
        attacker = add_user(ds, work, "mallory", "viewer")
        turn = iter(range(10**6))

        def token_() -> str:
            return tokens[next(turn) % len(tokens)]
        photo = (DEMO / "probes" / "obama_joint_session_2009.jpg").read_bytes()
        server = Server(ds, tmpdir)
        port, pid = server.port, server.proc.pid
        rows: dict[str, dict] = {}
        try:
            search_once(port, token_(), photo)                  # models load
            quiet = [search_once(port, token_(), photo)[0] for _ in range(args.searches)]
            q = statistics.median(quiet)
            rows["quiet"] = {"search_median_s": round(q, 3), **proc_status(pid)}
            for name, attack in attacks(port, attacker).items():
                record(rows, name, attack, pid, port, token_, photo, tmpdir, args.searches, q)
        finally:
            server.stop()
        print()
        print(table(rows))
        save("hostile_requests", rows, table(rows))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
