"""MobileFace in ONNX Runtime, on real Yale faces (the fused dlib + MobileFace descriptor is
tested with dlib + MobileFaceNet's, in test_embed_mobilefacenet.py)."""
from __future__ import annotations

import numpy as np
import pytest

from pof.stages.align import _ARCFACE_112, similarity_matrix, transform_points
from pof.stages.embed.mobileface import MobileFace, chip, five_points
from pof.errors import PofError


@pytest.fixture(scope="module")
def faces(yale_faces):
    return yale_faces


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


def test_wrong_chips_are_refused():
    with pytest.raises(PofError, match="112"):
        MobileFace().embed_chips(np.zeros((1, 150, 150, 3), np.uint8))


def test_verifier_reference_matches_the_embedder():
    from pof.matching.calibrate import reference_impostors, reference_path
    from pof.matching.verify import Verifier
    assert reference_path("dlib-resnet") == reference_path("dlib-resnet-onnx")
    assert reference_path("dlib+mobileface-onnx") != reference_path("dlib-resnet-onnx")
    for name in ("dlib+mobileface-onnx", "dlib-resnet-onnx"):
        assert len(reference_impostors(name)) > 400_000      # 1,000 people, every pair
    # each backend gets its own threshold at FMR 1e-3 (MobileFace's cosines run lower)
    t_fused = Verifier(1e-3, "dlib+mobileface-onnx").threshold
    t_dlib = Verifier(1e-3, "dlib-resnet-onnx").threshold
    assert 0.8 < t_fused < t_dlib < 0.97
