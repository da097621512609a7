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


def _recs(scores, match, roles, tops, persons):
    return [{"role": r, "person": p, "condition": "plain", "detected": s is not None,
             "top_person": t, "score": s, "match": m}
            for s, m, r, t, p in zip(scores, match, roles, tops, persons)]


def test_peer_is_judged_at_pofs_observed_fpir():
    from bench import public
    roles = ["mated"] * 4 + ["nonmated"] * 4
    persons = ["a", "b", "c", "d", "w", "x", "y", "z"]
    tops = ["a", "b", "c", "a", "a", "b", "c", "d"]
    # pof: similarities; one nonmated of four matched -> observed FPIR 25%
    pof = _recs([0.9, 0.8, 0.4, 0.7, 0.75, 0.3, 0.2, None],
                [True, True, False, True, True, False, False, False], roles, tops, persons)
    # the peer: distances (smaller is nearer); its own decisions at 0.6
    peer = _recs([0.3, 0.5, 0.65, 0.2, 0.4, 0.7, 0.55, 0.9],
                 [True, True, False, True, True, False, True, False], roles, tops, persons)
    H = {"pof": public.by_condition(pof, True), "peer": public.by_condition(peer, False)}
    assert H["pof"]["plain"]["fpir"] == 0.25 and H["pof"]["plain"]["dir"] == 0.5
    assert H["pof"]["plain"]["ftd"] == 0.125
    assert H["pof"]["masked"]["n_probes"] == 0          # a condition without probes
    public.match_peer_to_pof(H)
    m = H["peer"]["plain"]
    # the distance that lets one of the peer's four nonmated through (0.4): nearer than 0.55
    assert m["matched_fpir"] == 0.25 and m["matched_distance"] == 0.55
    assert m["dir_at_matched_fpir"] == 0.5               # 0.3 and 0.5; 0.2 is the wrong person
    assert m["dir_at_observed_fpir_1pct"] == 0.25        # none may pass: nearer than 0.4, 0.3 only
    assert not any(k.startswith("_") for s in H.values() for c in s.values() for k in c)
