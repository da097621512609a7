"""The catalog's layout version is checked when a dataset is opened: an older catalog is
brought up to date in place, a newer one is refused with a clear error (exit 2 in the CLI),
and every table's declaration lives in one module (pof.dataset.schema)."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from pof.casework import accounts
from pof.dataset import schema
from pof.dataset.catalog import CATALOG_NAME, Catalog
from pof.errors import DatasetError


def _version(folder) -> str:
    db = sqlite3.connect(folder / CATALOG_NAME)
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
    finally:
        db.close()


def test_a_new_catalog_has_the_current_version(tmp_path):
    Catalog(tmp_path, create=True).close()
    assert _version(tmp_path) == str(schema.SCHEMA_VERSION)


def test_an_older_catalog_is_upgraded_on_open(tmp_path):
    """A version-1 catalog with the first api_tokens table (no id, label, expiry) gains the
    columns and the version when opened; its rows stay."""
    db = sqlite3.connect(tmp_path / CATALOG_NAME)
    db.executescript(schema.TABLES["catalog"])
    db.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,"
               " created TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0)")
    db.execute("CREATE TABLE api_tokens (token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL,"
               " created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO users VALUES ('ana', 'admin', 'x', '2026-01-01', 0)")
    db.execute("INSERT INTO api_tokens VALUES ('abc', 'ana', '2026-01-01', 0)")
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.commit()
    db.close()
    with Catalog(tmp_path) as cat:
        columns = {r[1] for r in cat.db.execute("PRAGMA table_info(api_tokens)")}
        assert {"id", "label", "expires", "last_used"} <= columns
        assert [tuple(r) for r in cat.db.execute("SELECT user FROM api_tokens")] == [("ana",)]
        assert "identifications" not in schema.existing_tables(cat.db)    # nothing created unasked
        accounts.ensure_schema(cat.db)        # the accounts part fills the new columns in
        tid, expires = cat.db.execute("SELECT id, expires FROM api_tokens").fetchone()
        assert tid and expires
    assert _version(tmp_path) == str(schema.SCHEMA_VERSION)


@pytest.mark.parametrize("stored, words", [(str(schema.SCHEMA_VERSION + 1), "newer pof"),
                                           ("two", "not a number")])
def test_a_catalog_this_pof_cannot_read_is_refused(tmp_path, stored, words):
    Catalog(tmp_path, create=True).close()
    db = sqlite3.connect(tmp_path / CATALOG_NAME)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (stored,))
    db.commit()
    db.close()
    with pytest.raises(DatasetError, match=words):
        Catalog(tmp_path)
    assert _version(tmp_path) == stored                  # left as it was
    run = subprocess.run([sys.executable, "-m", "pof", "search", str(tmp_path), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert words in run.stderr and "Traceback" not in run.stderr


def test_every_table_is_declared_once():
    """One declaration a table; ``meta`` alone is shared (the audit log records its start
    there), and every added column belongs to a declared table."""
    names = [t for part in schema.TABLES for t in schema.tables_of(part)]
    assert sorted(n for n in names if names.count(n) > 1) == ["meta", "meta"]
    added = {table for columns in schema.ADDED_COLUMNS.values() for table, _, _ in columns}
    assert added <= set(names)
