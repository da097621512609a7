"""Verification: which face of a photo is compared, and mirror-averaged descriptors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pof.stages.embed import with_mirror
from pof.errors import PofError
from pof.stages.load import load_image
from pof.record import Face
from pof.matching.verify import Verifier, subject_or_error
from pof.stages.select import subject

from .conftest import YALE, run_pof


def _face(x, y, w, h) -> Face:
    return Face(index=0, box=(x, y, w, h), det_score=0.99, landmarks5=np.zeros((5, 2), np.float32))


def test_subject_rules():
    big_left, small_centre = _face(0, 100, 200, 200), _face(450, 150, 100, 100)
    faces = [big_left, small_centre]
    assert subject(faces, "largest", 1000, 400) is big_left
    assert subject(faces, "center", 1000, 400) is small_centre
    with pytest.raises(PofError, match="unknown subject rule"):
        subject(faces, "leftmost", 1000, 400)


def test_with_mirror_averages_both_views():
    chips = np.random.default_rng(0).integers(0, 255, (3, 4, 4, 3), dtype=np.uint8)

    def describe(c):   # any map to unit vectors: here the unit mean row of each chip's red channel
        v = c[..., 0].astype(np.float32).mean(axis=1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    want = describe(chips) + describe(chips[:, :, ::-1])
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.allclose(with_mirror(chips, describe), want, atol=1e-6)


def test_mirror_descriptor_is_the_same_for_a_mirrored_photo(pipeline):
    """Averaging a face with its mirror image makes the descriptor (nearly) blind to which way
    the photo is flipped, which plain descriptors are not."""
    pixels = load_image(YALE / "subject01.happy").pixels
    flipped = np.ascontiguousarray(pixels[:, ::-1])
    plain = [max(pipeline.analyze(p, with_crops=False), key=lambda f: f.box[2] * f.box[3]).descriptor
             for p in (pixels, flipped)]
    mirror = [max(pipeline.analyze(p, with_crops=False, mirror=True), key=lambda f: f.box[2] * f.box[3]).descriptor
              for p in (pixels, flipped)]
    for d in plain + mirror:
        assert abs(np.linalg.norm(d) - 1) < 1e-5
    assert 0.9 < float(plain[0] @ mirror[0]) < 0.9999        # close to the plain one, not equal
    assert float(mirror[0] @ mirror[1]) > float(plain[0] @ plain[1])
    assert float(mirror[0] @ mirror[1]) > 0.99


def test_mirror_has_its_own_reference_threshold():
    plain, mirror = Verifier(1e-3), Verifier(1e-3, mirror=True)
    assert len(mirror.impostors) > 400_000 and mirror.mirror
    assert 0.8 < plain.threshold < 0.97 and 0.8 < mirror.threshold < 0.97
    assert plain.threshold != mirror.threshold


def test_subject_or_error_reports_per_image(pipeline, tmp_path):
    face, err = subject_or_error(pipeline, YALE / "subject01.normal", "center", True)
    assert err is None and face.descriptor.shape == (320,)
    bad = tmp_path / "not-an-image.jpg"
    bad.write_text("hello")
    face, err = subject_or_error(pipeline, bad)
    assert face is None and "not-an-image.jpg" in err


def test_verify_face_center_compares_the_central_person(tmp_path):
    """A photo with a larger face at the edge and another person in the centre: --face center
    compares the central one."""
    canvas = Image.new("RGB", (1200, 320), (128, 128, 128))
    edge = Image.open(YALE / "subject02.normal").convert("RGB")
    canvas.paste(edge.resize((int(edge.width * 1.25), int(edge.height * 1.25))), (0, 0))
    canvas.paste(Image.open(YALE / "subject01.normal").convert("RGB"), (440, 40))
    group = tmp_path / "group.png"
    canvas.save(group)
    out = {}
    for rule in ("largest", "center"):
        r = run_pof("verify", group, YALE / "subject01.happy", "--face", rule, "--json")
        assert r.returncode == 0, r.stderr
        out[rule] = json.loads(r.stdout)
    assert out["center"]["same"] is True and out["largest"]["same"] is False
    for rule in ("largest", "center"):      # the group photo's face count and compared box
        assert out[rule]["faces_x"] == 2 and "faces_y" not in out[rule]
    assert out["center"]["box_x"][0] > 440 > out["largest"]["box_x"][0]
    r = run_pof("verify", group, YALE / "subject01.happy", "--face", "center")
    assert "2 faces; compared the center one" in r.stdout, r.stdout
    r = run_pof("verify", group, YALE / "subject01.happy", "--no-mirror", "--face", "center", "--json")
    plain = json.loads(r.stdout)
    assert plain["same"] is True and plain["threshold"] != out["center"]["threshold"]
