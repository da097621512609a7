"""MobileFace in ONNX Runtime and the fused dlib + MobileFace descriptor, on real Yale faces."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pof.align import _ARCFACE_112, similarity_matrix, transform_points
from pof.embed import create
from pof.embed.dlib_resnet import chip as dlib_chip
from pof.embed.mobileface import DLIB_WEIGHT, MobileFace, chip, five_points
from pof.embed.onnx_resnet import OnnxResNet
from pof.errors import PofError
from pof.load import load_image

YALE = Path(__file__).parent / "data" / "yale"


@pytest.fixture(scope="module")
def faces(pipeline) -> list[tuple[str, np.ndarray, object]]:
    """(person, pixels, largest face) of every Yale test image."""
    out = []
    for f in sorted(YALE.iterdir()):
        pixels = load_image(f).pixels
        found = pipeline.analyze(pixels, with_crops=False)
        out.append((f.name.split(".")[0], pixels, max(found, key=lambda x: x.box[2] * x.box[3])))
    return out


def test_chip_puts_the_face_on_the_arcface_layout(faces):
    _, pixels, face = faces[0]
    c = chip(pixels, face)
    assert c.shape == (112, 112, 3) and c.dtype == np.uint8
    m = similarity_matrix(five_points(face), _ARCFACE_112)
    moved = transform_points(five_points(face), m)
    assert np.abs(moved - _ARCFACE_112).max() < 6.0     # a similarity fit of 5 real points
    assert c[40:100, 30:80].std() > 10                  # a face, not the black border


def test_mobileface_tells_people_apart(faces):
    emb = MobileFace()
    vecs = emb.embed_chips(np.stack([chip(p, f) for _, p, f in faces]))
    assert vecs.shape == (len(faces), 256)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    persons = np.array([p for p, _, _ in faces])
    s = vecs @ vecs.T
    same = s[(persons[:, None] == persons[None, :]) & ~np.eye(len(faces), dtype=bool)]
    diff = s[persons[:, None] != persons[None, :]]
    assert same.mean() > diff.mean() + 0.1
    # every face's nearest other face is of the same person (real Yale faces, 4 lightings)
    np.fill_diagonal(s, -1)
    assert (persons[s.argmax(1)] == persons).mean() >= 0.9


def test_fused_score_is_the_weighted_sum_of_both_cosines(faces):
    fused = create("dlib+mobileface-onnx")
    assert fused.dim == 384
    (_, pa, fa), (_, pb, fb) = faces[0], faces[-1]
    fused.embed(pa, [fa])
    da = fa.descriptor.copy()
    fused.embed(pb, [fb])
    db = fb.descriptor.copy()
    assert da.shape == (384,) and abs(np.linalg.norm(da) - 1) < 1e-5
    dl = OnnxResNet().embed_chips(np.stack([dlib_chip(pa, fa), dlib_chip(pb, fb)]))
    mf = MobileFace().embed_chips(np.stack([chip(pa, fa), chip(pb, fb)]))
    expected = DLIB_WEIGHT * float(dl[0] @ dl[1]) + (1 - DLIB_WEIGHT) * float(mf[0] @ mf[1])
    assert float(da @ db) == pytest.approx(expected, abs=1e-5)
    assert np.allclose(da[:128], math.sqrt(DLIB_WEIGHT) * dl[0], atol=1e-5)


def test_wrong_chips_are_refused():
    with pytest.raises(PofError, match="112"):
        MobileFace().embed_chips(np.zeros((1, 150, 150, 3), np.uint8))


def test_verifier_reference_matches_the_embedder():
    from pof.calibrate import reference_impostors, reference_path
    from pof.verify import Verifier
    assert reference_path("dlib-resnet") == reference_path("dlib-resnet-onnx")
    assert reference_path("dlib+mobileface-onnx") != reference_path("dlib-resnet-onnx")
    for name in ("dlib+mobileface-onnx", "dlib-resnet-onnx"):
        assert len(reference_impostors(name)) > 400_000      # 1,000 people, every pair
    # each backend gets its own threshold at FMR 1e-3 (MobileFace's cosines run lower)
    t_fused = Verifier(1e-3, "dlib+mobileface-onnx").threshold
    t_dlib = Verifier(1e-3, "dlib-resnet-onnx").threshold
    assert 0.8 < t_fused < t_dlib < 0.97
