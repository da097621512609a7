"""Search and verification results as values: what their attributes say is what their JSON says.

The JSON itself is pinned by tests/test_golden.py; here the demo's photos are searched in
process, with the real models, and the values are read by attribute.
"""
from __future__ import annotations

import dataclasses

import pytest

from pof.casework import review
from pof.matching.results import (Candidate, Decision, FaceGeometry, FaceResult, SamePersonResult,
                                  Verification)

from .conftest import DEMO


@pytest.fixture(scope="module")
def demo(pipeline):
    """(searcher over the demo's two persons, the faces of its probe photos by name)."""
    from pof.matching.search import Gallery, Searcher
    portrait = max(pipeline.analyze_file(DEMO / "gallery" / "obama_official_portrait_2012.jpg",
                                         with_crops=False), key=lambda f: f.box[2])
    biden = pipeline.analyze_file(DEMO / "gallery" / "biden_blue_room_2010.jpg", with_crops=False)[0]
    gallery = Gallery.from_arrays([portrait.descriptor, biden.descriptor], ["obama1", "biden1"],
                                  ["Barack_Obama", "Joseph_Biden"],
                                  {"Barack_Obama": "Barack Obama", "Joseph_Biden": "Joseph R. Biden"})
    probes = {p.stem: pipeline.analyze_file(p, with_crops=False)
              for p in sorted((DEMO / "probes").glob("*.jpg"))}
    return Searcher(gallery), probes


def test_search_returns_face_results_read_by_attribute(demo):
    searcher, probes = demo
    (hit,) = searcher.search(probes["obama_joint_session_2009"], top=2)
    (miss,) = searcher.search(probes["astronaut_eileen_collins"], top=2)
    assert isinstance(hit, FaceResult) and isinstance(hit.top, Candidate)
    assert hit.decision == "match" and hit.top.person == "Barack_Obama" and hit.top.name == "Barack Obama"
    assert hit.top.score >= hit.threshold > miss.top.score and miss.decision == "no_match"
    assert hit.top.evidence == ("obama1",) and hit.candidate("Joseph_Biden").evidence == ("biden1",)
    assert hit.candidate("nobody") is None and hit.reason is None and hit.restored is None
    assert [c.score for c in hit.candidates] == sorted((c.score for c in hit.candidates), reverse=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.decision = "no_match"


def test_attributes_and_json_agree(demo):
    searcher, probes = demo
    (r,) = searcher.search(probes["obama_joint_session_2009"], top=2)
    j = r.to_json()
    assert list(j) == ["box", "det_score", "quality", "interocular", "blur", "fpir", "threshold",
                       "decision", "candidates"]
    assert j["box"] == list(r.box) and j["quality"] == r.quality and j["threshold"] == r.threshold
    assert [c["person"] for c in j["candidates"]] == [c.person for c in r.candidates]
    assert list(j["candidates"][0]) == ["person", "name", "score", "fmr", "fmr_upper_bound", "evidence"]
    back = Decision.from_json(j)                 # a kept result read back
    assert back.candidates == r.candidates and (back.decision, back.threshold, back.fpir) == \
        (r.decision, r.threshold, r.fpir)


def test_a_face_under_the_quality_gate(demo):
    searcher, probes = demo
    face = probes["obama_joint_session_2009"][0]
    small = dataclasses.replace(face, interocular=5.0)       # eyes 5 px apart
    (r,) = searcher.search([small])
    assert r.decision == "quality_too_low" and r.candidates == () and r.top is None
    assert "px apart" in r.reason and list(r.to_json())[-1] == "reason"


def test_same_person_result(demo):
    searcher, probes = demo
    face = probes["obama_joint_session_2009"][0]
    small = dataclasses.replace(face, interocular=5.0)
    r = searcher.search_same_person([face, small], top=2)
    assert isinstance(r, SamePersonResult) and r.probes_used == 1 and r.decision == "match"
    assert all(isinstance(p, FaceGeometry) for p in r.probes)
    assert [p.interocular for p in r.probes] == [round(face.interocular, 1), 5.0]
    assert [x.probe for x in r.left_out] == [1] and "px apart" in r.left_out[0].reason
    assert r.to_json()["left_out"] == [{"probe": 1, "reason": r.left_out[0].reason}]
    none = searcher.search_same_person([small])
    assert none.decision == "quality_too_low" and none.probes_used is None and none.fpir is None
    assert "probes_used" not in none.to_json() and "threshold" not in none.to_json()


def test_verification_gives_face_counts_only_where_a_photo_held_several(demo):
    from pof.matching.verify import Verifier
    _, probes = demo
    a, b = probes["obama_joint_session_2009"][0], probes["astronaut_eileen_collins"][0]
    v = Verifier().compare(a, b)
    assert isinstance(v, Verification) and v.same is False and v.score < v.threshold
    assert v.faces_x == v.faces_y == 1 and list(v.to_json()) == ["same", "score", "threshold", "fmr"]
    a.extra["faces_in_photo"] = 3
    try:
        several = Verifier().compare(a, b)
    finally:
        del a.extra["faces_in_photo"]
    assert several.faces_x == 3 and several.to_json()["box_x"] == list(several.box_x)
    assert list(several.to_json())[4:] == ["faces_x", "box_x"]


def test_search_said_reads_a_result_or_its_kept_json(demo):
    searcher, probes = demo
    (r,) = searcher.search(probes["obama_joint_session_2009"], top=2)
    for person in ("Barack_Obama", "Joseph_Biden", "nobody"):
        assert review.search_said(r, person) == review.search_said(r.to_json(), person)
    said = review.search_said(r, "Joseph_Biden")
    assert said["decision"] == "no_match" and said["evidence"] == ["biden1"]
    assert review.search_said(r, "Barack_Obama")["decision"] == "match"
