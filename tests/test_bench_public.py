"""The public-set studies' scoring helpers (bench/descriptors.py) on small made-up descriptors."""
from __future__ import annotations

import numpy as np

from bench.descriptors import Templates, evaluate_scores, stack


def _unit(rng, n, d=4):
    G = rng.normal(size=(n, d)).astype(np.float32)
    return G / np.linalg.norm(G, axis=1, keepdims=True)


def test_templates_max_equals_best_photo_and_mean_descriptor_is_unit():
    G = _unit(np.random.default_rng(0), 6)
    persons = ["b", "a", "b", "a", "c", "c"]
    q = np.ones(6)
    t = Templates(G, persons, q, "max")
    S = t.scores(G[:1])
    assert np.isclose(S[0, t.labels.index("b")], 1.0)  # photo 0 is b's
    md = Templates(G, persons, q, "mean_descriptor")
    assert np.allclose(np.linalg.norm(md.T, axis=1), 1.0)

    imp, best = t.impostors()
    assert len(imp) == 6 * 2 and len(best) == 6           # each photo vs the 2 other persons


def test_stack_leaves_zero_rows_where_nothing_was_found():
    D, found = stack([{"detected": True, "descriptor": np.ones(3)}, {"detected": False}])
    assert found.tolist() == [True, False] and D[1].tolist() == [0, 0, 0] and D.shape == (2, 3)


def test_evaluate_scores_on_known_scores():
    labels = ["a", "b"]
    # four mated probes (3 right on top, one of them weak), four nonmated (one strong)
    S = np.array([[0.9, 0.1], [0.2, 0.8], [0.45, 0.1], [0.7, 0.2],
                  [0.3, 0.2], [0.1, 0.35], [0.6, 0.1], [0.2, 0.25]])
    found = np.array([True] * 8)
    persons = ["a", "b", "a", "b", "x", "y", "z", "w"]
    roles = ["mated"] * 4 + ["nonmated"] * 4
    out = evaluate_scores(S, found, persons, roles, labels, threshold=0.5)
    assert out["rank1"] == 0.75                   # the fourth's top candidate is a, not b
    assert out["dir_at_threshold"] == 0.5         # 0.9 and 0.8 pass; 0.45 does not
    assert out["fpir_at_threshold"] == 0.25       # 0.6 passes
    # an observed FPIR of 1% on 4 nonmated: none may pass, so the threshold is just above 0.6
    assert out["dir_at_observed_fpir_1pct"] == 0.5 and out["threshold_observed_fpir_1pct"] == 0.6
    found[0] = False                              # not found: a miss, whatever its scores
    assert evaluate_scores(S, found, persons, roles, labels, 0.5)["dir_at_threshold"] == 0.25
