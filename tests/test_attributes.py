"""The attributes stage: the schema, each estimator on real photos, the settings, the export
and gallery filtering."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pof import Pipeline
from pof.stages.attributes import ESTIMATORS, create
from pof.stages.attributes.card import judge
from pof.stages.attributes.faceapi import SIZE, age_groups, face_input
from pof.stages.attributes.schema import BY_NAME, COLUMNS, DEMOGRAPHIC, EXCLUDED, SCHEMA, TASKS
from pof.errors import DatasetError, SettingError
from pof.matching.search import Gallery

from .conftest import DEMO, YALE

OBAMA = DEMO / "gallery" / "obama_official_portrait_2012.jpg"
COLLINS = DEMO / "probes" / "astronaut_eileen_collins.jpg"


@pytest.fixture(scope="module")
def scored(pipeline):
    """Attribute scores of the largest face of a few real photos, by file name."""
    files = [YALE / n for n in ("subject01.glasses", "subject01.normal", "subject01.happy")]
    files += [OBAMA, COLLINS]
    return {p.name: pipeline.analyze_file(p)[0].attributes for p in files}


def test_schema_is_lfw_less_six():
    assert len(SCHEMA) == 67 == len(set(COLUMNS))
    assert not set(EXCLUDED) & set(BY_NAME)
    assert [a.task for a in SCHEMA if a.task != "visual"] == ["age group"] * 5 + ["gender"]
    tasks = [BY_NAME[c].task for c in COLUMNS]
    assert tasks == sorted(tasks, key=TASKS.index)           # columns grouped by task
    assert set(DEMOGRAPHIC) == {"Baby", "Child", "Youth", "Middle Aged", "Senior", "Male"}
    for a in SCHEMA:
        assert a.estimator in ESTIMATORS or (a.estimator is None and a.reason), a.name


def test_learned_model(scored):
    obama, collins = scored[OBAMA.name], scored[COLLINS.name]
    assert obama["Male"] > 0.9 and collins["Male"] < 0.5
    assert max(("Baby", "Child", "Youth", "Middle Aged", "Senior"), key=obama.get) == "Middle Aged"
    assert obama["Smiling"] > 0.9 and scored["subject01.happy"]["Smiling"] > 0.9
    assert scored["subject01.normal"]["Smiling"] < 0.1


def test_measured_attributes(scored):
    assert scored["subject01.glasses"]["Eyeglasses"] > 0.5 > scored["subject01.normal"]["Eyeglasses"]
    assert scored["subject01.normal"]["Color Photo"] < 0.1
    assert scored[OBAMA.name]["Color Photo"] > 0.9
    assert scored["subject01.normal"]["Mouth Closed"] > 0.5 > scored["subject01.happy"]["Mouth Closed"]
    assert scored["subject01.normal"]["Eyes Open"] > 0.5
    for s in scored.values():
        assert all(0.0 <= v <= 1.0 for v in s.values())
        assert abs(s["Mouth Closed"] + s["Mouth Slightly Open"] + s["Mouth Wide Open"] - 1) < 0.01
        estimated = {a.name for a in SCHEMA if a.estimator}
        if s["Color Photo"] < 0.5:            # colour-based measures give no score in grayscale
            estimated -= {a.name for a in SCHEMA if a.estimator == "regions"}
        assert set(s) == estimated


def test_settings_switch_off(pipeline):
    face = Pipeline(demographics="off").analyze_file(OBAMA)[0]
    assert "Smiling" in face.attributes and not set(DEMOGRAPHIC) & set(face.attributes)
    assert Pipeline(attributes="off").analyze_file(OBAMA)[0].attributes == {}
    assert pipeline.analyze_file(OBAMA, with_crops=False)[0].attributes == {}   # search: none


def test_face_input_is_a_black_padded_square():
    crop = np.full((280, 200, 3), 200, np.uint8)
    points = np.array([[50, 100], [150, 150]], np.float32)          # a box twice as wide as tall
    x = face_input(crop, points)
    assert x.shape == (SIZE, SIZE, 3) and x.dtype == np.uint8
    assert x[:20].max() == 0 and x[-20:].max() == 0                 # face-api pads with black
    assert (x[40:72] == 200).all()


def test_age_groups_sum_to_one():
    for age in (1.0, 8.0, 25.0, 45.0, 70.0):
        g = age_groups(age)
        assert abs(sum(g.values()) - 1) < 1e-6
    assert max(age_groups(45.0).items(), key=lambda kv: kv[1])[0] == "Middle Aged"


def test_unknown_estimator():
    with pytest.raises(SettingError):
        create("clip")


def test_unreliable_rule():
    assert judge(None)[0]
    assert judge({"positives": 2, "negatives": 100, "balanced_accuracy": 0.9})[0]
    assert judge({"positives": 20, "negatives": 100, "balanced_accuracy": 0.55})[0]
    assert not judge({"positives": 20, "negatives": 100, "balanced_accuracy": 0.9})[0]


def test_export(built):
    rows = list(csv.DictReader((built / "attributes.csv").open()))
    assert len(rows) == 6
    header = list(rows[0])
    assert header[0] == "id" and header[1:68] == list(COLUMNS)
    assert header[68:] == ["yaw", "pitch", "roll", "blur", "quality"]
    for r in rows:
        for name in COLUMNS:
            grayscale = float(r["Color Photo"]) < 0.5
            if BY_NAME[name].estimator is None or (grayscale and BY_NAME[name].estimator == "regions"):
                assert r[name] == ""                # not estimated (regions: colour photos only)
            else:
                assert 0.0 <= float(r[name]) <= 1.0
    recs = json.loads((built / "attributes.json").read_text())
    assert list(recs[0])[:4] == ["id", *TASKS] and recs[0]["visual"]["Wearing Hat"] is None
    card = json.loads((built / "pof.json").read_text())["attributes"]
    assert len(card["attributes"]) == 67 and card["excluded"] == list(EXCLUDED)
    status = {a["name"]: a for a in card["attributes"]}
    assert status["Wearing Hat"]["status"] == "not estimated" and status["Wearing Hat"]["reason"]
    assert status["Smiling"]["status"] == "estimated" and status["Smiling"]["unreliable"] is False
    assert status["Smiling"]["validation"]["balanced_accuracy"] > 0.65
    assert status["Baby"]["unreliable"] is True
    assert status["Gray Hair"]["estimator"] == "regions"
    assert status["Gray Hair"]["validation"]["labels"] == "bench/attributes/labels_lfw.csv"
    assert status["Partially Visible Forehead"]["unreliable"] is True      # near chance
    # a failure that falls unevenly across people flags the attribute, whatever its figure
    assert status["Mustache"]["validation"]["balanced_accuracy"] > 0.65
    assert status["Mustache"]["unreliable"] is True and "unevenly" in status["Mustache"]["reason"]
    assert card["validation_set_lfw"]["persons"] >= 100


def test_gallery_filter_by_attribute(built):
    g = Gallery.load(built)
    happy = g.filter(attributes={"Smiling": ">=0.5"})
    assert len(happy.face_ids) == 3                     # the three "happy" photos
    assert len(g.filter(attributes={"Smiling": "<0.5"}).face_ids) == 3
    assert len(g.filter(person="subject01", attributes={"Smiling": 0.5}).face_ids) == 1
    with pytest.raises(SettingError, match="never uses"):
        g.filter(attributes={"Male": ">0.5"})
    with pytest.raises(SettingError):
        g.filter(attributes={"Wearing Hat": ">0.5"})
    with pytest.raises(SettingError):
        g.filter(attributes={"Smiling": "lots"})
    with pytest.raises(DatasetError):
        g.filter(attributes={"Color Photo": ">=0.5"})              # Yale's photos are grayscale


def test_build_with_demographics_off(tmp_path, gallery_dir):
    import shutil

    from pof.dataset.build import Builder
    src, out = tmp_path / "src", tmp_path / "ds"
    shutil.copytree(gallery_dir / "subject01", src / "subject01")
    Builder(out, workers=1, demographics="off").run([str(src)], progress=False)
    rows = list(csv.DictReader((out / "attributes.csv").open()))
    assert len(rows) == 2
    assert all(r[n] == "" for r in rows for n in DEMOGRAPHIC) and all(r["Smiling"] for r in rows)
    card = json.loads((out / "pof.json").read_text())
    entries = {a["name"]: a for a in card["attributes"]["attributes"]}
    assert entries["Male"]["status"] == "switched off" and card["settings"]["demographics"] == "off"
