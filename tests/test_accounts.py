"""Accounts: argon2 hashes, roles, tokens, sessions, and `pof users` through the CLI."""
from __future__ import annotations

import pytest

from pof.accounts import AccountError, Accounts, User, fast_hasher
from pof.catalog import Catalog

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
