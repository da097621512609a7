"""A dataset is private on disk: its folder 0700, its catalog (password hashes, the audit log,
saved photos) 0600 with its -wal/-shm files, and whatever `pof` writes readable by its owner only."""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat

import pytest

from pof.dataset.catalog import Catalog

from .conftest import DEMO, run_pof
from .webkit import web_config


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _companions(ds):
    """The catalog's -wal, -shm and -journal files that exist now."""
    paths = [ds / f"catalog.sqlite{s}" for s in ("-wal", "-shm", "-journal")]
    return [p for p in paths if p.exists()]


@pytest.fixture()
def open_umask():
    """The usual umask (022), under which files were world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def demo_ds(tmp_path_factory):
    """The demo photos built through the CLI (under umask 022)."""
    old = os.umask(0o022)
    try:
        ds = tmp_path_factory.mktemp("private") / "new" / "ds"
        r = run_pof("build", DEMO / "manifest.csv", "--out", ds, "--quiet")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    return ds


def test_pof_build_writes_a_private_dataset(demo_ds):
    assert _mode(demo_ds) == 0o700
    assert _mode(demo_ds / "catalog.sqlite") == 0o600
    files = [p for p in demo_ds.rglob("*")]
    assert demo_ds / "images" in files and demo_ds / "metadata.csv" in files and len(files) > 10
    loose = {str(p.relative_to(demo_ds)): oct(_mode(p)) for p in files if _mode(p) & 0o077}
    assert not loose, loose


def test_create_app_tightens_an_old_catalog_and_keeps_it_private(demo_ds, tmp_path, open_umask):
    from fastapi.testclient import TestClient

    from pof.web.app import create_app
    ds = tmp_path / "old"
    shutil.copytree(demo_ds, ds)
    writer = sqlite3.connect(ds / "catalog.sqlite")     # a process still holding it, as before
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    writer.commit()
    for p in [ds / "catalog.sqlite", *_companions(ds)]:
        os.chmod(p, 0o644)
    assert len(_companions(ds)) == 2
    app = create_app(ds, web_config())
    assert _mode(ds / "catalog.sqlite") == 0o600
    assert {p.name: _mode(p) for p in _companions(ds)} == {"catalog.sqlite-wal": 0o600,
                                                           "catalog.sqlite-shm": 0o600}
    writer.close()

    fresh = tmp_path / "fresh"
    shutil.copytree(demo_ds, fresh)
    app = create_app(fresh, web_config())
    with Catalog(fresh) as held:        # while the app writes, its -wal and -shm exist
        held.db.execute("SELECT COUNT(*) FROM faces").fetchone()
        c = TestClient(app, follow_redirects=False)
        token = c.get("/login").cookies.get("pof_login_csrf")
        r = c.post("/login", data={"csrf": token, "name": "nobody", "password": "not the password"})
        assert r.status_code == 401, r.text
        assert held.db.execute("SELECT COUNT(*) FROM audit WHERE action = 'login_failed'").fetchone()[0] == 1
        assert len(_companions(fresh)) == 2
        assert {_mode(p) for p in [fresh / "catalog.sqlite", *_companions(fresh)]} == {0o600}
    assert _mode(fresh) == 0o700


def test_catalog_in_a_new_folder_is_private_without_the_cli(tmp_path, open_umask):
    ds = tmp_path / "a" / "b"
    with Catalog(ds, create=True) as cat:
        cat.db.execute("CREATE TABLE t (x)")
        cat.db.commit()
        assert len(_companions(ds)) == 2
        assert {_mode(p) for p in [ds / "catalog.sqlite", *_companions(ds)]} == {0o600}
    assert _mode(ds) == 0o700
    assert _mode(tmp_path / "a") == 0o755       # a parent is made as the umask says


def test_an_existing_folder_is_left_as_it_was(tmp_path, open_umask):
    os.chmod(tmp_path, 0o755)
    with Catalog(tmp_path, create=True):
        pass
    assert _mode(tmp_path) == 0o755 and _mode(tmp_path / "catalog.sqlite") == 0o600


def test_the_writer_lock_makes_a_new_dataset_folder_private(tmp_path, open_umask):
    """A build through the Python API takes the writer lock before the catalog exists: the
    folder it creates is private all the same, and so is the lock file."""
    from pof.dataset.lock import LOCK_NAME, writing
    ds = tmp_path / "new"
    with writing(ds):
        pass
    assert _mode(ds) == 0o700 and _mode(ds / LOCK_NAME) == 0o600
