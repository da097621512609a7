"""Golden JSON: what ``pof search --json``, ``pof search --same-person --json``, ``pof verify
--json``, ``pof search`` on a video and the web API's ``POST /api/search`` answer, compared
field by field with files in tests/data/golden/.

Inputs are the bundled demo (its dataset built with ``pof build pof/data/demo/manifest.csv``,
as ``pof demo`` builds it) and photos and a clip made from its pictures: a match, a person not
enrolled, a face too small to search, a heavily JPEG-compressed photo (deblocked), a photo
without a face, and a file that is not an image.

What varies from run to run is left out of the comparison: the temporary folder in every
path (written ``<tmp>``) and the web probe's token (``VOLATILE``). The rest is compared
exactly, key order and floats included: the JSON rounds its floats (scores 4 decimals, FMR
and FPIR 3 significant digits, boxes 1 decimal) and they come out the same on every run.

To write the files again after a deliberate change of the JSON (then read the diff before
committing it)::

    POF_GOLDEN_WRITE=1 python -m pytest tests/test_golden.py
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from .conftest import DEMO, noise_image, run_pof
from .videokit import pan, photo, write_clip

GOLDEN = Path(__file__).parent / "data" / "golden"
WRITE = os.environ.get("POF_GOLDEN_WRITE") == "1"
TMP = "<tmp>"
VOLATILE = ("probe",)      # keys of a web answer that differ every run (the probe's token)

OBAMA = DEMO / "probes" / "obama_joint_session_2009.jpg"
COLLINS = DEMO / "probes" / "astronaut_eileen_collins.jpg"
BIDEN = DEMO / "gallery" / "biden_blue_room_2010.jpg"
PORTRAIT = DEMO / "gallery" / "obama_official_portrait_2012.jpg"


def _stable(obj, tmp: str):
    """``obj`` with the temporary folder written ``<tmp>`` in every string."""
    if isinstance(obj, str):
        return obj.replace(tmp, TMP)
    if isinstance(obj, dict):
        return {k: _stable(v, tmp) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stable(v, tmp) for v in obj]
    return obj


def check(name: str, got: list[dict], tmp: Path) -> None:
    """Compare ``got`` (JSON objects, the temporary folder written ``<tmp>``) with
    golden/NAME.json, key order included; write the file instead under POF_GOLDEN_WRITE=1."""
    got = _stable(got, str(tmp))
    path = GOLDEN / f"{name}.json"
    if WRITE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1) + "\n")
    want = json.loads(path.read_text())
    assert json.dumps(got, indent=1) == json.dumps(want, indent=1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("golden")


@pytest.fixture(scope="module")
def demo_ds(root) -> Path:
    """The demo's dataset (two persons, one photo each), built as ``pof demo`` builds it."""
    out = root / "dataset"
    r = run_pof("build", DEMO / "manifest.csv", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def photos(root) -> dict[str, Path]:
    """Probe photos by role, in one folder."""
    d = root / "photos"
    d.mkdir()
    img = Image.open(OBAMA).convert("RGB")
    tiny = d / "tiny.jpg"                 # eyes a few pixels apart: under the quality gate
    img.resize((img.width // 12, img.height // 12), Image.LANCZOS).save(tiny, quality=95)
    blocky = d / "blocky.jpg"             # heavy JPEG blocks: described after deblocking
    Image.open(PORTRAIT).convert("RGB").save(blocky, quality=5)
    bad = d / "bad.jpg"
    bad.write_text("not an image")
    return {"match": shutil.copy(OBAMA, d / OBAMA.name), "stranger": shutil.copy(COLLINS, d / COLLINS.name),
            "enrolled": shutil.copy(BIDEN, d / BIDEN.name), "portrait": shutil.copy(PORTRAIT, d / PORTRAIT.name),
            "tiny": tiny, "blocky": blocky, "noface": noise_image(d / "noise.png"), "bad": bad}


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_search_json(demo_ds, photos, root):
    order = ["match", "stranger", "enrolled", "portrait", "tiny", "blocky", "noface", "bad"]
    empty = root / "empty"
    empty.mkdir()
    r = run_pof("search", demo_ds, *(photos[k] for k in order), empty, "--json")
    assert r.returncode == 3, r.stderr          # the faceless photo, the bad file, the empty folder
    got = _lines(r.stdout)
    assert [x["image"] for x in got] == [str(empty)] + [str(photos[k]) for k in order]
    assert [len(x["faces"]) for x in got] == [0, 1, 1, 1, 2, 1, 1, 0, 0]
    decisions = [f["decision"] for x in got for f in x["faces"]]
    assert {"match", "no_match", "quality_too_low"} <= set(decisions), decisions
    assert any("restored" in f for x in got for f in x["faces"])
    check("search", got, root)


def test_search_same_person_json(demo_ds, photos, root):
    r = run_pof("search", demo_ds, photos["match"], photos["portrait"], photos["tiny"], photos["noface"],
                "--same-person", "--json")
    assert r.returncode == 3, r.stderr          # the faceless photo was not used
    got = _lines(r.stdout)
    assert len(got) == 1 and got[0]["faces"][0]["left_out"] and got[0]["notes"]
    r = run_pof("search", demo_ds, photos["tiny"], "--same-person", "--json")
    assert r.returncode == 0, r.stderr
    got += _lines(r.stdout)
    assert got[1]["faces"][0]["decision"] == "quality_too_low"
    r = run_pof("search", demo_ds, photos["noface"], "--same-person", "--json")
    assert r.returncode == 4, r.stderr          # nothing to search
    got += _lines(r.stdout)
    assert got[2]["faces"] == [] and got[2]["error"]
    check("same_person", got, root)


def test_verify_json(photos, root):
    pairs = root / "pairs.csv"
    pairs.write_text("file_x,file_y\nobama_joint_session_2009.jpg,obama_official_portrait_2012.jpg\n"
                     "obama_joint_session_2009.jpg,biden_blue_room_2010.jpg\n"
                     "obama_joint_session_2009.jpg,missing.jpg\n")
    r = run_pof("verify", "--pairs", pairs, "--root", photos["match"].parent, "--json")
    assert r.returncode == 3, r.stderr          # one pair has a missing file
    got = _lines(r.stdout)
    assert [x.get("same") for x in got] == [True, False, None]
    r = run_pof("verify", photos["match"], photos["portrait"], "--json", "--no-mirror")
    assert r.returncode == 0, r.stderr
    check("verify", got + _lines(r.stdout), root)


def test_video_search_json(demo_ds, root):
    known, unknown, small = photo(str(OBAMA)), photo(str(COLLINS)), photo(str(BIDEN))
    # Obama, a cut to Eileen Collins, a cut to Joe Biden too small to search
    clip = write_clip(root / "clip.mp4", itertools.chain(
        pan(known, 20, scale=200 / known.shape[0]),
        pan(unknown, 20, background=200, scale=200 / unknown.shape[0]),
        pan(small, 15, background=40, scale=1 / 8)))
    r = run_pof("search", demo_ds, clip, "--json")
    assert r.returncode == 0, r.stderr
    got = _lines(r.stdout)
    assert len(got) == 1
    assert {"match", "no_match", "quality_too_low"} <= {t["decision"] for t in got[0]["tracks"]}
    check("video", got, root)


def test_web_api_search_json(demo_ds, photos, root):
    from .webkit import TestClient, copy_dataset, token_for, web_config
    from pof.web.app import create_app
    ds = copy_dataset(demo_ds, root / "web")
    api = TestClient(create_app(ds, web_config()))
    hdr = {"Authorization": f"Bearer {token_for(ds, 'vera')}"}
    got = []
    agency = {"agency": "Executive Office of the President"}
    for key, where in (("match", {}), ("tiny", {}), ("noface", {}), ("portrait", agency)):
        p = photos[key]
        r = api.post("/api/search", files={"image": (p.name, p.read_bytes(), "image/jpeg")},
                     data=where, headers=hdr)
        assert r.status_code == 200, r.text
        got.append(r.json())
    assert got[2]["faces"] == [] and got[2]["error"] and got[3]["where"] == agency
    for answer in got:
        assert all(answer.pop(key) for key in VOLATILE)
    check("api_search", got, root)
