"""One writer at a time per dataset.

A command that writes a dataset (``pof build``) holds an exclusive ``fcntl.flock`` on
``DATASET/.pof.lock``, which holds its PID while it works. A second writer stops at once with
``DatasetBusy``; readers (search, the web app's searches) do not take the lock. The kernel
drops the lock when its holder exits, however it ends, so a lock left by a killed process is
simply taken over.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pof.errors import DatasetError

LOCK_NAME = ".pof.lock"
EXIT_BUSY = 75      # EX_TEMPFAIL: try again later


class DatasetBusy(DatasetError):
    """Another process is writing the dataset."""

    exit_code = EXIT_BUSY
    status = 409            # in the web app (an enrolment while a build runs)


@contextmanager
def writing(folder: str | Path) -> Iterator[None]:
    """Hold ``folder``'s writer lock (creating the folder if need be) for the ``with`` block;
    raise DatasetBusy at once if another process holds it."""
    from pof.dataset.catalog import private_folder
    folder = Path(folder)
    private_folder(folder)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "another process"
            who = f"PID {holder}" if holder.isdigit() else holder
            raise DatasetBusy(f"{folder} is being built by {who}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)       # no PID left behind once the lock is released
    finally:
        os.close(fd)
