"""The few exception types pof raises. Each is a ValueError whose message says how to fix it."""
from __future__ import annotations


class PofError(ValueError):
    """Base of every error pof reports to a user (never shown as a traceback)."""


class ImageError(PofError):
    """An input could not be read as an image (unreadable, not an image, truncated, too big)."""


class NoFaceError(PofError):
    """An image was read but no face was found in it."""


class DatasetError(PofError):
    """A dataset folder is missing, incomplete, or was made with other settings."""


class SettingError(PofError):
    """A setting or command-line option has a value pof cannot use."""


class InstallError(PofError):
    """A file that ships with pof (a model, reference scores) is missing or damaged."""
