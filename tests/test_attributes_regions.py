"""The regions estimator (hair colour, baldness, facial hair, forehead) on real photos: what it
says of faces whose answer is plain to see, that grayscale photos get no colour-based score,
and that painting hair where it was not moves the right score the right way."""
from __future__ import annotations

import numpy as np
import pytest

from pof.stages.attributes import FaceView
from pof.stages.attributes.pixels import CHROMA_COLOUR
from pof.stages.attributes.regions import NAMES, features, scores

from .conftest import DEMO, YALE

BIDEN = DEMO / "gallery" / "biden_blue_room_2010.jpg"       # white hair, clean-shaven, bare forehead
COLLINS = DEMO / "probes" / "astronaut_eileen_collins.jpg"  # a fringe over the forehead


@pytest.fixture(scope="module")
def faces(pipeline):
    """The largest face of each photo, by file name."""
    out = {}
    for p in (BIDEN, COLLINS, YALE / "subject01.normal", YALE / "subject02.happy"):
        out[p.name] = max(pipeline.analyze_file(p), key=lambda f: f.box[2])
    return out


def test_grayscale_photos_get_no_region_scores(faces):
    for name in ("subject01.normal", "subject02.happy"):
        s = faces[name].attributes
        assert s["Color Photo"] < 0.1 and "Eyes Open" in s      # other estimators still score
        assert not set(NAMES) & set(s), name                     # not estimated, never a guess


def test_plain_cases(faces):
    biden, collins = faces[BIDEN.name].attributes, faces[COLLINS.name].attributes
    assert biden["Gray Hair"] > 0.9 and biden["Black Hair"] < 0.1 and biden["Blond Hair"] < 0.1
    assert biden["Bald"] < 0.5 and biden["No Beard"] > 0.9 and biden["Mustache"] < 0.5
    assert biden["Fully Visible Forehead"] > 0.9
    assert collins["Obstructed Forehead"] > 0.9 and collins["Gray Hair"] < 0.1
    assert collins["No Beard"] > 0.9 and collins["Bald"] < 0.1
    for s in (biden, collins):
        assert set(NAMES) <= set(s) and all(0.0 <= s[n] <= 1.0 for n in NAMES)
        forehead = ("Fully Visible Forehead", "Partially Visible Forehead", "Obstructed Forehead")
        assert abs(sum(s[n] for n in forehead) - 1.0) < 0.01
        assert sum(s[n] for n in ("Black Hair", "Brown Hair", "Blond Hair", "Gray Hair")) <= 1.01


def _paint(crop: np.ndarray, mask: np.ndarray, rgb) -> np.ndarray:
    out = crop.copy()
    out[mask] = rgb
    rng = np.random.default_rng(0)                               # a little texture, like hair
    noise = rng.integers(-12, 13, size=out[mask].shape)
    out[mask] = np.clip(out[mask].astype(int) + noise, 0, 255).astype(np.uint8)
    return out


def test_painted_beard_and_moustache(faces):
    """Grey hair painted over Biden's chin and upper lip: the chin and lip lose the skin's
    chroma, so No Beard falls and Mustache rises."""
    v = FaceView.of(faces[BIDEN.name])
    p = v.points
    yy, xx = np.mgrid[:v.crop.shape[0], :v.crop.shape[1]]
    chin = (yy > p[57, 1]) & (yy < p[8, 1]) & (xx > p[6, 0]) & (xx < p[10, 0])
    lip = (yy > p[33, 1]) & (yy < p[51, 1]) & (xx > p[48, 0]) & (xx < p[54, 0])
    before = scores(features(v.crop, p), v.yaw)
    after = scores(features(_paint(v.crop, chin | lip, (120, 118, 115)), p), v.yaw)
    assert before["No Beard"] > 0.9 and after["No Beard"] < 0.1
    assert before["Mustache"] < 0.5 and after["Mustache"] > 0.9


def test_painted_bald_crown(faces):
    """The top of Collins's head painted with her own forehead-free skin (from under the
    eyes): the crown then matches the face's skin, so Bald rises."""
    v = FaceView.of(faces[COLLINS.name])
    p = v.points
    iod = np.linalg.norm(p[42:48].mean(0) - p[36:42].mean(0))
    skin = np.median(v.crop[int(p[41, 1] + 0.2 * iod):int(p[41, 1] + 0.4 * iod),
                            int(p[36, 0]):int(p[39, 0])].reshape(-1, 3), 0)
    yy, xx = np.mgrid[:v.crop.shape[0], :v.crop.shape[1]]
    top = (yy < min(p[19, 1], p[24, 1]) - 0.1 * iod) & (xx > p[0, 0]) & (xx < p[16, 0])
    crop = v.crop.copy()
    crop[top] = skin.astype(np.uint8)
    assert scores(features(v.crop, p), v.yaw)["Bald"] < 0.1
    after = scores(features(crop, p), v.yaw)
    assert after["Bald"] > 0.9 and after["Fully Visible Forehead"] > 0.9


def test_no_score_for_grayscale_or_turned_head(faces):
    v = FaceView.of(faces[BIDEN.name])
    gray = np.repeat(v.crop.mean(2, keepdims=True), 3, 2).astype(np.uint8)
    f = features(gray, v.points)
    assert f["chroma"] < CHROMA_COLOUR and scores(f, 0.0) == {}
    assert scores(features(v.crop, v.points), yaw=60.0) == {}
