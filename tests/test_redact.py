"""Redaction: every face found is obscured, and pof itself no longer finds or matches it."""
from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from pof.redact import obscure, redact_pixels, region

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
    out, boxes, kept = redact_pixels(pipeline, pixels, keep=(0,))
    assert len(boxes) == 1 and kept == [0] and np.array_equal(out, pixels)


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
