"""Tiny tests of bench/public.py's metric helpers (numpy only; pof for calibrate)."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import public


def test_threshold_for_fpir_lets_at_most_the_share_through():
    s = np.arange(200, dtype=float)                     # 200 nonmated top scores
    t = public.threshold_for_fpir(s, 0.01)              # at most 2 may pass
    assert (s >= t).sum() == 2
    assert public.threshold_for_fpir([-np.inf] * 10, 0.01) == -np.inf


def test_templates_max_equals_best_photo_and_mean_descriptor_is_unit():
    rng = np.random.default_rng(0)
    G = rng.normal(size=(6, 4)).astype(np.float32)
    G /= np.linalg.norm(G, axis=1, keepdims=True)
    persons = ["b", "a", "b", "a", "c", "c"]
    q = np.ones(6)
    t = public.Templates(G, persons, q, "max")
    S = t.scores(G[:1])
    assert np.isclose(S[0, t.labels.index("b")], 1.0)  # photo 0 is b's
    md = public.Templates(G, persons, q, "mean_descriptor")
    assert np.allclose(np.linalg.norm(md.T, axis=1), 1.0)

    imp, best = t.impostors()
    assert len(imp) == 6 * 2 and len(best) == 6           # each photo vs the 2 other persons
