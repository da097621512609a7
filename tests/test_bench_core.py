"""The head-to-head studies' reading of `pof search --json` output and their figures
(bench/common.py), on small made-up outputs: nothing is run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import common

@pytest.fixture(autouse=True)
def largest_face_rule(monkeypatch):
    """The Yale rule (the public study sets "center" for its run)."""
    monkeypatch.setattr(common, "FACE_RULE", "largest")


P = ["bench/work/core/probes/plain/subject01/subject01.sad.png",
     "bench/work/core/probes/plain/subject11/subject11.sad.png",
     "bench/work/core/probes/small/subject02/subject02.wink.png",
     "bench/work/core/probes/masked/subject03/subject03.wink.png"]

FAKE = "\n".join([
    json.dumps({"image": P[0], "error": None, "faces": [
        {"box": [1, 1, 10, 10], "det_score": 0.9, "quality": 0.2, "decision": "match",
         "fpir": 0.01, "candidates": [{"person": "subject07", "name": "x", "score": 0.9,
                                       "fmr": 1e-5, "evidence": ["aaaaaaaa"]}]},
        {"box": [50, 40, 100, 120], "det_score": 0.99, "quality": 0.8, "decision": "match",
         "fpir": 0.01, "candidates": [
             {"person": "subject01", "name": "subject01", "score": 0.91, "fmr": 1e-5,
              "evidence": ["g8ltccwb"]},
             {"person": "subject04", "name": "subject04", "score": 0.5, "fmr": 0.2,
              "evidence": []}]}]}),
    "progress 50% (a stray non-JSON line)",
    json.dumps({"image": str(Path(common.REPO, P[1])), "error": None, "faces": [
        {"box": [50, 40, 100, 120], "det_score": 0.99, "quality": 0.8,
         "decision": "no_match", "fpir": 0.01,
         "candidates": [{"person": "subject02", "name": "s", "score": 0.3, "fmr": 0.4,
                         "evidence": []}]}]}),
    json.dumps({"image": P[2], "error": None, "faces": []}),
    "",
])


def test_parse_and_assign():
    objs, bad = common.parse_json_lines(FAKE)
    assert len(objs) == 3 and len(bad) == 1
    got = common.assign_search_results(P, objs)
    assert set(got) == {P[0], P[1], P[2]}          # P[3] has no line -> missing
    o0 = common.pof_face_outcome(got[P[0]])         # largest box wins
    assert o0["detected"] and o0["top_person"] == "subject01" and o0["match"]
    o1 = common.pof_face_outcome(got[P[1]])
    assert o1["detected"] and not o1["match"]
    assert not common.pof_face_outcome(got[P[2]])["detected"]
    assert not common.pof_face_outcome({"image": "x", "error": "unreadable"})["detected"]


def test_metrics():
    recs = [
        dict(role="mated", person="a", condition="plain", detected=True, top_person="a",
             match=True),
        dict(role="mated", person="b", condition="plain", detected=True, top_person="a",
             match=True),
        dict(role="mated", person="c", condition="plain", detected=False),
        dict(role="mated", person="d", condition="plain", detected=True, top_person="d",
             match=False),
        dict(role="nonmated", person="x", condition="plain", detected=True, top_person="a",
             match=True),
        dict(role="nonmated", person="y", condition="plain", detected=False, failed=True),
    ]
    m = common.ident_metrics(recs)
    assert m["rank1_detected"] == round(2 / 3, 4)
    assert m["rank1_all"] == 0.5
    assert m["dir"] == 0.25
    assert m["mated_wrong_match"] == 0.25
    assert m["fpir"] == 0.5
    assert m["ftd"] == round(2 / 6, 4)
    assert m["ftd_mated"] == 0.25
    assert m["n_failed"] == 1
    none = common.ident_metrics([r for r in recs if r["role"] == "nonmated"])
    assert none["rank1_all"] is None and none["dir"] is None and none["fpir"] == 0.5


def _by_counting(recs: list[dict]) -> dict:
    """The figures counted by hand, as shares with None for an empty denominator."""
    def rate(a, b):
        return None if b == 0 else round(a / b, 4)
    mated = [r for r in recs if r["role"] == "mated"]
    non = [r for r in recs if r["role"] == "nonmated"]
    mdet = [r for r in mated if r["detected"]]
    correct = [r for r in mdet if r.get("top_person") == r["person"]]
    return {"rank1_detected": rate(len(correct), len(mdet)),
            "rank1_all": rate(len(correct), len(mated)),
            "dir": rate(sum(1 for r in correct if r.get("match")), len(mated)),
            "mated_wrong_match": rate(sum(1 for r in mdet if r.get("match")
                                          and r.get("top_person") != r["person"]), len(mated)),
            "fpir": rate(sum(1 for r in non if r["detected"] and r.get("match")), len(non)),
            "ftd": rate(sum(1 for r in recs if not r["detected"]), len(recs)),
            "ftd_mated": rate(sum(1 for r in mated if not r["detected"]), len(mated))}


def test_metrics_agree_with_counting_on_random_records():
    rng = np.random.default_rng(5)
    for n in (1, 7, 61, 605):
        recs = []
        for _ in range(n):
            detected = bool(rng.random() < 0.8)
            recs.append({"role": "mated" if rng.random() < 0.6 else "nonmated",
                         "person": str(rng.integers(4)), "condition": "plain",
                         "detected": detected,
                         "top_person": str(rng.integers(4)) if detected else None,
                         "match": bool(detected and rng.random() < 0.5)})
        got = common.ident_metrics(recs)
        assert {k: got[k] for k in _by_counting(recs)} == _by_counting(recs)


def test_verify_metrics():
    pairs = [{"file_x": "a", "file_y": "b", "Decision": "Yes"},
             {"file_x": "a", "file_y": "c", "Decision": "No"},
             {"file_x": "a", "file_y": "d", "Decision": "Yes"}]
    v = common.verif_metrics(pairs, {("a", "b"): True, ("a", "c"): False}, {("a", "d")})
    assert v["accuracy"] == round(2 / 3, 4) and v["accuracy_scored_pairs"] == 1.0
    assert v["genuine_accept_rate"] == 0.5 and v["false_accept_rate"] == 0.0


def test_center_rule(monkeypatch):
    """LFW's rule: the face nearest the photo's centre is scored, not the largest."""
    objs, _ = common.parse_json_lines(FAKE)
    got = common.assign_search_results(P, objs)
    monkeypatch.setattr(common, "FACE_RULE", "center")
    o0 = common.pof_face_outcome(got[P[0]], (12, 12))   # the 10 px face fills this photo's middle
    assert o0["detected"] and o0["top_person"] == "subject07"
    o0 = common.pof_face_outcome(got[P[0]], (200, 200))  # the large box is centred here
    assert o0["top_person"] == "subject01"
    with pytest.raises(ValueError):
        common.pof_face_outcome(got[P[0]])               # the centre needs the photo's size
    assert common.pick_box([(0, 0, 10, 10), (90, 90, 20, 20)], (200, 200)) == 1
    monkeypatch.setattr(common, "FACE_RULE", "largest")
    assert common.pick_box([(0, 0, 30, 30), (90, 90, 20, 20)], (200, 200)) == 0
