"""Open-set calibration on known score distributions."""
from __future__ import annotations

import numpy as np

from pof.calibrate import MIN_OWN, calibrate, fuse_by_person, impostor_scores


def test_empirical_threshold_meets_target_fpir():
    rng = np.random.default_rng(0)
    imp = rng.normal(0.5, 0.05, 200_000)
    cal = calibrate(imp, persons=10, target_fpir=0.01)
    assert cal.method == "empirical"
    # simulate searches of non-enrolled people: 10 impostor scores each, max over them
    fresh = rng.normal(0.5, 0.05, (50_000, 10)).max(axis=1)
    observed = float((fresh >= cal.threshold).mean())
    assert 0.005 <= observed <= 0.02
    assert abs(cal.fpir() - 0.01) < 0.002


def test_thin_tail_uses_normal_fit_and_upper_bound():
    rng = np.random.default_rng(0)
    imp = rng.normal(0.5, 0.05, MIN_OWN + 50)
    cal = calibrate(imp, persons=100, target_fpir=0.01)
    assert cal.method == "normal tail fit"
    assert cal.threshold > imp.max()
    rate, bound = cal.fmr(cal.threshold + 0.01)
    assert bound and rate == 1 / (len(imp) + 1)


def test_tiny_gallery_pools_reference():
    cal = calibrate(np.array([0.3, 0.4]), persons=2)
    assert "reference" in cal.method and cal.impostor_scores > 100


def test_fusion_and_impostors():
    scores = np.array([[0.9, 0.1, 0.5, 0.7]], np.float32)
    starts = np.array([0, 2])
    assert fuse_by_person(scores, starts, "max").tolist() == [[np.float32(0.9), np.float32(0.7)]]
    assert np.allclose(fuse_by_person(scores, starts, "mean2"), [[0.5, 0.6]])
    d = np.eye(3, dtype=np.float32)
    imp = impostor_scores(d, ["a", "b", "c"])
    assert len(imp) == 6 and imp.max() == 0.0


def test_impostor_scores_chunked_equals_direct(monkeypatch):
    import pof.calibrate as cal
    rng = np.random.default_rng(3)
    d = rng.normal(size=(60, 8)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    people = [f"p{i // 4:02d}" for i in range(60)]
    whole = impostor_scores(d, people)
    monkeypatch.setattr(cal, "CHUNK_CELLS", 100)      # 1 probe row per chunk
    assert np.allclose(impostor_scores(d, people), whole, atol=1e-6)
    assert len(whole) == 60 * 14
