"""The review state machine and the exclusion list, on a real catalog file."""
from __future__ import annotations

import pytest

from pof.casework import review
from pof.casework.accounts import User
from pof.dataset import schema
from pof.dataset.catalog import Catalog

VIEWER, ANA, BEN, CAL, ADMIN = (User("vic", "viewer"), User("ana", "reviewer"), User("ben", "reviewer"),
                               User("cal", "reviewer"), User("adm", "admin"))
FACE = review.Subject("face", photo_id=1, face_index=0)
MATCH = {"decision": "match", "score": 0.9, "threshold": 0.85, "fpir": 0.01}


@pytest.fixture()
def db(tmp_path):
    cat = Catalog(tmp_path, create=True)
    review.ensure_schema(cat.db)
    yield cat.db
    cat.close()


def _status(fn, *args):
    with pytest.raises(review.ReviewError) as err:
        fn(*args)
    return err.value.status


def test_states_move_only_as_the_table_says(db):
    i = review.create(db, FACE, "P_1", VIEWER, "looks like P_1", 0.9, 1e-4, ["abc"], search=MATCH)
    assert review.get(db, i)["state"] == "proposed"
    assert _status(review.act, db, i, "reopen", ANA, "x") == 409          # not disputed
    assert _status(review.act, db, i, "confirm", VIEWER, "x", ["abc"]) == 403
    assert _status(review.act, db, i, "fly", ANA, "x") == 404
    assert review.act(db, i, "confirm", ANA, "ok", ["abc"]) == "proposed"
    assert review.act(db, i, "confirm", BEN, "ok", ["abc"]) == "confirmed"
    assert review.act(db, i, "dispute", VIEWER, "not him") == "disputed"
    assert review.act(db, i, "reopen", CAL, "resolved") == "proposed"
    assert review.get(db, i)["confirmations"] == 0                        # they start again
    assert review.act(db, i, "retract", VIEWER, "my mistake") == "retracted"   # the proposer may
    assert _status(review.act, db, i, "dispute", VIEWER, "x") == 409
    assert [e["to_state"] for e in review.get(db, i)["events"]] == [
        "proposed", "proposed", "confirmed", "disputed", "proposed", "retracted"]


def test_required_confirmations_is_per_dataset(db):
    assert review.required_confirmations(db) == review.DEFAULT_CONFIRMATIONS == 2
    review.set_required_confirmations(db, 3)
    i = review.create(db, FACE, "P_1", VIEWER, "n", evidence=["e"], search=MATCH)
    for who, state in ((ANA, "proposed"), (BEN, "proposed"), (CAL, "confirmed")):
        assert review.act(db, i, "confirm", who, "ok", ["e"]) == state
    assert _status(review.set_required_confirmations, db, 0) == 400


def test_exclusions_are_recorded_and_lifted_never_deleted(db):
    assert review.excluded_persons(db) == set()
    assert _status(review.exclude, db, "P_1", "order", ANA) == 403
    x = review.exclude(db, "P_1", "court order 7", ADMIN)
    assert review.excluded_persons(db) == {"P_1"}
    assert _status(review.create, db, FACE, "P_1", VIEWER, "n") == 403
    assert _status(review.exclude, db, "P_1", "again", ADMIN) == 409
    assert review.lift(db, x, "order quashed", ADMIN) == "P_1"
    assert review.excluded_persons(db) == set()
    rows = review.exclusions(db)
    assert len(rows) == 1 and rows[0]["lift_reason"] == "order quashed"


def test_correction_links_the_new_proposal(db):
    i = review.create(db, FACE, "P_1", VIEWER, "n")
    assert _status(review.correct, db, i, "P_2", VIEWER, "why") == 403
    j = review.correct(db, i, "P_2", ANA, "ears differ")
    assert review.get(db, i)["state"] == "retracted" and review.get(db, j)["corrects"] == i


def test_excluded_persons_without_tables_is_empty(tmp_path):
    with Catalog(tmp_path, create=True) as cat:
        assert review.excluded_persons(cat.db) == set() and review.exclusion_version(cat.db) == (0, 0)


def test_an_older_catalog_gains_the_new_columns(tmp_path):
    """A catalog written before proposals recorded the search keeps its rows and gains the
    columns; its identifications read as 'not recorded' (None) and need stated evidence."""
    with Catalog(tmp_path, create=True) as cat:
        cat.db.executescript(schema.TABLES["review"])
        for table, column, _ in schema.ADDED_COLUMNS[2]:
            if column in {r[1] for r in cat.db.execute(f"PRAGMA table_info({table})")}:
                cat.db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        cat.db.execute("INSERT INTO identifications (subject, photo_id, face_index, person, state, evidence,"
                       " created_by, created) VALUES ('face', 1, 0, 'P_1', 'proposed', '[\"e\"]', 'vic', 'now')")
        cat.db.execute("INSERT INTO review_events (identification, actor, action, note, evidence_seen,"
                       " from_state, to_state, at) VALUES (1, 'vic', 'propose', 'n', '[]', 'candidate',"
                       " 'proposed', 'now')")
        cat.db.commit()
        assert "search_decision" not in {r[1] for r in cat.db.execute("PRAGMA table_info(identifications)")}
        review.ensure_schema(cat.db)
        review.ensure_schema(cat.db)                       # twice: nothing to add the second time
        item = review.get(cat.db, 1)
        assert item["search_decision"] is None and item["events"][0]["other_evidence"] == ""
        assert _status(review.act, cat.db, 1, "confirm", ANA, "ok", ["e"]) == 400
        assert review.act(cat.db, 1, "confirm", ANA, "ok", ["e"], "the name tag reads P One") == "proposed"


def test_search_said_reads_the_kept_result():
    face = {"decision": "match", "threshold": 0.85, "fpir": 0.01, "candidates": [
        {"person": "A", "score": 0.9, "fmr": 1e-4, "evidence": ["a1"]},
        {"person": "B", "score": 0.86, "fmr": 1e-3, "evidence": ["b1"]},
        {"person": "C", "score": 0.7, "fmr": 0.2, "evidence": ["c1"]}]}
    assert review.search_said(face, "A")["decision"] == "match"
    assert review.search_said(face, "B")["decision"] == "match"          # also above the threshold
    c = review.search_said(face, "C")
    assert c["decision"] == "no_match" and c["score"] == 0.7 and c["threshold"] == 0.85 and c["evidence"] == ["c1"]
    gone = review.search_said(face, "D")
    assert gone["decision"] == "no_match" and gone["score"] is None and gone["fpir"] == 0.01
    assert review.search_said({**face, "decision": "no_match"}, "A")["decision"] == "no_match"
    assert review.search_said({"decision": "quality_too_low", "candidates": []}, "A")["decision"] == "quality_too_low"
    assert review.search_said(None, "A")["decision"] == "none"


def test_one_live_proposal_per_person_and_subject(db):
    i = review.create(db, FACE, "P_1", VIEWER, "n", evidence=["e"], search=MATCH)
    with pytest.raises(review.Duplicate) as err:
        review.create(db, FACE, "P_1", ANA, "again")
    assert err.value.existing == i and err.value.status == 409
    group = review.Subject("group", group_id=3)
    g = review.create(db, group, "Officer Four", VIEWER, "badge")
    assert review.get(db, g)["search_decision"] == "none"
    assert _status(review.create, db, group, "Officer Four", ANA, "again") == 409
    assert _status(review.correct, db, g, "Officer Four ", ANA, "why") == 400    # same name
    review.create(db, FACE, "P_2", VIEWER, "n")
    assert _status(review.correct, db, i, "P_2", ANA, "why") == 409
    assert review.get(db, i)["state"] == "proposed"                            # not retracted
