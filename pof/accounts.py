"""Accounts of the web app: users with a role, argon2 password hashes, API tokens, sessions.

Stored in the dataset's catalog (``DATASET/catalog.sqlite``) in pof's own tables (created here
with CREATE TABLE IF NOT EXISTS): ``users``, ``api_tokens`` and ``sessions``. Tokens and session
ids are random (``secrets``) and only their SHA-256 is stored, so a copy of the catalog does
not let anyone log in.

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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import PofError

ROLES = ("viewer", "reviewer", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
MIN_PASSWORD = 10
SESSION_HOURS = 12
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
    created TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name),
    created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name),
    csrf TEXT NOT NULL, created TEXT NOT NULL, expires TEXT NOT NULL);
"""


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
    """Create the account tables if missing."""
    db.executescript(SCHEMA)


class Accounts:
    """Users, tokens and sessions over one open catalog connection (``Catalog.db``)."""

    def __init__(self, db: sqlite3.Connection, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        ensure_schema(db)

    def add(self, name: str, role: str, password: str) -> None:
        """Add a user, or reset an existing user's role and password. Raises AccountError."""
        if not _NAME.match(name):
            raise AccountError(f"user name {name!r}: use 2-64 letters, digits, _ . @ -")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
        with self.db:
            self.db.execute(
                "INSERT INTO users (name, role, password, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
                " password = excluded.password, disabled = 0",
                (name, role, self.hasher.hash(password), _now().isoformat()))

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
        """The user if ``password`` is theirs, else None (same work whether or not they exist)."""
        row = self.db.execute("SELECT password FROM users WHERE name = ? AND disabled = 0",
                              (name,)).fetchone()
        stored = row["password"] if row else self.hasher.hash("dummy password for timing")
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

    def new_token(self, name: str) -> str:
        """A new API token for ``name`` (shown once; only its SHA-256 is stored)."""
        if self._active(name) is None:
            raise AccountError(f"no active user {name!r}")
        token = "pof_" + secrets.token_urlsafe(32)
        with self.db:
            self.db.execute("INSERT INTO api_tokens (token_sha256, user, created) VALUES (?, ?, ?)",
                            (_sha(token), name, _now().isoformat()))
        return token

    def user_for_token(self, token: str) -> User | None:
        """The active user owning an unrevoked API token, or None."""
        row = self.db.execute("SELECT user FROM api_tokens WHERE token_sha256 = ? AND revoked = 0",
                              (_sha(token),)).fetchone()
        return self._active(row["user"]) if row else None

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
