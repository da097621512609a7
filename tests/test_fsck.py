"""pof fsck: a dataset's files checked against CHECKSUMS.sha256 and its catalog; --repair
rebuilds what the catalog and the source photos can rebuild."""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pof.dataset.fsck import fsck

from .conftest import run_pof


def _copy(built: Path, tmp_path: Path) -> Path:
    ds = tmp_path / "dataset"
    shutil.copytree(built, ds)
    return ds


def _crops(ds: Path) -> list[str]:
    return sorted(p.name for p in (ds / "images").iterdir())


def test_a_clean_dataset_is_clean(built, tmp_path):
    ds = _copy(built, tmp_path)
    r = run_pof("fsck", ds)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clean" in r.stdout
    r = run_pof("fsck", ds, "--json")
    assert json.loads(r.stdout) == {"dataset": str(ds), "status": 0, "problems": [], "repaired": []}


def test_problems_are_reported_and_repaired(built, tmp_path):
    ds = _copy(built, tmp_path)
    listed = (ds / "CHECKSUMS.sha256").read_text()
    first, second = _crops(ds)[:2]
    with (ds / "images" / first).open("ab") as fh:          # corrupt crop
        fh.write(b"bad bytes")
    (ds / "images" / second).unlink()                       # missing crop
    (ds / "metadata.csv").write_text("id,person\nxxxx,nobody\n")   # export edited
    (ds / "identities.json").unlink()                       # export missing
    card = json.loads((ds / "pof.json").read_text())
    card["counts"]["images"] = 99
    (ds / "pof.json").write_text(json.dumps(card))          # card that disagrees
    (ds / "notes.txt").write_text("a user's notes\n")        # unknown file
    (ds / "images" / "zzzzzzzz.jpg").write_bytes(b"not a face of this dataset")
    (ds / "images" / "abcdefgh.jpg.tmp").write_bytes(b"half a crop")

    r = run_pof("fsck", ds)
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for name in (f"images/{first}", f"images/{second}", "metadata.csv", "identities.json", "pof.json",
                 "notes.txt", "images/zzzzzzzz.jpg", "images/abcdefgh.jpg.tmp"):
        assert sum(line.startswith(f"{name}: ") for line in lines) == 1, (name, r.stdout)
    assert "NOT REPAIRABLE" not in r.stdout
    doc = json.loads(run_pof("fsck", ds, "--json").stdout)
    assert doc["status"] == 3 and all(p["repairable"] for p in doc["problems"])

    r = run_pof("fsck", ds, "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clean after repair" in r.stdout
    # everything back as built: crops made again from the source photos are the same bytes
    assert (ds / "CHECKSUMS.sha256").read_text().splitlines()[1:] == listed.splitlines()[1:]
    assert _crops(ds) == _crops(built)
    assert (ds / "metadata.csv").read_bytes() == (built / "metadata.csv").read_bytes()
    assert json.loads((ds / "pof.json").read_text())["counts"] == json.loads((built / "pof.json").read_text())["counts"]
    check = subprocess.run(["sha256sum", "-c", "--quiet", "CHECKSUMS.sha256"], cwd=ds, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # nothing deleted: unknown and corrupt files are in lost+found
    lost = ds / "lost+found"
    assert (lost / "notes.txt").read_text() == "a user's notes\n"
    assert (lost / "images" / first).read_bytes().endswith(b"bad bytes")
    assert (lost / "images" / "zzzzzzzz.jpg").exists() and (lost / "images" / "abcdefgh.jpg.tmp").exists()
    assert (lost / "metadata.csv").read_text() == "id,person\nxxxx,nobody\n"
    assert run_pof("fsck", ds).returncode == 0


def test_missing_checksums_and_unlisted_crops_after_an_interrupted_export(built, tmp_path):
    """A build killed after committing photos and before its export: the catalog is ahead of
    the files; --repair brings them level."""
    ds = _copy(built, tmp_path)
    (ds / "CHECKSUMS.sha256").unlink()
    db = sqlite3.connect(ds / "catalog.sqlite")
    gone = db.execute("SELECT id FROM faces ORDER BY id LIMIT 1").fetchone()[0]
    db.execute("DELETE FROM attributes WHERE face_id = ?", (gone,))
    db.execute("DELETE FROM faces WHERE id = ?", (gone,))
    db.commit()
    db.close()
    r = run_pof("fsck", ds)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "CHECKSUMS.sha256: missing" in r.stdout
    assert f"images/{gone}.jpg: no face in the catalog has this file" in r.stdout
    assert "metadata.csv: does not agree with the catalog" in r.stdout
    r = run_pof("fsck", ds, "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(np.load(ds / "descriptors.npy")) == 5
    assert (ds / "lost+found" / "images" / f"{gone}.jpg").exists()


def test_a_crop_whose_source_is_gone_is_not_repairable(tmp_path, gallery_dir):
    src = tmp_path / "src"
    shutil.copytree(gallery_dir, src)
    ds = tmp_path / "dataset"
    assert run_pof("build", src, "--out", ds, "--quiet", "--workers", "1").returncode == 0
    crop = ds / "images" / _crops(ds)[0]
    source = json.loads((ds / "metadata.json").read_text())
    source = next(r["source_path"] for r in source if f"{r['id']}.jpg" == crop.name)
    Path(source).unlink()
    crop.write_bytes(b"broken")
    r = run_pof("fsck", ds)
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"NOT REPAIRABLE: images/{crop.name}: does not match" in r.stdout and "pof build" in r.stdout
    r = run_pof("fsck", ds, "--repair")
    assert r.returncode == 4
    assert crop.read_bytes() == b"broken"          # still flagged, never blessed by a new hash
    assert run_pof("fsck", ds).returncode == 4


def test_a_saved_index_is_checked_and_rebuilt(built, tmp_path, monkeypatch):
    """Where a dataset keeps a FAISS index (large galleries), a damaged one is built again
    and one of other descriptors is moved aside."""
    pytest.importorskip("faiss")
    import faiss

    from pof.dataset import index
    ds = _copy(built, tmp_path)
    monkeypatch.setattr(index, "EXACT_MAX", 2)      # this small gallery counts as large
    (ds / "index").mkdir()
    assert fsck(ds).status == 0                     # not made yet: the first search makes it
    key = sqlite3.connect(ds / "catalog.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'descriptor_key'").fetchone()[0]
    path = index.index_path(ds, key, 6)
    path.write_bytes(b"not an index")
    stale = ds / "index" / "hnsw-centred-0000000000000000-5.faiss"
    stale.write_bytes(b"old")
    result = fsck(ds)
    assert result.status == 3
    assert {p.path for p in result.problems} == {f"index/{path.name}", f"index/{stale.name}"}
    result = fsck(ds, repair=True)
    assert result.status == 0, [p.line() for p in result.problems]
    assert faiss.read_index(str(path)).ntotal == 6
    assert (ds / "lost+found" / "index" / stale.name).exists()


def test_a_folder_that_is_not_a_dataset(tmp_path):
    r = run_pof("fsck", tmp_path)
    assert r.returncode == 2
    assert "no pof dataset here" in r.stderr and "Traceback" not in r.stderr


def test_checksums_naming_files_outside_the_dataset_are_not_followed(built, tmp_path):
    ds = _copy(built, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the dataset's\n")
    with (ds / "CHECKSUMS.sha256").open("a") as fh:
        fh.write(f"{'0' * 64}  ../outside.txt\n{'0' * 64}  {outside}\n")
    r = run_pof("fsck", ds)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "CHECKSUMS.sha256: 2 line(s) are not 'SHA256  NAME'" in r.stdout
    assert "outside.txt" not in r.stdout
    assert run_pof("fsck", ds, "--repair").returncode == 0
    assert outside.read_text() == "not the dataset's\n"
    assert not (ds / "lost+found").exists()
    assert "outside" not in (ds / "CHECKSUMS.sha256").read_text()


def test_exports_are_kept_in_place_when_the_catalog_is_damaged(built, tmp_path):
    ds = _copy(built, tmp_path)
    (ds / "CHECKSUMS.sha256").unlink()
    (ds / "catalog.sqlite").write_bytes(b"this is not a database, but it is long enough" * 4)
    (ds / "stray.txt").write_text("x")
    r = run_pof("fsck", ds, "--repair")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "NOT REPAIRABLE: catalog.sqlite: the catalog" in r.stdout
    assert sorted(p.name for p in (ds / "lost+found").iterdir()) == ["stray.txt"]
    assert (ds / "metadata.csv").exists() and _crops(ds) == _crops(built)


def test_a_listed_file_that_no_build_makes_is_dropped(built, tmp_path):
    ds = _copy(built, tmp_path)
    extra = ds / "extra.txt"
    extra.write_text("listed by hand\n")
    with (ds / "CHECKSUMS.sha256").open("a") as fh:
        fh.write(f"{hashlib.sha256(extra.read_bytes()).hexdigest()}  extra.txt\n")
    r = run_pof("fsck", ds)
    assert r.returncode == 3 and "extra.txt: listed in CHECKSUMS.sha256, but not a file of this dataset" in r.stdout
    assert run_pof("fsck", ds, "--repair").returncode == 0
    assert (ds / "lost+found" / "extra.txt").read_text() == "listed by hand\n"
    assert run_pof("fsck", ds).returncode == 0


def test_repair_waits_for_no_build(built, tmp_path):
    """--repair writes the dataset, so it takes the writer lock: while another process holds
    it (a build), fsck --repair stops at once with the busy status and changes nothing."""
    from pof.dataset.lock import writing
    ds = _copy(built, tmp_path)
    victim = ds / "images" / _crops(ds)[0]
    victim.unlink()
    with writing(ds):
        r = run_pof("fsck", ds, "--repair")
        assert r.returncode == 75 and "being built by PID" in r.stderr, r.stdout + r.stderr
        assert not victim.exists()
    r = run_pof("fsck", ds, "--repair")
    assert r.returncode == 0 and victim.exists(), r.stdout + r.stderr
