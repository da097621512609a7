"""The audit log: hash chain, append-only triggers, and `pof audit verify` catching tampering."""
from __future__ import annotations

import sqlite3

import pytest

from pof import audit
from pof.catalog import Catalog

from .conftest import run_pof


def _log(ds, n=4):
    with Catalog(ds, create=True) as cat:
        for i in range(n):
            audit.append(cat.db, f"user{i}", "search", image_sha256=f"{i:064d}", faces=i)


def _tamper(ds, sql, *args):
    db = sqlite3.connect(ds / "catalog.sqlite")
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_chain_verifies_and_links(tmp_path):
    _log(tmp_path)
    with Catalog(tmp_path) as cat:
        v = audit.verify(cat.db)
        rows = audit.rows(cat.db)
    assert v.ok and v.rows == 4 and v.head == rows[0]["hash"]
    assert rows[-1]["prev"] == audit.GENESIS and rows[0]["prev"] == rows[1]["hash"]
    assert rows[0]["hash"] == audit.row_hash(rows[0]["prev"], 4, rows[0]["at"], "user3", "search",
                                             rows[0]["detail"])


def test_triggers_refuse_update_and_delete(tmp_path):
    _log(tmp_path, 1)
    with Catalog(tmp_path) as cat:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            cat.db.execute("UPDATE audit SET actor = 'x'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            cat.db.execute("DELETE FROM audit")


@pytest.mark.parametrize("sql, args, bad", [
    ("UPDATE audit SET detail = ? WHERE seq = 2", ('{"faces":9,"image_sha256":"x"}',), 2),
    ("UPDATE audit SET actor = ? WHERE seq = 3", ("someone else",), 3),
    ("DELETE FROM audit WHERE seq = 2", (), 3),
    ("DELETE FROM audit WHERE seq = 4", (), 4),
    ("UPDATE audit SET seq = seq + 10 WHERE seq = 1", (), 2),
])
def test_verify_names_the_bad_row(tmp_path, sql, args, bad):
    _log(tmp_path)
    _tamper(tmp_path, sql, *args)
    with Catalog(tmp_path) as cat:
        v = audit.verify(cat.db)
    assert not v.ok and v.bad_seq == bad, v


def test_audit_verify_cli_catches_a_modified_row(tmp_path):
    _log(tmp_path)
    r = run_pof("audit", "verify", tmp_path)
    assert r.returncode == 0 and "intact: 4 rows" in r.stdout
    _tamper(tmp_path, "UPDATE audit SET action = 'login' WHERE seq = 2")
    r = run_pof("audit", "verify", tmp_path)
    assert r.returncode == 1 and "row 2" in r.stdout, r.stdout + r.stderr
