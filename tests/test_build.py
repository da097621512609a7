"""Building a dataset: the dataset layout (docs/dataset.md), resuming, de-duplication, bad inputs."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pof.dataset.build import Builder, face_id
from pof.dataset.catalog import Catalog

from .conftest import DEMO, YALE, noise_image, run_pof


def test_layout(built):
    for name in ("pof.json", "AGREEMENT.md", "metadata.csv", "metadata.json", "identities.csv",
                 "identities.json", "attributes.csv", "attributes.json", "descriptors.npy",
                 "CHECKSUMS.sha256"):
        assert (built / name).is_file(), name
    meta = list(csv.DictReader((built / "metadata.csv").open()))
    assert len(meta) == 6
    desc = np.load(built / "descriptors.npy")
    assert desc.shape == (6, 320) and desc.dtype == np.float32     # dlib 128 + MobileFaceNet 192
    assert np.allclose(np.linalg.norm(desc, axis=1), 1, atol=1e-5)
    for row in meta:
        assert re.fullmatch(r"[a-z0-9]{8}", row["id"])
        img = Image.open(built / "images" / f"{row['id']}.jpg")
        assert img.size == (200, 280)
        lm = np.array(json.loads(row["crop_landmarks5"]))
        assert lm.shape == (5, 2) and np.all(np.abs(lm[:2].mean(0) - [100, 118]) < 6)
        assert len(json.loads(row["landmarks68"])) == 68
        assert row["source_sha256"] == hashlib.sha256(open(row["source_path"], "rb").read()).hexdigest()
    people = list(csv.DictReader((built / "identities.csv").open()))
    assert {p["person"] for p in people} == {"subject01", "subject02", "subject03"}
    assert all(p["images"] == "2" for p in people)
    card = json.loads((built / "pof.json").read_text())
    assert card["counts"]["images"] == 6 and card["counts"]["persons"] == 3
    assert card["crop"]["width"] == 200 and card["crop"]["height"] == 280
    assert "mtcnn" in card["models"]["detector"]


def test_checksums_verify(built):
    r = subprocess.run(["sha256sum", "-c", "--quiet", "CHECKSUMS.sha256"], cwd=built, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ids_are_deterministic():
    assert face_id("ab" * 32, 0) == face_id("ab" * 32, 0) != face_id("ab" * 32, 1)


def test_rebuild_adds_only_new(tmp_path, gallery_dir):
    out = tmp_path / "ds"
    first = Builder(out).run([str(gallery_dir)], progress=False)
    assert first.added_faces == 6
    again = Builder(out).run([str(gallery_dir)], progress=False)
    assert again.added_faces == 0 and again.counts["already in dataset"] == 6
    extra = tmp_path / "more" / "subject04"
    extra.mkdir(parents=True)
    shutil.copy(YALE / "subject04.normal", extra / "a")
    shutil.copy(YALE / "subject01.normal", extra / "copy-of-subject01")   # same bytes, other name
    third = Builder(out).run([str(tmp_path / "more")], progress=False)
    assert third.added_faces == 1 and third.counts["duplicate"] == 1
    with Catalog(out) as cat:
        assert cat.counts()["images"] == 7
    assert json.loads((out / "pof.json").read_text())["version"] == "0.2.0"


def test_interrupted_build_resumes(tmp_path, gallery_dir, monkeypatch):
    out = tmp_path / "ds"
    b = Builder(out, workers=1)          # in-process, so the patched analyze is the one used
    calls = {"n": 0}
    real = b.pipeline.analyze

    def flaky(pixels, with_crops=True, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(pixels, with_crops, **kw)

    monkeypatch.setattr(b.pipeline, "analyze", flaky)
    with pytest.raises(KeyboardInterrupt):
        b.run([str(gallery_dir)], progress=False)
    with Catalog(out) as cat:
        assert cat.counts()["images"] == 3      # the three committed before the stop
    report = Builder(out).run([str(gallery_dir)], progress=False)
    assert report.added_faces == 3 and report.counts["already in dataset"] == 3
    with Catalog(out) as cat:
        assert cat.counts()["images"] == 6
        ids = [r["id"] for r in cat.faces()]
    assert len(set(ids)) == 6
    assert len(list((out / "images").glob("*.jpg"))) == 6
    assert not list(out.rglob("*.tmp"))


def test_bad_inputs_reported_per_file(tmp_path):
    src = tmp_path / "src" / "subject01"
    src.mkdir(parents=True)
    shutil.copy(YALE / "subject01.normal", src / "good")
    (src / "notes.jpg").write_text("not an image")
    data = (YALE / "subject01.happy").read_bytes()
    (src / "cut.gif").write_bytes(data[: len(data) // 3])
    noise_image(src / "noise.png")
    Image.open(YALE / "subject01.glasses").convert("CMYK").save(src / "cmyk.tif")
    r = run_pof("build", tmp_path / "src", "--out", tmp_path / "ds", "--quiet")
    assert r.returncode == 3, r.stderr          # some inputs failed, the rest was built
    assert "Traceback" not in r.stderr
    assert "not an image" in r.stderr and "noise.png: no face found" in r.stderr
    assert "cut.gif" in r.stderr
    assert "2 faces from 2 new images" in r.stdout


def test_manifest_with_provenance(tmp_path):
    out = tmp_path / "ds"
    r = run_pof("build", DEMO / "manifest.csv", "--out", out, "--quiet", "--legal-basis", "public interest journalism")
    assert r.returncode == 0, r.stderr
    ids = {p["person"]: p for p in json.loads((out / "identities.json").read_text())}
    assert ids["Barack_Obama"]["name"] == "Barack Obama" and ids["Barack_Obama"]["rank"] == "President"
    meta = json.loads((out / "metadata.json").read_text())
    prov = meta[0]["provenance"]
    assert prov["licence"].startswith("public domain") and prov["legal_basis"] == "public interest journalism"
    assert prov["source_url"].startswith("https://")


def test_other_models_refused(tmp_path, gallery_dir):
    out = tmp_path / "ds"
    Builder(out).run([str(gallery_dir / "subject01")], progress=False)
    r = run_pof("build", gallery_dir, "--out", out, "--detector", "hog", "--quiet")
    assert r.returncode == 2 and "other models" in r.stderr and "Traceback" not in r.stderr


def test_workers_give_same_result(tmp_path, gallery_dir):
    """Worker processes (which JPEG-encode the crops) and an in-process build give the same
    dataset: descriptors, metadata and crop files."""
    out, here = tmp_path / "ds", tmp_path / "here"
    r = run_pof("build", gallery_dir, "--out", out, "--workers", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    Builder(here, workers=1).run([str(gallery_dir)], progress=False)
    a, b = np.load(out / "descriptors.npy"), np.load(here / "descriptors.npy")
    assert np.allclose(a, b, atol=1e-5)
    assert (out / "metadata.json").read_bytes() == (here / "metadata.json").read_bytes()
    crops = sorted(p.name for p in (here / "images").glob("*.jpg"))
    assert len(crops) == 6 and crops == sorted(p.name for p in (out / "images").glob("*.jpg"))
    assert all((out / "images" / n).read_bytes() == (here / "images" / n).read_bytes() for n in crops)


def test_outcome_carries_jpeg_crops(gallery_dir, pipeline):
    """What a worker sends back holds each kept face's crop as JPEG bytes, not as an array."""
    import pickle

    from pof.dataset.build import _analyze
    from pof.dataset.sources import Item
    path = gallery_dir / "subject01" / "subject01.normal"
    data = path.read_bytes()
    o = _analyze(pipeline, Item(str(path), "subject01"), data, hashlib.sha256(data).hexdigest())
    assert o.status == "added" and len(o.jpegs) == len(o.faces) == 1
    assert o.faces[0].crop is None and o.jpegs[0][:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(o.jpegs[0])).size == (200, 280)
    assert len(pickle.dumps(o)) < 60_000


def test_manifest_urls_are_downloaded(tmp_path):
    """An explicit image URL in a manifest is fetched (from a server on loopback here)."""
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(YALE / "subject02.normal", served / "s2.gif")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        manifest = tmp_path / "m.csv"
        manifest.write_text(f"url,person,licence\n{base}/s2.gif,subject02,test\n{base}/missing.gif,subject09,test\n")
        report = Builder(tmp_path / "ds").run([str(manifest)], progress=False)
    finally:
        httpd.shutdown()
    assert report.added_faces == 1 and report.counts["error"] == 1
    assert any("download failed" in reason for _, _, reason in report.problems)
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    assert meta[0]["provenance"]["source_url"].endswith("/s2.gif")


def _face(x, y, w, h):
    from pof.record import Face
    return Face(index=0, box=(x, y, w, h), det_score=1.0, landmarks5=np.zeros((5, 2), np.float32))


def test_named_photo_face_choice():
    """A named photo enrols its largest face unless another could as well be the person."""
    from pof.dataset.build import _pick_named_face
    alone = _face(100, 100, 80, 100)
    assert _pick_named_face([alone], 400, 300) == ([alone], "added", "")
    # a small face in the background, off to the side: the large central one is enrolled
    big, small = _face(150, 100, 100, 120), _face(0, 0, 30, 40)
    kept, status, note = _pick_named_face([small, big], 400, 300)
    assert kept == [big] and status == "added" and "enrolled the largest" in note
    # two faces of similar size: refused
    kept, status, reason = _pick_named_face([_face(0, 50, 100, 120), _face(250, 50, 90, 110)], 400, 300)
    assert kept == [] and status == "error" and "similar size" in reason
    # a larger face at the edge and a sizeable one at the centre (LFW's Laura_Bush_0032):
    # the named person is likely the central one, so the photo is refused, not misenrolled
    edge, centre = _face(280, 50, 120, 150), _face(150, 90, 85, 105)
    kept, status, reason = _pick_named_face([edge, centre], 400, 300)
    assert kept == [] and status == "error" and "nearest the centre" in reason
    # the same layout with a tiny central face (a bystander far behind): the largest is kept
    kept, status, _ = _pick_named_face([edge, _face(190, 140, 25, 30)], 400, 300)
    assert kept == [edge] and status == "added"


def test_build_refuses_off_centre_largest_face(tmp_path):
    """End to end: a real photo whose larger face is at the edge is reported, not enrolled."""
    def face(name, scale):
        im = Image.open(YALE / name).convert("RGB")
        return im.resize((int(im.width * scale), int(im.height * scale)))

    big, small = face("subject03.happy", 1.6), face("subject01.happy", 1.0)
    photo = Image.new("RGB", (1000, 500), (128, 128, 128))
    photo.paste(big, (0, 50))
    photo.paste(small, ((1000 - small.width) // 2, (500 - small.height) // 2))
    (tmp_path / "src" / "s1").mkdir(parents=True)
    photo.save(tmp_path / "src" / "s1" / "two.png")
    Image.open(YALE / "subject01.normal").convert("RGB").save(tmp_path / "src" / "s1" / "one.png")
    report = Builder(tmp_path / "ds", workers=1).run([str(tmp_path / "src")], progress=False)
    assert report.added_faces == 1
    assert [(Path(p).name, s) for p, s, _ in report.problems] == [("two.png", "error")]
    assert "nearest the centre" in report.problems[0][2]


def test_a_named_photo_fills_only_the_face_it_enrols(tmp_path, pipeline, monkeypatch):
    """Which face of a named photo is the person's needs the boxes only: landmarks,
    descriptors and attributes are computed for that face alone, and it comes out the same
    as when every face is filled; a photo with no person enrols (and fills) every face."""
    import numpy as np
    from PIL import Image

    from pof.dataset.build import _analyze
    from pof.dataset.sources import Item

    from .conftest import YALE
    big = Image.open(YALE / "subject01.normal").convert("RGB")
    small = Image.open(YALE / "subject02.normal").convert("RGB").resize((160, 121))
    canvas = Image.new("RGB", (560, 260), (128, 128, 128))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (380, 60))
    path = tmp_path / "two.png"
    canvas.save(path)
    data = path.read_bytes()
    every = pipeline.analyze(np.asarray(canvas))
    assert len(every) == 2
    fitted = []
    fit = pipeline.landmarks.fit
    monkeypatch.setattr(pipeline.landmarks, "fit", lambda px, f: fitted.append(f.index) or fit(px, f))
    named = _analyze(pipeline, Item(str(path), "subject01"), data, "sha")
    assert named.status == "added" and "2 faces, enrolled the largest" in named.reason
    assert len(named.faces) == 1 and len(fitted) == 1
    want = max(every, key=lambda f: f.box[2] * f.box[3])
    assert np.array_equal(named.faces[0].descriptor, want.descriptor)
    assert named.faces[0].attributes == want.attributes
    fitted.clear()
    unnamed = _analyze(pipeline, Item(str(path), None), data, "sha")
    assert len(unnamed.faces) == 2 and len(fitted) == 2


def test_build_refuses_a_folder_of_other_files(tmp_path):
    """A folder that is not a pof dataset is left as it was: nothing replaced, nothing added."""
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "metadata.json").write_text('{"mine": true}\n')
    r = run_pof("build", DEMO / "manifest.csv", "--out", docs, "--quiet", "--workers", "1")
    assert r.returncode == 2, r.stderr
    assert "not a pof dataset" in r.stderr and "metadata.json" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in docs.iterdir()) == ["metadata.json"]
    assert (docs / "metadata.json").read_text() == '{"mine": true}\n'
    empty = tmp_path / "empty"                 # an empty folder is fine
    empty.mkdir()
    terms = tmp_path / "terms.md"
    terms.write_text("# Our terms\n\nResearch use only.\n")
    r = run_pof("build", DEMO / "manifest.csv", "--out", empty, "--quiet", "--workers", "1",
                "--agreement", terms)
    assert r.returncode == 0, r.stderr
    assert "Research use only." in (empty / "AGREEMENT.md").read_text()
    check = subprocess.run(["sha256sum", "-c", "--quiet", "CHECKSUMS.sha256"], cwd=empty,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    r = run_pof("build", DEMO / "manifest.csv", "--out", empty, "--quiet", "--workers", "1")
    assert r.returncode == 0 and "2 already in dataset" in r.stdout     # and so is a dataset
    published = tmp_path / "published"              # a dataset's files without its catalog
    shutil.copytree(empty, published, ignore=shutil.ignore_patterns("catalog.sqlite*", ".pof.lock"))
    before = (published / "metadata.json").read_bytes()
    r = run_pof("build", gallery_dir_one(tmp_path), "--out", published, "--quiet", "--workers", "1")
    assert r.returncode == 2 and "published copy" in r.stderr, r.stderr
    assert (published / "metadata.json").read_bytes() == before
    assert not (published / "catalog.sqlite").exists()


def gallery_dir_one(tmp_path: Path) -> Path:
    """A PERSON/IMAGE folder of one Yale photo."""
    src = tmp_path / "one"
    (src / "subject04").mkdir(parents=True, exist_ok=True)
    shutil.copy(YALE / "subject04.normal", src / "subject04" / "a")
    return src


def test_one_writer_at_a_time(tmp_path):
    """While one process holds a dataset's writer lock a build stops at once (exit 75) and
    names it; a search is not blocked; a lock file left by a dead process is taken over."""
    import os

    from pof.dataset.lock import LOCK_NAME, writing
    ds = tmp_path / "ds"
    with writing(ds):
        assert (ds / LOCK_NAME).read_text().strip() == str(os.getpid())
        r = run_pof("build", DEMO / "manifest.csv", "--out", ds, "--quiet", "--workers", "1")
        assert r.returncode == 75, r.stderr
        assert f"{ds} is being built by PID {os.getpid()}; wait for it to finish" in r.stderr
        assert "Traceback" not in r.stderr and not (ds / "catalog.sqlite").exists()
    (ds / LOCK_NAME).write_text("999999999\n")        # left behind by a process that died
    r = run_pof("build", DEMO / "manifest.csv", "--out", ds, "--quiet", "--workers", "1")
    assert r.returncode == 0, r.stderr
    with writing(ds):
        r = run_pof("search", ds, DEMO / "probes" / "obama_joint_session_2009.jpg", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["faces"][0]["candidates"][0]["person"] == "Barack_Obama"


def test_two_builds_at_once_one_waits_its_turn(tmp_path, gallery_dir):
    """Two real builds into one dataset at the same moment: whichever comes second is told
    the dataset is busy (75) or, if the first was already done, adds nothing; never a crash."""
    import sys
    ds = tmp_path / "ds"
    cmd = [sys.executable, "-m", "pof", "build", str(gallery_dir), "--out", str(ds), "--quiet",
           "--workers", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 75]), results
    assert not any("internal error" in err or "Traceback" in err for _, err in results)
    with Catalog(ds) as cat:
        assert cat.counts()["images"] == 6


def test_loose_files_are_counted_with_the_reason(tmp_path):
    src = tmp_path / "src"
    (src / "Barack_Obama").mkdir(parents=True)
    shutil.copy(DEMO / "gallery" / "obama_official_portrait_2012.jpg", src / "Barack_Obama")
    shutil.copy(DEMO / "gallery" / "biden_blue_room_2010.jpg", src)
    shutil.copy(DEMO / "probes" / "astronaut_eileen_collins.jpg", src)
    r = run_pof("build", src, "--out", tmp_path / "ds", "--quiet", "--workers", "1")
    assert r.returncode == 3, r.stderr
    assert ("2 skipped: no person label (put files in PERSON/ folders or list them in a manifest)"
            in r.stdout), r.stdout
    assert "skipped: " + str(src / "biden_blue_room_2010.jpg") in r.stderr
    assert "1 faces from 1 new images" in r.stdout
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(DEMO / "probes" / "astronaut_eileen_collins.jpg", only)
    bad_manifest = tmp_path / "m.csv"
    bad_manifest.write_text("file,who\nx.jpg,someone\n")
    r = run_pof("build", only, tmp_path / "nope", bad_manifest, "--out", tmp_path / "ds2", "--quiet",
                "--workers", "1")
    assert r.returncode == 4, r.stderr          # every input failed, each with its reason
    assert "1 skipped: no person label" in r.stdout and "2 error" in r.stdout
    assert f"error: {tmp_path / 'nope'}: no such file or folder" in r.stderr
    assert f"error: {bad_manifest}: needs a 'path' or 'url' column" in r.stderr


def test_bad_person_labels_refused_per_row(tmp_path):
    gallery = DEMO / "gallery"
    rows = [("obama_official_portrait_2012.jpg", "Barack_Obama"), ("biden_blue_room_2010.jpg", "../../etc"),
            ("biden_blue_room_2010.jpg", "agency/Joe"), ("biden_blue_room_2010.jpg", "Joe\\Biden"),
            ("biden_blue_room_2010.jpg", "Joe\x07Biden"), ("biden_blue_room_2010.jpg", "J" * 201)]
    man = tmp_path / "m.json"
    man.write_text(json.dumps([{"path": str(gallery / f), "person": p} for f, p in rows]))
    r = run_pof("build", man, "--out", tmp_path / "ds", "--quiet", "--workers", "1")
    assert r.returncode == 3, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 5 and "Traceback" not in r.stderr
    for why in ("contains '/'", "contains '\\'", "control character", "longer than 200"):
        assert any(why in e for e in errors), why
    assert "1 added, 5 error" in r.stdout
    ids = json.loads((tmp_path / "ds" / "identities.json").read_text())
    assert [p["person"] for p in ids] == ["Barack_Obama"]


@pytest.mark.parametrize("label", ["", "  ", "..", "a/b", "a\\b", "a..b", "tab\there", "x" * 201, None, 5])
def test_check_label_refuses(label):
    from pof.errors import PofError
    from pof.dataset.sources import check_label
    with pytest.raises(PofError, match="person label"):
        check_label(label)


def test_check_label_accepts_names():
    from pof.dataset.sources import check_label
    for label in ("Barack_Obama", "José María Aznar", "O'Brien, P. (badge 4411)", "x" * 200):
        assert check_label(label) == label


def test_a_batch_is_analysed_as_its_photos_one_by_one(gallery_dir, pipeline):
    """The build's one analysis step takes a batch of sources (one for the CPU pipeline in
    its worker processes, many for the GPU engine): each outcome is that source's own, in
    order, and a source that cannot be decoded is an error of its own while the others are
    enrolled, the same as when each is analysed alone."""
    from pof.dataset.build import _analyse, _analyze
    from pof.dataset.sources import Item
    paths = [gallery_dir / "subject01" / "subject01.normal", None, gallery_dir / "subject02" / "subject02.happy"]
    jobs = []
    for p in paths:
        data = b"\xff\xd8 not a photo" if p is None else p.read_bytes()
        item = Item(str(p or "broken.jpg"), None if p is None else p.parent.name)
        jobs.append((item, data, hashlib.sha256(data).hexdigest()))
    together = _analyse(pipeline, jobs)
    alone = [_analyze(pipeline, *job) for job in jobs]
    assert [o.status for o in together] == [o.status for o in alone] == ["added", "error", "added"]
    assert together[1].reason == alone[1].reason and together[1].sha256 == jobs[1][2]
    for a, b, job in zip(together, alone, jobs):
        assert a.location == b.location == job[0].location and a.jpegs == b.jpegs
        assert [f.index for f in a.faces] == [f.index for f in b.faces]
        assert all(np.array_equal(x.descriptor, y.descriptor) for x, y in zip(a.faces, b.faces))
