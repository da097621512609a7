"""Accounts of the web app: users with a role, argon2 password hashes, API tokens, sessions.

Stored in the dataset's catalog (``DATASET/catalog.sqlite``) in pof's own tables (created here
with CREATE TABLE IF NOT EXISTS): ``users``, ``api_tokens``, ``sessions`` and ``account_keys``.
Tokens and session ids are random (``secrets``) and only their SHA-256 is stored, so a copy of
the catalog does not let anyone log in.

API tokens expire (``TOKEN_DAYS`` by default), carry a short public id and a label, and can be
listed and revoked one by one. Saving an existing user again (a password reset or a role
change) ends their sessions and revokes their tokens.

Checking a password costs one argon2 verification whether or not the name exists: an unknown
name is verified against a dummy hash made once with the same parameters.

Roles, from least to most: viewer (search, browse, propose, dispute), reviewer (also confirm,
retract, mark a face as an officer, merge and split unknown faces), admin (also accounts, the
audit log, the exclusion list, settings, enrolment).

Password hashing uses argon2-cffi's defaults (RFC 9106 low-memory profile). Tests pass a
cheaper ``PasswordHasher`` explicitly (``fast_hasher()``); nothing else does.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pof.dataset import schema
from pof.errors import PofError

ROLES = ("viewer", "reviewer", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
MIN_PASSWORD = 10
SESSION_HOURS = 12
TOKEN_DAYS = 90
UNKNOWN_USER = "(unknown user)"      # the audit log's actor for a failed sign-in as no one
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")



class AccountError(PofError):
    """A user name, role or password pof cannot accept."""


@dataclass(frozen=True)
class User:
    """A signed-in user."""

    name: str
    role: str

    def can(self, role: str) -> bool:
        """True if this user's role is ``role`` or above (viewer < reviewer < admin)."""
        return RANK[self.role] >= RANK[role]


def fast_hasher() -> PasswordHasher:
    """A cheap argon2 hasher, for tests only (pass it explicitly; never the default)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the account tables if missing; give an older ``api_tokens`` table its newer
    columns (tokens made before then get a public id and expire ``TOKEN_DAYS`` from now)."""
    schema.ensure(db, "accounts")
    if db.execute("SELECT 1 FROM api_tokens WHERE id IS NULL OR expires IS NULL"
                             " LIMIT 1").fetchone():
        expires = (_now() + timedelta(days=TOKEN_DAYS)).isoformat()
        with db:
            db.execute("UPDATE api_tokens SET expires = ? WHERE expires IS NULL", (expires,))
            for (key,) in db.execute("SELECT token_sha256 FROM api_tokens WHERE id IS NULL").fetchall():
                db.execute("UPDATE api_tokens SET id = ? WHERE token_sha256 = ?", (_token_id(db), key))
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_id ON api_tokens(id)")


def _token_id(db: sqlite3.Connection) -> str:
    """A short public id for a token (not secret: it names the token in lists and revocations)."""
    while True:
        tid = secrets.token_hex(4)
        if not db.execute("SELECT 1 FROM api_tokens WHERE id = ?", (tid,)).fetchone():
            return tid


_DUMMIES: dict[tuple, str] = {}
_DUMMY_LOCK = threading.Lock()


def dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random password with ``hasher``'s parameters, made once per parameter set:
    an unknown name is verified against it, so it costs what a known name costs."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len,
           hasher.salt_len, hasher.type)
    with _DUMMY_LOCK:
        if key not in _DUMMIES:
            _DUMMIES[key] = hasher.hash(secrets.token_urlsafe(24))
        return _DUMMIES[key]


@dataclass(frozen=True)
class Saved:
    """What ``Accounts.add`` did: a new user, or an existing one saved again (their sessions
    ended and their API tokens revoked)."""

    new: bool
    sessions_ended: int = 0
    tokens_revoked: int = 0


class Accounts:
    """Users, tokens and sessions over one open catalog connection (``Catalog.db``)."""

    def __init__(self, db: sqlite3.Connection, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        ensure_schema(db)

    def add(self, name: str, role: str, password: str) -> Saved:
        """Add a user, or reset an existing user's role and password, which ends every session
        of theirs and revokes every API token of theirs. Raises AccountError."""
        if not _NAME.match(name):
            raise AccountError(f"user name {name!r}: use 2-64 letters, digits, _ . @ -")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
        hashed = self.hasher.hash(password)
        with self.db:
            new = self.db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is None
            self.db.execute(
                "INSERT INTO users (name, role, password, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
                " password = excluded.password, disabled = 0",
                (name, role, hashed, _now().isoformat()))
            if new:
                return Saved(True)
            ended = self.db.execute("DELETE FROM sessions WHERE user = ?", (name,)).rowcount
            revoked = self.db.execute("UPDATE api_tokens SET revoked = 1 WHERE user = ? AND revoked = 0",
                                      (name,)).rowcount
        return Saved(False, ended, revoked)

    def exists(self, name: str) -> bool:
        """True if an account of that name exists (active or disabled)."""
        return self.db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None

    def list(self) -> list[dict]:
        """Every user: name, role, created, disabled."""
        rows = self.db.execute("SELECT name, role, created, disabled FROM users ORDER BY name")
        return [dict(r) for r in rows]

    def disable(self, name: str) -> None:
        """Disable a user (kept for the record), revoking their tokens and sessions."""
        with self.db:
            self.db.execute("UPDATE users SET disabled = 1 WHERE name = ?", (name,))
            self.db.execute("UPDATE api_tokens SET revoked = 1 WHERE user = ?", (name,))
            self.db.execute("DELETE FROM sessions WHERE user = ?", (name,))

    def _active(self, name: str) -> User | None:
        row = self.db.execute("SELECT name, role FROM users WHERE name = ? AND disabled = 0",
                              (name,)).fetchone()
        return User(row["name"], row["role"]) if row else None

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None. One argon2 verification either way:
        a name that is unknown or disabled is verified against ``dummy_hash``."""
        dummy = dummy_hash(self.hasher)
        row = self.db.execute("SELECT password FROM users WHERE name = ? AND disabled = 0",
                              (name,)).fetchone()
        stored = row["password"] if row else dummy
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self.db:
                self.db.execute("UPDATE users SET password = ? WHERE name = ?",
                                (self.hasher.hash(password), name))
        return self._active(name)

    def new_token(self, name: str, days: int = TOKEN_DAYS, label: str = "") -> str:
        """A new API token for ``name``, valid ``days`` days (shown once; only its SHA-256 is
        stored). Its public id is in ``tokens()``."""
        if self._active(name) is None:
            raise AccountError(f"no active user {name!r}")
        if not 1 <= days <= 3650:
            raise AccountError(f"a token lasts 1 to 3650 days, not {days}")
        label = " ".join(label.split())
        if len(label) > 100:
            raise AccountError("a token label has at most 100 characters")
        token = "pof_" + secrets.token_urlsafe(32)
        now = _now()
        with self.db:
            self.db.execute("INSERT INTO api_tokens (token_sha256, id, user, label, created, expires)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            (_sha(token), _token_id(self.db), name, label, now.isoformat(),
                             (now + timedelta(days=days)).isoformat()))
        return token

    def user_for_token(self, token: str) -> User | None:
        """The active user owning an unrevoked, unexpired API token, or None. Notes when the
        token was last used (to the minute)."""
        now = _now()
        row = self.db.execute("SELECT token_sha256, user, last_used FROM api_tokens"
                              " WHERE token_sha256 = ? AND revoked = 0 AND expires > ?",
                              (_sha(token), now.isoformat())).fetchone()
        if row is None:
            return None
        user = self._active(row["user"])
        if user and (row["last_used"] or "") < (now - timedelta(minutes=1)).isoformat():
            with self.db:
                self.db.execute("UPDATE api_tokens SET last_used = ? WHERE token_sha256 = ?",
                                (now.isoformat(), row["token_sha256"]))
        return user

    def token_row(self, token: str) -> dict | None:
        """The listed fields (``tokens()``) of one API token, by the token itself."""
        row = self.db.execute("SELECT id, user, label, created, expires, last_used, revoked"
                              " FROM api_tokens WHERE token_sha256 = ?", (_sha(token),)).fetchone()
        return {**dict(row), "expired": row["expires"] <= _now().isoformat()} if row else None

    def tokens(self, name: str | None = None) -> list[dict]:
        """API tokens (of ``name``, or everyone's), newest first: id, user, label, created,
        expires, last_used, revoked, expired."""
        sql = ("SELECT id, user, label, created, expires, last_used, revoked FROM api_tokens"
               + (" WHERE user = ?" if name else "") + " ORDER BY created DESC, id")
        now = _now().isoformat()
        return [{**dict(r), "expired": r["expires"] <= now}
                for r in self.db.execute(sql, (name,) if name else ())]

    def revoke_token(self, token_id: str) -> dict:
        """Revoke one API token by its public id; returns its row. AccountError if unknown."""
        with self.db:
            row = self.db.execute("SELECT id, user, label, revoked FROM api_tokens WHERE id = ?",
                                  (token_id.strip(),)).fetchone()
            if row is None:
                raise AccountError(f"no API token with id {token_id!r} (pof users tokens DATASET lists them)")
            self.db.execute("UPDATE api_tokens SET revoked = 1 WHERE id = ?", (row["id"],))
        return dict(row)

    def key(self, name: str) -> bytes:
        """A random secret kept in the catalog under ``name`` (made on first use), e.g. the
        key that signs device cookies."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO account_keys (name, value) VALUES (?, ?)",
                            (name, secrets.token_hex(32)))
            value = self.db.execute("SELECT value FROM account_keys WHERE name = ?", (name,)).fetchone()[0]
        return bytes.fromhex(value)

    def new_session(self, name: str) -> tuple[str, str]:
        """(session id for the cookie, CSRF token of the session)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = _now()
        with self.db:
            self.db.execute("DELETE FROM sessions WHERE expires < ?", (now.isoformat(),))
            self.db.execute("INSERT INTO sessions (id_sha256, user, csrf, created, expires)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (_sha(sid), name, csrf, now.isoformat(),
                             (now + timedelta(hours=SESSION_HOURS)).isoformat()))
        return sid, csrf

    def session(self, sid: str) -> tuple[User, str] | None:
        """(user, CSRF token) of a live session id, or None."""
        row = self.db.execute("SELECT user, csrf, expires FROM sessions WHERE id_sha256 = ?",
                              (_sha(sid),)).fetchone()
        if row is None or row["expires"] < _now().isoformat():
            return None
        user = self._active(row["user"])
        return (user, row["csrf"]) if user else None

    def end_session(self, sid: str) -> None:
        """Log a session out."""
        with self.db:
            self.db.execute("DELETE FROM sessions WHERE id_sha256 = ?", (_sha(sid),))


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())
