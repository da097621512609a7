"""The review state machine and the exclusion list, on a real catalog file."""
from __future__ import annotations

import pytest

from pof import review
from pof.accounts import User
from pof.catalog import Catalog

VIEWER, ANA, BEN, CAL, ADMIN = (User("vic", "viewer"), User("ana", "reviewer"), User("ben", "reviewer"),
                               User("cal", "reviewer"), User("adm", "admin"))
FACE = review.Subject("face", photo_id=1, face_index=0)


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
    i = review.create(db, FACE, "P_1", VIEWER, "looks like P_1", 0.9, 1e-4, ["abc"])
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
    i = review.create(db, FACE, "P_1", VIEWER, "n")
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
