"""Open-set calibration on known score distributions."""
from __future__ import annotations

import numpy as np

from pof.matching.calibrate import MIN_OWN, calibrate, fuse_by_person, impostor_scores


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
    import pof.matching.calibrate as cal
    rng = np.random.default_rng(3)
    d = rng.normal(size=(60, 8)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    people = [f"p{i // 4:02d}" for i in range(60)]
    whole = impostor_scores(d, people)
    monkeypatch.setattr(cal, "CHUNK_CELLS", 100)      # 1 probe row per chunk
    assert np.allclose(impostor_scores(d, people), whole, atol=1e-6)
    assert len(whole) == 60 * 14


def test_template_impostor_scores_leave_the_owner_out():
    from pof.matching.calibrate import template, template_impostor_scores
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 16))
    desc = np.repeat(centres, 3, axis=0) + 0.05 * rng.normal(size=(12, 16))
    desc = (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32)
    persons = [f"p{i}" for i in range(4) for _ in range(3)]
    t = template(desc[:3])
    assert abs(np.linalg.norm(t) - 1) < 1e-6
    imp = template_impostor_scores(desc, persons, k=2, per_person=5)
    # 3 images give only 3 distinct pairs: 4 persons x 3 templates x 3 other persons
    assert len(imp) == 4 * 3 * 3
    assert len(template_impostor_scores(desc, persons, k=2, per_person=2)) == 4 * 2 * 3
    assert np.all(np.diff(imp) >= 0) and imp.max() < 0.9     # own person (~0.99) never counted
    assert len(template_impostor_scores(desc[:3], persons[:3], k=2)) == 0


def _people(rng, n_persons: int, per: int, spread: float = 0.6) -> tuple[np.ndarray, list[str]]:
    """Unit descriptors of n_persons, ``per`` images each, around random centres."""
    centres = rng.normal(size=(n_persons, 32))
    d = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(n_persons * per, 32))
    return (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32), \
        [f"p{i:03d}" for i in range(n_persons) for _ in range(per)]


def test_best_impostor_calibration_holds_on_fresh_people():
    from pof.matching.calibrate import calibrate_gallery
    rng = np.random.default_rng(3)
    desc, persons = _people(rng, 200, 3)       # (tried on 8 seeds: observed 3.7% to 9.0%)
    cal = calibrate_gallery(desc, persons, 0.05, "max")
    assert cal.method.startswith("best impostor") and cal.fpir() == 0.05
    fresh, _ = _people(rng, 4000, 1)                     # people not enrolled
    starts = np.arange(0, len(persons), 3)
    observed = float((fuse_by_person(fresh @ desc.T, starts).max(axis=1) >= cal.threshold).mean())
    assert 0.025 <= observed <= 0.1, observed            # within a factor of 2 of 5%
    assert 0 < cal.fmr_at_threshold < 0.05


def test_small_gallery_keeps_the_per_pair_rule():
    from pof.matching.calibrate import MIN_PERSONS_BEST, calibrate_gallery
    rng = np.random.default_rng(4)
    desc, persons = _people(rng, MIN_PERSONS_BEST - 1, 4)
    cal = calibrate_gallery(desc, persons, 0.01)
    assert not cal.method.startswith("best impostor") and cal.fpir_at_threshold is None


def test_template_fusion_scores_the_mean_descriptor():
    from pof.matching.calibrate import person_scores, person_templates
    rng = np.random.default_rng(5)
    desc, persons = _people(rng, 5, 3)
    starts = np.arange(0, 15, 3)
    t = person_templates(desc, starts)
    assert t.shape == (5, 32) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-6)
    mean0 = desc[:3].mean(axis=0)
    assert np.allclose(t[0], mean0 / np.linalg.norm(mean0), atol=1e-6)
    q = desc[[1, 7]]
    assert np.allclose(person_scores(q, desc, starts, "template"), q @ t.T, atol=1e-6)
    assert np.allclose(person_scores(q, desc, starts, "max"), fuse_by_person(q @ desc.T, starts))
    imp = impostor_scores(desc, persons, "template")
    assert len(imp) == 15 * 4 and imp.max() < person_scores(q, desc, starts, "template").max()


def test_searcher_refuses_an_unknown_fusion():
    import pytest
    from pof.errors import SettingError
    from pof.matching.search import Gallery, Searcher
    rng = np.random.default_rng(6)
    desc, persons = _people(rng, 3, 2)
    g = Gallery.from_arrays(desc, [f"f{i}" for i in range(6)], persons)
    assert Searcher(g).fusion == "max"                    # auto: a 3-person gallery
    assert Searcher(g, fusion="template").fusion == "template"
    big, people = _people(rng, 25, 2)
    assert Searcher(Gallery.from_arrays(big, [f"f{i}" for i in range(50)], people)).fusion == "template"
    with pytest.raises(SettingError):
        Searcher(g, fusion="median")


def test_best_impostor_threshold_is_the_order_statistic():
    """With M best impostor scores the threshold sits just above the k-th highest, k =
    floor(target x (M + 1)): a fresh score passes it with probability k / (M + 1) <= target.
    Too few scores to show the target (k = 0): a normal fit."""
    from pof.matching.calibrate import calibrate
    rng = np.random.default_rng(7)
    imp = rng.normal(0.5, 0.1, 5000)
    best = rng.normal(0.8, 0.03, 200).astype(np.float32)   # e.g. 40 persons of 5 photos
    cal = calibrate(imp, 40, 0.01, best)          # target for 39 persons: 0.00975 -> k = 1
    assert cal.method == "best impostor, empirical"
    assert best.max() < cal.threshold <= best.max() + 1e-6
    cal = calibrate(imp, 40, 0.03, best)          # 0.0293 x 201 -> k = 5
    assert np.sort(best)[-6] < cal.threshold <= np.sort(best)[-5] + 1e-6
    cal = calibrate(imp, 20, 0.01, best[:60])     # 61 < 1 / 0.0095: extrapolated
    assert cal.method == "best impostor, normal fit"


def test_extrapolated_best_impostor_threshold_never_below_the_highest_seen():
    from pof.matching.calibrate import calibrate
    rng = np.random.default_rng(8)
    best = np.concatenate([rng.normal(0.8, 0.01, 59), [0.95]]).astype(np.float32)   # one outlier
    cal = calibrate(rng.normal(0.5, 0.1, 3000), 20, 0.01, best)
    assert cal.method == "best impostor, normal fit" and cal.threshold > 0.95


def test_rates_count_the_scores_above_exactly_without_a_float64_copy():
    """tail_rate searches float32 impostor scores with a float32 key (no float64 copy of
    millions of scores a candidate) and still counts as an exact comparison would: for scores
    rounded to 3 or 4 places, scores equal to an impostor and the next float above one."""
    from pof.matching.calibrate import _below, tail_rate
    rng = np.random.default_rng(0)
    imp = np.sort(rng.normal(0.3, 0.1, 50_000).astype(np.float32))
    exact = imp.astype(np.float64)
    keys = (list(rng.normal(0.3, 0.2, 2000)) + [float(x) for x in imp[::97]]
            + [round(float(x), 4) for x in imp[::89]] + [round(float(x), 3) for x in imp[::83]]
            + [float(np.nextafter(x, np.float32(1))) for x in imp[::101]])
    assert all(_below(imp, k) == int(np.searchsorted(exact, k, side="left")) for k in keys)
    assert tail_rate(imp, float(imp[-1])) == (1 / len(imp), False)
    assert tail_rate(imp, float(imp[-1]) + 1e-3) == (1 / (len(imp) + 1), True)
