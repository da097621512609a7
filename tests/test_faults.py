"""Faults injected into real pof processes: kill -9 of a build and of the web server, a full
disk, a truncated catalog. Nothing committed is lost, no worker outlives its build, and
every damage is reported on one line."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from .conftest import DEMO, YALE, run_pof

ROOT = Path(__file__).parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(ROOT), env.get("PYTHONPATH")) if x)
    return env


def _alive_in_session(sid: int) -> list[tuple[int, int]]:
    """(pid, parent pid) of every live (not zombie) process of session ``sid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append((int(d.name), int(fields[1])))
    return out


def _gone_within(sid: int, seconds: float) -> list[tuple[int, int]]:
    """Wait up to ``seconds`` for session ``sid`` to have no live process; what is left."""
    end = time.monotonic() + seconds
    left = _alive_in_session(sid)
    while left and time.monotonic() < end:
        time.sleep(0.1)
        left = _alive_in_session(sid)
    return left


def _kill_leftovers(pids) -> None:
    for pid, _ in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """PERSON/IMAGE folders: the Yale test faces, their mirror images and the demo gallery,
    26 photos."""
    root = tmp_path_factory.mktemp("faults-src")
    for f in sorted(YALE.iterdir()):
        if f.name == "CREDITS.md":
            continue
        d = root / f.name.split(".")[0]
        d.mkdir(exist_ok=True)
        shutil.copy(f, d / f.name)
        Image.open(f).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(d / f"{f.name}.mirrored.png")
    for f in sorted((DEMO / "gallery").iterdir()):
        d = root / f.stem.split("_")[0]
        d.mkdir(exist_ok=True)
        shutil.copy(f, d / f.name)
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory, sources) -> Path:
    """A clean build of ``sources`` (into a folder named ds, as the others)."""
    out = tmp_path_factory.mktemp("faults-clean") / "ds"
    r = run_pof("build", sources, "--out", out, "--workers", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def _checksums(ds: Path) -> dict[str, str]:
    """CHECKSUMS.sha256 by name, less pof.json (it carries time stamps; compared apart)."""
    lines = (ds / "CHECKSUMS.sha256").read_text().splitlines()
    return {n: h for h, n in (line.split("  ", 1) for line in lines) if n != "pof.json"}


def _catalog_rows(ds: Path) -> dict[str, list]:
    """Every catalog table's rows, less time stamps (the 'added' columns, the meta times)."""
    db = sqlite3.connect(ds / "catalog.sqlite")
    out = {}
    for table in ("persons", "sources", "faces", "attributes", "meta"):
        cur = db.execute(f"SELECT * FROM {table}")
        cols = [c[0] for c in cur.description]
        rows = [tuple(v for c, v in zip(cols, r) if c != "added") for r in cur.fetchall()]
        if table == "meta":
            rows = [r for r in rows if r[0] not in ("created", "exported")]
        out[table] = sorted(rows, key=repr)
    db.close()
    return out


def _card(ds: Path) -> dict:
    card = json.loads((ds / "pof.json").read_text())
    return {k: v for k, v in card.items() if k not in ("created", "updated")}


def assert_same_dataset(ds: Path, clean: Path) -> None:
    assert _checksums(ds) == _checksums(clean)
    assert _catalog_rows(ds) == _catalog_rows(clean)
    assert _card(ds) == _card(clean)
    assert sorted(p.name for p in (ds / "images").iterdir()) == sorted(p.name for p in (clean / "images").iterdir())


def _fsck(ds: Path) -> subprocess.CompletedProcess:
    return run_pof("fsck", ds)


# --- kill -9 of a build ---------------------------------------------------------------------

def _committed(ds: Path) -> int:
    """Sources the build in ``ds`` has committed so far (0 before its catalog exists)."""
    try:
        db = sqlite3.connect(f"file:{ds / 'catalog.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM sources").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("seed", [2, 3, 6])     # killed after 1, 7 and 18 of 24 photos
def test_killed_build_leaves_no_worker_and_resumes_to_a_clean_build(tmp_path, sources, clean, seed):
    # killed once its workers run and it has committed a (seeded) random number of photos
    point = random.Random(seed).randrange(0, 20)
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "pof", "build", str(sources), "--out", str(out), "--workers", "2", "--quiet"]
    build = subprocess.Popen(cmd, start_new_session=True, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list = []
    end = time.monotonic() + 120
    while len(workers) < 2 and build.poll() is None and time.monotonic() < end:
        workers = [p for p in _alive_in_session(build.pid) if p[1] == build.pid]
        time.sleep(0.02)
    assert len(workers) >= 2, "the build's worker processes never started"
    while _committed(out) < point and build.poll() is None:
        time.sleep(0.01)
    assert build.poll() is None, "the build ended before it could be killed"
    os.kill(build.pid, signal.SIGKILL)
    build.wait()
    left = _gone_within(build.pid, 5.0)
    _kill_leftovers(left)
    assert left == [], f"worker processes outlived their killed build: {left}"

    r = run_pof("build", sources, "--out", out, "--workers", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert _fsck(out).returncode == 0
    assert_same_dataset(out, clean)


_SLOW = "tests.test_faults:_sleep_share"


def _sleep_share(share, seconds):
    time.sleep(seconds)
    return list(share)


def test_gpu_workers_end_with_their_killed_parent():
    """The GPU engine's worker processes (pof.runtime.workers), busy with a share, end when the
    process that started them is killed with SIGKILL."""
    code = ("import sys, time\n"
            "from pof.runtime.workers import Workers\n"
            "w = Workers(2)\n"
            f"p = w.run({_SLOW!r}, list(range(4)), 60)\n"
            "print(' '.join(str(x.pid) for x in w._procs), flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(), start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in parent.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.5)                 # the workers are in their share now
        assert len(_alive_in_session(parent.pid)) == 3
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    left = _gone_within(parent.pid, 5.0)
    _kill_leftovers(left)
    assert left == [], f"GPU workers outlived their parent: {left}"


@pytest.mark.parametrize("prctl, watch", [(True, False), (False, True)])
def test_each_guard_alone_ends_an_orphaned_worker(prctl, watch):
    """The kernel's parent-death signal (Linux) and the portable watcher thread each end a
    worker whose parent was killed."""
    if prctl and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    child = ("import os, time\n"
             "from pof.runtime.workers import die_with_parent\n"
             f"die_with_parent(os.getppid(), prctl={prctl}, watch={watch})\n"
             "print('ready', flush=True)\n"
             "time.sleep(120)\n")
    code = ("import subprocess, sys, time\n"
            f"c = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE, text=True)\n"
            "c.stdout.readline()\n"
            "print(c.pid, flush=True)\n"
            "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], env=_env(), start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip().isdigit()
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    left = _gone_within(parent.pid, 5.0)
    _kill_leftovers(left)
    assert left == []


def test_a_worker_whose_parent_died_before_it_started_ends_at_once():
    """The race: the parent is gone before the worker set up its guards."""
    code = ("from pof.runtime.workers import die_with_parent\n"
            "import os, time\n"
            "die_with_parent(os.getppid() + 1, watch=False)\n"     # not its parent any more
            "time.sleep(60)\n")
    r = subprocess.run([sys.executable, "-c", code], env=_env(), timeout=30)
    assert r.returncode == 1


# --- kill -9 of the web server --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_server_during_searches_leaves_a_consistent_dataset(tmp_path, clean):
    import httpx
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    pw = tmp_path / "pw"
    pw.write_text("a long enough password 1\n")
    r = run_pof("users", "add", ds, "ada", "--role", "admin", "--password-file", pw, "--token")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "pof", "serve", str(ds), "--port", str(port)],
                              env=_env(), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    photo = (YALE / "subject01.glasses").read_bytes()
    answered, stop = [], threading.Event()

    def searches():
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                try:
                    got = client.post(f"{url}/api/search", headers={"Authorization": f"Bearer {token}"},
                                      files={"image": ("probe.png", photo, "image/png")})
                    answered.append(got.status_code)
                except httpx.HTTPError:
                    if answered:
                        return
                    time.sleep(0.2)

    worker = threading.Thread(target=searches)
    try:
        worker.start()
        end = time.monotonic() + 120
        while not answered and time.monotonic() < end:
            time.sleep(0.05)
        assert answered and answered[0] == 200, answered
        time.sleep(random.Random(7).uniform(0.05, 0.3))      # within the next searches
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        stop.set()
        worker.join(timeout=70)
    _kill_leftovers(_gone_within(server.pid, 5.0))
    r = _fsck(ds)
    assert r.returncode == 0, r.stdout + r.stderr
    db = sqlite3.connect(ds / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert run_pof("audit", "verify", ds).returncode == 0


# --- a full disk ----------------------------------------------------------------------------

def test_full_disk_during_a_build(tmp_path, sources, clean):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        out = mnt / "ds"
        r = run_pof("build", sources, "--out", out, "--workers", "2", "--quiet")
        assert r.returncode != 0
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
        lines = [line for line in r.stderr.splitlines() if line.startswith("pof:")]
        assert len(lines) == 1 and "no space left" in lines[0], r.stderr
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        fixed = run_pof("fsck", out, "--repair")
        assert "Traceback" not in fixed.stdout + fixed.stderr
        r = run_pof("build", sources, "--out", out, "--workers", "2", "--quiet")
        assert r.returncode == 0, r.stderr
        assert _fsck(out).returncode == 0
        assert_same_dataset(out, clean)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --- a truncated catalog --------------------------------------------------------------------

def test_truncated_catalog_is_reported_by_every_command(tmp_path, clean, sources):
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    cat = ds / "catalog.sqlite"
    with cat.open("r+b") as fh:
        fh.truncate(cat.stat().st_size // 2)
    probe = tmp_path / "probe.png"
    Image.open(YALE / "subject01.glasses").convert("RGB").save(probe)
    pw = tmp_path / "pw"
    pw.write_text("a long enough password 1\n")
    commands = [("search", ds, probe), ("build", sources, "--out", ds, "--quiet"),
                ("users", "list", ds), ("users", "add", ds, "ada", "--role", "admin", "--password-file", pw),
                ("audit", "verify", ds), ("audit", "show", ds), ("serve", ds, "--port", str(_free_port()))]
    for args in commands:
        r = run_pof(*args)
        assert r.returncode != 0, args
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (args, r.stderr)
        assert "catalog" in r.stderr and "is damaged" in r.stderr, (args, r.stderr)
    r = run_pof("fsck", ds)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "NOT REPAIRABLE: catalog.sqlite" in r.stdout and "pof build" in r.stdout
    r = run_pof("fsck", ds, "--repair", "--json")
    assert r.returncode == 4
    doc = json.loads(r.stdout)
    assert [p["path"] for p in doc["problems"] if not p["repairable"]] == ["catalog.sqlite"]
    assert cat.exists()                # the damaged catalog is left for the user to rescue
