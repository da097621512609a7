"""Errors of the casework, each with the HTTP status the web app answers it with.

They are PofErrors: the command line prints them on one line, and the web app renders them
with their ``status`` (a page or JSON), never a traceback.
"""
from __future__ import annotations

from pof.errors import PofError


class CaseworkError(PofError):
    """A request the casework cannot carry out; ``status`` says why, in HTTP's terms."""

    status = 400


class Invalid(CaseworkError):
    """The request is incomplete or malformed (a missing title, reason or choice)."""

    status = 400


class NotAllowed(CaseworkError):
    """The user may see the thing but not do this to it."""

    status = 403


class Missing(CaseworkError):
    """No such thing, or none this user may see (the two are not told apart)."""

    status = 404


class Clash(CaseworkError):
    """The request contradicts the current state (merging a group into itself, ...)."""

    status = 409
