"""Accounts: argon2 hashes, roles, tokens, sessions, and `pof users` through the CLI."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest
from argon2 import PasswordHasher

from pof.casework.accounts import AccountError, Accounts, User, dummy_hash, fast_hasher
from pof.dataset.catalog import Catalog

from .conftest import run_pof


@pytest.fixture()
def accounts(tmp_path):
    cat = Catalog(tmp_path / "ds", create=True)
    yield Accounts(cat.db, fast_hasher())
    cat.close()


def test_password_is_hashed_with_argon2_and_checked(accounts):
    accounts.add("ana", "reviewer", "correct horse battery")
    stored = accounts.db.execute("SELECT password FROM users WHERE name='ana'").fetchone()[0]
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert accounts.check_password("ana", "correct horse battery") == User("ana", "reviewer")
    assert accounts.check_password("ana", "wrong password!!") is None
    assert accounts.check_password("nobody", "correct horse battery") is None


def test_bad_names_roles_and_short_passwords_are_refused(accounts):
    for name, role, pw in [("a b", "viewer", "x" * 12), ("ana", "root", "x" * 12), ("ana", "viewer", "short")]:
        with pytest.raises(AccountError):
            accounts.add(name, role, pw)


def test_roles_rank():
    assert User("a", "admin").can("reviewer") and User("r", "reviewer").can("viewer")
    assert not User("v", "viewer").can("reviewer") and not User("r", "reviewer").can("admin")


def test_tokens_and_sessions_store_only_hashes(accounts):
    accounts.add("ana", "viewer", "x" * 12)
    token = accounts.new_token("ana")
    assert accounts.user_for_token(token) == User("ana", "viewer")
    assert accounts.user_for_token(token + "x") is None
    sid, csrf = accounts.new_session("ana")
    assert accounts.session(sid) == (User("ana", "viewer"), csrf)
    dump = "\n".join(accounts.db.iterdump())
    assert token not in dump and sid not in dump
    accounts.disable("ana")
    assert accounts.user_for_token(token) is None and accounts.session(sid) is None
    assert accounts.check_password("ana", "x" * 12) is None


def test_real_defaults_are_argon2_defaults(tmp_path):
    cat = Catalog(tmp_path / "ds", create=True)
    acc = Accounts(cat.db)
    assert acc.hasher.memory_cost >= 65536 and acc.hasher.time_cost >= 3
    cat.close()


def test_users_cli(tmp_path):
    ds = tmp_path / "ds"
    Catalog(ds, create=True).close()
    pw = tmp_path / "pw.txt"
    pw.write_text("a long enough password\n")
    r = run_pof("users", "add", ds, "ana", "--role", "reviewer", "--password-file", pw, "--token")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("pof_")
    with Catalog(ds) as cat:
        acc = Accounts(cat.db)
        assert acc.user_for_token(token) == User("ana", "reviewer")
        assert acc.check_password("ana", "a long enough password")
    r = run_pof("users", "list", ds)
    assert "ana\treviewer\tactive" in r.stdout
    r = run_pof("users", "add", ds, "bob", "--role", "wizard", "--password-file", pw)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    pw.write_text("short\n")
    r = run_pof("users", "add", ds, "bob", "--role", "viewer", "--password-file", pw)
    assert r.returncode == 2 and "at least" in r.stderr and "Traceback" not in r.stderr


class CountingHasher(PasswordHasher):
    """argon2 with the test parameters, counting every hash and verification it does."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.hashes = self.verifies = 0

    def hash(self, password, *, salt=None):
        self.hashes += 1
        return super().hash(password, salt=salt)

    def verify(self, hash, password):
        self.verifies += 1
        return super().verify(hash, password)


def test_known_and_unknown_names_cost_one_verification_and_no_hash(tmp_path):
    cat = Catalog(tmp_path / "ds", create=True)
    hasher = CountingHasher()
    acc = Accounts(cat.db, hasher)
    acc.add("ana", "viewer", "correct horse battery")
    acc.add("old", "viewer", "correct horse battery")
    acc.disable("old")
    acc.check_password("nobody", "x")               # the dummy hash is made once, up front
    work = {}
    for name in ("ana", "nobody", "old", "ana"):
        hasher.hashes = hasher.verifies = 0
        assert acc.check_password(name, "wrong password!!") is None
        work[name] = (hasher.hashes, hasher.verifies)
    assert work == {"ana": (0, 1), "nobody": (0, 1), "old": (0, 1)}
    hasher.hashes = hasher.verifies = 0
    assert acc.check_password("ana", "correct horse battery") == User("ana", "viewer")
    assert (hasher.hashes, hasher.verifies) == (0, 1)
    assert not hasher.check_needs_rehash(dummy_hash(hasher))     # same parameters as real hashes
    cat.close()


def test_a_reset_ends_sessions_and_revokes_tokens(accounts):
    first = accounts.add("ana", "reviewer", "correct horse battery")
    assert first.new
    tokens = [accounts.new_token("ana"), accounts.new_token("ana", label="ci")]
    sid, _ = accounts.new_session("ana")
    accounts.add("bob", "viewer", "x" * 12)
    bob_token = accounts.new_token("bob")
    saved = accounts.add("ana", "viewer", "another long password")        # reset and demote
    assert not saved.new and (saved.sessions_ended, saved.tokens_revoked) == (1, 2)
    assert accounts.session(sid) is None
    assert all(accounts.user_for_token(t) is None for t in tokens)
    assert accounts.user_for_token(bob_token) == User("bob", "viewer")
    assert accounts.check_password("ana", "another long password") == User("ana", "viewer")
    fresh = accounts.new_token("ana")
    assert accounts.user_for_token(fresh) == User("ana", "viewer")


def test_tokens_expire_are_listed_and_revoked_one_by_one(accounts):
    accounts.add("ana", "viewer", "x" * 12)
    short = accounts.new_token("ana", days=1, label="  laptop   script ")
    long = accounts.new_token("ana")
    rows = {r["label"]: r for r in accounts.tokens("ana")}
    assert set(rows) == {"laptop script", ""}
    assert rows["laptop script"]["expires"] < rows[""]["expires"]
    assert all(len(r["id"]) == 8 and not r["revoked"] and not r["expired"] and r["last_used"] is None
               for r in rows.values())
    assert accounts.user_for_token(long) == User("ana", "viewer")
    assert accounts.token_row(long)["last_used"] is not None
    # a day later, the one-day token no longer works
    accounts.db.execute("UPDATE api_tokens SET expires = ? WHERE id = ?",
                        ("2000-01-01T00:00:00+00:00", rows["laptop script"]["id"]))
    accounts.db.commit()
    assert accounts.user_for_token(short) is None
    assert accounts.token_row(short)["expired"]
    revoked = accounts.revoke_token(accounts.token_row(long)["id"])
    assert revoked["user"] == "ana" and accounts.user_for_token(long) is None
    assert sorted(r["revoked"] for r in accounts.tokens()) == [0, 1]
    with pytest.raises(AccountError, match="no API token"):
        accounts.revoke_token("nope")
    for bad in (0, 5000):
        with pytest.raises(AccountError):
            accounts.new_token("ana", days=bad)


def test_an_older_token_table_gets_ids_and_expiry(tmp_path):
    cat = Catalog(tmp_path / "ds", create=True)
    cat.db.executescript("""
        CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
            created TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE api_tokens (token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name),
            created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);""")
    hasher = fast_hasher()
    cat.db.execute("INSERT INTO users VALUES ('ana', 'viewer', ?, '2026-01-01T00:00:00+00:00', 0)",
                   (hasher.hash("x" * 12),))
    old = "pof_an-old-token-made-before-expiry"
    cat.db.execute("INSERT INTO api_tokens VALUES (?, 'ana', '2026-01-01T00:00:00+00:00', 0)",
                   (hashlib.sha256(old.encode()).hexdigest(),))
    cat.db.commit()
    acc = Accounts(cat.db, hasher)
    (row,) = acc.tokens()
    days = (datetime.fromisoformat(row["expires"]) - datetime.now(timezone.utc)).days
    assert len(row["id"]) == 8 and row["label"] == "" and 88 <= days <= 90
    assert acc.user_for_token(old) == User("ana", "viewer")
    Accounts(cat.db, hasher)                         # opening again changes nothing
    assert acc.tokens()[0]["id"] == row["id"] and acc.tokens()[0]["expires"] == row["expires"]
    cat.close()


def test_users_tokens_cli(tmp_path):
    ds = tmp_path / "ds"
    Catalog(ds, create=True).close()
    pw = tmp_path / "pw.txt"
    pw.write_text("a long enough password\n")
    r = run_pof("users", "add", ds, "ana", "--role", "reviewer", "--password-file", pw,
                "--token", "--label", "nightly export", "--days", "7")
    assert r.returncode == 0, r.stderr
    first = r.stdout.strip().splitlines()[-1]
    r = run_pof("users", "tokens", ds, "ana", "--new", "--label", "laptop")
    assert r.returncode == 0, r.stderr
    second = r.stdout.strip().splitlines()[-1]
    with Catalog(ds) as cat:
        acc = Accounts(cat.db)
        ids = {acc.token_row(t)["label"]: acc.token_row(t)["id"] for t in (first, second)}
        seven = datetime.fromisoformat(acc.token_row(first)["expires"]) - datetime.now(timezone.utc)
        assert 6 <= seven.days <= 7
    r = run_pof("users", "tokens", ds)
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "id\tuser\tlabel\tcreated\texpires\tlast used\tstate"
    assert {tuple(line.split("\t")[i] for i in (0, 1, 2, 5, 6)) for line in lines[1:]} == {
        (ids["nightly export"], "ana", "nightly export", "never", "active"),
        (ids["laptop"], "ana", "laptop", "never", "active")}
    r = run_pof("users", "tokens", ds, "--revoke", ids["laptop"])
    assert r.returncode == 0 and f"API token {ids['laptop']} of ana revoked" in r.stdout
    with Catalog(ds) as cat:
        acc = Accounts(cat.db)
        assert acc.user_for_token(second) is None and acc.user_for_token(first) == User("ana", "reviewer")
        actions = [row[0] for row in cat.db.execute("SELECT action FROM audit ORDER BY seq")]
        assert actions == ["user_add", "token_add", "token_add", "token_revoke"]
    r = run_pof("users", "tokens", ds, "ana")
    assert f"{ids['laptop']}\tana\tlaptop" in r.stdout and r.stdout.rstrip().count("revoked") == 1
    r = run_pof("users", "tokens", ds, "--revoke", "feedbeef")
    assert r.returncode == 2 and "no API token" in r.stderr and "Traceback" not in r.stderr
    r = run_pof("users", "add", ds, "ana", "--role", "viewer", "--password-file", pw)
    assert r.returncode == 0 and "1 API token(s) revoked" in r.stdout and "0 session(s) ended" in r.stdout
    with Catalog(ds) as cat:
        assert Accounts(cat.db).user_for_token(first) is None
