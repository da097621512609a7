"""Shared helpers of the web tests: one small dataset per session (built once, copied per
module), users of each role, a logged-in client, a composite photo with a bystander."""
from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from pof.casework.accounts import Accounts, fast_hasher
from pof.dataset.catalog import Catalog

from .conftest import DEMO, YALE

with warnings.catch_warnings():      # starlette's notice about httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PASSWORD = "a long test password"
CHROMIUM = "/usr/bin/chromium"          # Debian's; playwright drives it (no browser download)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROLES = ("viewer", "reviewer", "admin")
USERS = {"vera": "viewer", "rita": "reviewer", "rob": "reviewer", "ada": "admin"}
_BUILT: dict[str, Path] = {}


def build_dataset(root: Path) -> Path:
    """Yale subjects 01-03 (normal, happy) and the two demo persons (with agency and rank),
    built once per test session."""
    if "ds" in _BUILT:
        return _BUILT["ds"]
    src = root / "src"
    for s in ("01", "02", "03"):
        (src / "people" / f"subject{s}").mkdir(parents=True)
        for cond in ("normal", "happy"):
            shutil.copy(YALE / f"subject{s}.{cond}", src / "people" / f"subject{s}" / f"subject{s}.{cond}")
    manifest = (DEMO / "manifest.csv").read_text()
    manifest = re.sub(r"(?m)^gallery/", str(DEMO / "gallery") + "/", manifest)
    (src / "demo.csv").write_text(manifest)
    from pof.dataset.build import Builder
    out = root / "dataset"
    report = Builder(out, workers=1).run([str(src / "people"), str(src / "demo.csv")], progress=False)
    assert report.added_faces == 8, report.problems
    _BUILT["ds"] = out
    return out


def copy_dataset(built: Path, dest: Path) -> Path:
    """A fresh copy of the built dataset with the test users added (fast argon2 only here)."""
    shutil.copytree(built, dest)
    with Catalog(dest) as cat:
        acc = Accounts(cat.db, fast_hasher())
        for name, role in USERS.items():
            acc.add(name, role, PASSWORD)
    return dest


def two_face_photo(path: Path) -> Path:
    """subject01 (enrolled, glasses: not in the gallery) beside subject04 (not enrolled)."""
    a = np.asarray(Image.open(YALE / "subject01.glasses").convert("RGB"))
    b = np.asarray(Image.open(YALE / "subject04.normal").convert("RGB"))
    Image.fromarray(np.concatenate([a, b], axis=1)).save(path, "JPEG", quality=95)
    return path


def web_config():
    from pof.web.state import WebConfig
    return WebConfig(hasher=fast_hasher(), login_rate=(1000, 60.0), search_rate=(1000, 60.0))


class Session:
    """A TestClient signed in as one user (session cookie + CSRF token), or anonymous."""

    def __init__(self, app, ds: Path, name: str | None, base_url: str = "http://testserver") -> None:
        self.client = TestClient(app, base_url=base_url, follow_redirects=False)
        self.csrf = ""
        if name:
            with Catalog(ds) as cat:
                sid, self.csrf = Accounts(cat.db, fast_hasher()).new_session(name)
            self.client.cookies.set("pof_session", sid)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, files=None, csrf: bool = True, **kw):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf", self.csrf)
        return self.client.post(url, data=data, files=files, **kw)


def token_for(ds: Path, name: str) -> str:
    with Catalog(ds) as cat:
        return Accounts(cat.db, fast_hasher()).new_token(name)


@contextmanager
def serving(ds: Path) -> Iterator[str]:
    """The web app over ``ds`` served by uvicorn in a thread on a free localhost port; yields
    its base URL."""
    import uvicorn

    from pof.web.app import create_app
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(ds, web_config()), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(400):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "the web app did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Debian's) under playwright."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
