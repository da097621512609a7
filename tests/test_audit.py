"""The audit log: hash chain, append-only triggers, and `pof audit verify` catching tampering."""
from __future__ import annotations

import json
import re
import sqlite3

import pytest

from pof.casework import audit
from pof.dataset.catalog import Catalog

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
    assert r.returncode == 4 and "row 2" in r.stdout, r.stdout + r.stderr


# --- a cut-off tail, a dropped log, REPLACE, and a head kept elsewhere -------------------------

def _raw(ds):
    """A plain connection to the catalog with every trigger dropped (what someone editing the
    file by hand can do)."""
    db = sqlite3.connect(ds / "catalog.sqlite")
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    return db


def _verdict(ds, expect=None):
    with Catalog(ds) as cat:
        return audit.verify(cat.db) if expect is None else audit.verify(cat.db, expect)


def _rewrite(ds, from_seq, actor="forger"):
    """Replace rows from_seq.. with a consistent chain of other rows and move the head to it, as
    someone able to rewrite the file would (the genesis row is kept)."""
    db = _raw(ds)
    n = db.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
    db.execute("DELETE FROM audit WHERE seq >= ?", (from_seq,))
    prev = db.execute("SELECT hash FROM audit WHERE seq = ?", (from_seq - 1,)).fetchone()[0]
    for seq in range(from_seq, n + 1):
        at, detail = f"2026-01-01T00:00:0{seq}.000+00:00", {"faces": 0}
        h = audit.row_hash(prev, seq, at, actor, "search", detail)
        db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (seq, at, actor, "search", audit.canonical(detail), prev, h))
        prev = h
    db.execute("UPDATE audit_head SET seq = ?, hash = ?", (n, prev))
    db.commit()
    db.close()


def test_tail_cut_with_the_head_is_caught(tmp_path):
    _log(tmp_path)
    db = _raw(tmp_path)
    db.execute("DELETE FROM audit_head")
    db.execute("DELETE FROM audit WHERE seq >= 3")
    db.commit()
    db.close()
    v = _verdict(tmp_path)
    assert not v.ok and v.bad_seq == 3 and "head is missing" in v.problem, v
    r = run_pof("audit", "verify", tmp_path)
    assert r.returncode == 4 and "head is missing" in r.stdout, r.stdout + r.stderr


def test_last_row_rewritten_against_the_head_is_caught(tmp_path):
    _log(tmp_path)
    db = _raw(tmp_path)
    head = db.execute("SELECT seq, hash FROM audit_head").fetchone()
    db.close()
    _rewrite(tmp_path, 4)
    db = _raw(tmp_path)
    db.execute("UPDATE audit_head SET seq = ?, hash = ?", head)   # the head as it was
    db.commit()
    db.close()
    v = _verdict(tmp_path)
    assert not v.ok and v.bad_seq == 4 and "rewritten" in v.problem, v


@pytest.mark.parametrize("also", ["", "genesis"])
def test_both_tables_dropped_is_caught(tmp_path, also):
    from pof.casework.accounts import Accounts, fast_hasher
    _log(tmp_path)
    with Catalog(tmp_path) as cat:
        Accounts(cat.db, fast_hasher()).add("ada", "admin", "a long enough password")
        audit.append(cat.db, "cli", "user_add", user="ada", role="admin")
    db = _raw(tmp_path)
    db.execute("DROP TABLE audit")
    db.execute("DROP TABLE audit_head")
    if also:        # the record of the log's start goes too: the accounts still show it was used
        db.execute("DELETE FROM meta WHERE key = 'audit_genesis'")
    db.commit()
    db.close()
    v = _verdict(tmp_path)
    assert not v.ok and v.rows == 0 and v.bad_seq == 1 and "empty" in v.problem, v
    assert ("holds 1 user account:" if also else "it was started at") in v.problem, v
    r = run_pof("audit", "verify", tmp_path)
    assert r.returncode == 4 and "BROKEN at row 1" in r.stdout, r.stdout + r.stderr


def test_a_log_emptied_and_started_again_is_caught(tmp_path):
    _log(tmp_path)
    db = _raw(tmp_path)
    db.execute("DROP TABLE audit")
    db.execute("DROP TABLE audit_head")
    db.commit()
    db.close()
    _log(tmp_path, 2)                   # the app goes on writing into a new, empty log
    v = _verdict(tmp_path)
    assert not v.ok and v.bad_seq == 1 and "started again" in v.problem, v


def test_an_unused_empty_log_verifies(tmp_path):
    with Catalog(tmp_path, create=True) as cat:
        v = audit.verify(cat.db)
    assert v.ok and v.rows == 0 and v.head_text == "0:" + audit.GENESIS


def test_replace_and_head_edits_are_refused(tmp_path):
    _log(tmp_path)
    with Catalog(tmp_path) as cat:
        before = [tuple(r) for r in cat.db.execute("SELECT * FROM audit ORDER BY seq")]
        head = tuple(cat.db.execute("SELECT * FROM audit_head").fetchone())
        for sql in ("INSERT OR REPLACE INTO audit SELECT seq, at, 'mallory', action, detail, prev,"
                    " hash FROM audit WHERE seq = 2",
                    "REPLACE INTO audit SELECT * FROM audit WHERE seq = 4",
                    "INSERT INTO audit (at, actor, action, detail, prev, hash)"
                    " VALUES ('t', 'mallory', 'search', '{}', 'x', 'y')"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                cat.db.execute(sql)
        for sql, why in (("DELETE FROM audit_head", "cannot be deleted"),
                         ("INSERT OR REPLACE INTO audit_head VALUES (1, 2, 'x')", "cannot be replaced"),
                         ("UPDATE audit_head SET seq = 2, hash = 'x'", "only moves forward"),
                         ("DELETE FROM meta WHERE key = 'audit_genesis'", "recorded once"),
                         ("INSERT OR REPLACE INTO meta VALUES ('audit_genesis', '{}')", "recorded once")):
            with pytest.raises(sqlite3.DatabaseError, match=why):
                cat.db.execute(sql)
        cat.db.rollback()
        assert [tuple(r) for r in cat.db.execute("SELECT * FROM audit ORDER BY seq")] == before
        assert tuple(cat.db.execute("SELECT * FROM audit_head").fetchone()) == head
        assert audit.verify(cat.db).ok


def test_a_catalog_made_before_the_new_triggers_gets_them(tmp_path):
    db = sqlite3.connect(tmp_path / "catalog.sqlite")    # the tables as pof made them before
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
            hash TEXT NOT NULL);""")
    h = audit.row_hash(audit.GENESIS, 1, "2026-01-01T00:00:00.000+00:00", "cli", "user_add", {})
    db.execute("INSERT INTO audit VALUES (1, '2026-01-01T00:00:00.000+00:00', 'cli', 'user_add',"
               " '{}', ?, ?)", (audit.GENESIS, h))
    db.execute("INSERT INTO audit_head VALUES (1, 1, ?)", (h,))
    db.commit()
    db.close()
    with Catalog(tmp_path) as cat:
        audit.ensure_schema(cat.db)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            cat.db.execute("INSERT OR REPLACE INTO audit SELECT * FROM audit")
        with pytest.raises(sqlite3.DatabaseError, match="cannot be deleted"):
            cat.db.execute("DELETE FROM audit_head")
        assert '"hash":"' + h in cat.get_meta("audit_genesis")
        assert audit.append(cat.db, "cli", "user_disable") == 2 and audit.verify(cat.db).ok


def test_expect_a_saved_head(tmp_path):
    _log(tmp_path, 2)
    r = run_pof("audit", "head", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    saved = json.loads(r.stdout)
    assert saved["seq"] == 2 and saved["head"] == f"2:{saved['hash']}" and saved["at"]
    plain = run_pof("audit", "head", tmp_path).stdout.split()
    assert plain == [saved["head"], saved["at"]]
    with Catalog(tmp_path) as cat:
        for i in range(3):
            audit.append(cat.db, "vera", "search", faces=i)
    for expect in (saved["head"], saved["hash"], "0:" + audit.GENESIS):
        r = run_pof("audit", "verify", tmp_path, "--expect", expect)
        assert r.returncode == 0 and "intact: 5 rows; head 5:" in r.stdout, r.stdout + r.stderr
    assert "3 rows came after it" in run_pof("audit", "verify", tmp_path, "--expect", saved["head"]).stdout
    assert _verdict(tmp_path, saved["head"]).after == 3
    # a wrong seq for a hash the chain holds is no match
    assert not _verdict(tmp_path, f"3:{saved['hash']}").ok

    _rewrite(tmp_path, 2)               # a consistent chain: only the saved head tells
    assert _verdict(tmp_path).ok
    r = run_pof("audit", "verify", tmp_path, "--expect", saved["head"])
    assert r.returncode == 4 and "BROKEN at row 2" in r.stdout and "saved head" in r.stdout, r.stdout
    assert not _verdict(tmp_path, saved["hash"]).ok


def test_expect_catches_a_tail_cut_with_a_consistent_head(tmp_path):
    _log(tmp_path, 5)
    saved = _verdict(tmp_path).head_text
    db = _raw(tmp_path)
    db.execute("DELETE FROM audit WHERE seq > 3")
    db.execute("UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit WHERE seq = 3)")
    db.commit()
    db.close()
    assert _verdict(tmp_path).ok
    v = _verdict(tmp_path, saved)
    assert not v.ok and v.bad_seq == 4 and "rows at the end were deleted" in v.problem, v


def test_a_malformed_expect_and_a_broken_head_are_one_line_errors(tmp_path):
    _log(tmp_path)
    r = run_pof("audit", "verify", tmp_path, "--expect", "12:not-a-hash")
    assert r.returncode == 2 and "not an audit head" in r.stderr and "Traceback" not in r.stderr
    _tamper(tmp_path, "DELETE FROM audit WHERE seq = 4")
    r = run_pof("audit", "head", tmp_path)
    assert r.returncode == 4 and "BROKEN at row 4" in r.stdout
    assert not re.search(r"\d+:[0-9a-f]{64}", r.stdout), r.stdout       # no head to keep


def test_the_admin_page_shows_the_head_to_keep(tmp_path):
    from pof.casework.accounts import Accounts, fast_hasher
    from pof.web.app import create_app

    from .webkit import Session, web_config
    with Catalog(tmp_path, create=True) as cat:
        Accounts(cat.db, fast_hasher()).add("ada", "admin", "a long enough password")
        audit.append(cat.db, "cli", "user_add", user="ada", role="admin")
    app = create_app(tmp_path, web_config())
    page = Session(app, tmp_path, "ada").get("/admin/audit")
    v = _verdict(tmp_path)
    assert page.status_code == 200 and v.seq == 1
    assert f"Chain intact: 1 rows. Head <code class=\"mono\">1:{v.head}</code>" in page.text
