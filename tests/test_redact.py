"""Redaction: every face found is obscured, and pof itself no longer finds or matches it."""
from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from pof.redact import LADDER, obscure, obscure_box, redact_pixels, region

from .conftest import DEMO, YALE, run_pof


def test_region_and_obscure():
    assert region((10, 10, 20, 20), 0.5, (100, 100, 3)) == (0, 0, 40, 40)
    img = np.random.default_rng(0).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    for method in ("pixelate", "blur"):
        out = img.copy()
        obscure(out, (10, 10, 50, 50), method, 1.0)
        assert np.array_equal(out[:10], img[:10])                   # outside untouched
        assert out[10:50, 10:50].std() < img[10:50, 10:50].std() / 2  # inside flattened


def test_keep_leaves_a_face(pipeline):
    pixels = np.asarray(Image.open(YALE / "subject01.normal").convert("RGB"))
    out, rec = redact_pixels(pipeline, pixels, keep=(0,))
    assert len(rec.faces) == 1 and rec.kept == [0] and np.array_equal(out, pixels)
    assert rec.steps == ["kept"] and rec.still_found == 0


def test_redacted_photos_are_not_matched(tmp_path):
    ds = tmp_path / "ds"
    assert run_pof("build", DEMO / "manifest.csv", "--out", ds, "--quiet").returncode == 0
    probe = tmp_path / "obama.jpg"
    shutil.copy(DEMO / "probes" / "obama_joint_session_2009.jpg", probe)
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    for method in ("pixelate", "blur"):
        out = tmp_path / method
        r = run_pof("redact", probe, YALE / "subject02.happy", bad, "--out", out, "--method", method)
        assert r.returncode == 3, r.stderr          # one input unreadable, the rest redacted
        assert "error: " in r.stderr and "bad.png" in r.stderr and "WARNING" not in r.stderr
        red = out / "obama.redacted.jpg"
        assert not Image.open(red).getexif()                       # no metadata carried over
        res = json.loads(run_pof("search", ds, red, "--json").stdout)
        assert all(f["decision"] == "no_match" for f in res["faces"])
        assert res["error"] or max(c["score"] for f in res["faces"] for c in f["candidates"]) < 0.9
    # the unredacted photo is matched, so the test above can fail
    res = json.loads(run_pof("search", ds, probe, "--json").stdout)
    assert res["faces"][0]["decision"] == "match"


def two_suits(path):
    """The demo's two gallery portraits (suits, arms crossed) side by side, 400 px high."""
    a, b = (Image.open(DEMO / "gallery" / n).convert("RGB")
            for n in ("obama_official_portrait_2012.jpg", "biden_blue_room_2010.jpg"))
    a, b = (im.resize((round(im.width * 400 / im.height), 400)) for im in (a, b))
    both = Image.new("RGB", (a.width + b.width, 400))
    both.paste(a, (0, 0))
    both.paste(b, (a.width, 0))
    both.save(path, quality=95)
    return path


def test_two_person_photo_passes_its_own_check_by_default(tmp_path, pipeline):
    from pof.stages import detect
    src = two_suits(tmp_path / "suits.jpg")
    r = run_pof("redact", src, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    faces = [l.strip() for l in r.stdout.splitlines() if l.strip().startswith("face ")]
    assert len(faces) >= 2 and all(": " in f for f in faces)        # each face says what it took
    first = "pixelate x1, margin 0.25"
    assert any(not f.endswith(first) or "found by the check" in f for f in faces), r.stdout
    # a detector of its own, with cut-offs below a search's, finds nothing left in the copy
    low = detect.create("mtcnn", thresholds=(0.5, 0.5, 0.5), min_face_size=20)
    out = np.asarray(Image.open(tmp_path / "out" / "suits.redacted.jpg").convert("RGB"))
    assert low.detect(out) == []
    # and the same detector does find the faces in the photo, so the line above can fail
    assert len(low.detect(np.asarray(Image.open(src).convert("RGB")))) >= 2


def test_escalation_reaches_a_solid_fill():
    img = np.random.default_rng(1).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    out = img.copy()
    obscure_box(out, (30, 30, 40, 40), len(LADDER) - 1, "pixelate", 1.0, 0.25)
    x0, y0, x1, y1 = region((30, 30, 40, 40), LADDER[-1].margin, img.shape)
    assert len(np.unique(out[y0:y1, x0:x1].reshape(-1, 3), axis=0)) == 1
    assert np.array_equal(out[:, :x0], img[:, :x0])
