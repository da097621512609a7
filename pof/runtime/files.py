"""Atomic file writes: write to a temporary name beside the file, then rename, so an
interrupted run leaves either the old file or the new one, never half of one. Every file pof
writes into a dataset, a report or a redacted copy goes through here."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file, then rename it to ``path``. The writer
    must give the format explicitly (the temporary name ends in .tmp)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_text(path: Path, text: str) -> Path:
    return atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_bytes(path: Path, data: bytes) -> Path:
    return atomic(path, lambda tmp: tmp.write_bytes(data))
