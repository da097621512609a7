"""Pure geometry: similarity transforms and the crop template."""
from __future__ import annotations

import numpy as np

from pof.stages import align
from pof.stages.landmarks import five_from_68, hog_like_box


def test_similarity_recovers_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    a = np.radians(25.0)
    m_true = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 12.0], [1.7 * np.sin(a), 1.7 * np.cos(a), -4.0]])
    dst = src @ m_true[:, :2].T + m_true[:, 2]
    m = align.similarity_matrix(src, dst)
    assert np.allclose(m, m_true, atol=1e-9)
    assert np.allclose(align.transform_points(dst, align.invert(m)), src, atol=1e-3)


def test_crop_template_is_centred_and_upright():
    t = align.CROP_TEMPLATE
    assert abs((t[0, 0] + t[1, 0]) / 2 - align.CROP_W / 2) < 1e-3
    assert abs(np.linalg.norm(t[1] - t[0]) - align.CROP_INTEROCULAR) < 1e-3
    assert t[0, 1] < t[2, 1] < t[3, 1]          # eyes above nose above mouth
    assert 0 < t[:, 1].min() and t[:, 1].max() < align.CROP_H


def test_crop_maps_landmarks_onto_template():
    img = np.zeros((400, 400, 3), np.uint8)
    lm = align.CROP_TEMPLATE * 1.5 + [50, 30]
    crop, m = align.crop_face(img, lm)
    assert crop.shape == (align.CROP_H, align.CROP_W, 3)
    assert np.allclose(align.transform_points(lm, m), align.CROP_TEMPLATE, atol=1e-3)


def test_roll_and_hog_box():
    lm = np.array([[100, 100], [160, 100], [130, 135], [105, 165], [155, 165]], np.float32)
    assert align.roll_degrees(lm) == 0.0
    x, y, w, h = hog_like_box(lm)
    assert w == h and x < 100 and x + w > 160 and y < 100 and y + h > 165
    pts68 = np.zeros((68, 2), np.float32)
    pts68[36:42] = [10, 10]
    pts68[42:48] = [30, 10]
    assert np.allclose(five_from_68(pts68)[:2], [[10, 10], [30, 10]])
