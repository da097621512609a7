"""CPU work of the GPU engine's batches, shared among worker processes.

The engine and ``pof build --device cuda`` run in one Python process, and what they still do
on the CPU for every face (OpenCV's head-pose fit, the attribute estimators) does not spread
over the cores from threads: the numpy and Python around each call hold the interpreter lock.
``Workers`` hands shares of a batch to worker processes instead, which work while the device
goes on.

The workers are plain ``python -c`` processes fed pickled work through a pipe, started on
first need: a forked child of a process holding a CUDA context or OpenCV's thread pool is not
safe, and multiprocessing's ``spawn`` would run the caller's main script again. A share whose
worker fails or dies is done in this process instead, so no result is ever lost; the worker
is replaced on the next call. This module imports no torch: the workers import it and should
start fast.

A worker never outlives the process that started it (``die_with_parent``): a caller killed
with SIGKILL, which runs no clean-up, leaves no worker behind.
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

DEFAULT_WORKERS = max(1, min(8, (os.cpu_count() or 1) // 2))


PARENT_POLL_S = 0.5     # how often a worker's watcher looks for its parent


def die_with_parent(parent: int, prctl: bool = True, watch: bool = True) -> None:
    """End this process (SIGKILL) when process ``parent``, which started it, ends.

    On Linux the kernel does it (``prctl(PR_SET_PDEATHSIG)``); the signal comes when the
    thread that started this process ends, so a pool of workers is used by the thread that
    made it. Where prctl does not exist, or fails, a daemon thread notices the parent is
    gone (this process was handed to another parent: ``os.getppid()`` changed) within
    PARENT_POLL_S. A parent that died before this ran is caught by the same check, made at
    once. ``prctl`` and ``watch`` choose the mechanisms (both by default)."""
    if prctl and sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):     # no libc or no prctl: the watcher does it
            pass
    if os.getppid() != parent:                # the parent died before the line above ran
        os._exit(1)
    if watch:
        threading.Thread(target=_watch_parent, args=(parent,), name="pof-parent-watch",
                         daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def resolve(function: str) -> Callable:
    """The module-level function named "package.module:function"."""
    module, name = function.split(":")
    return getattr(import_module(module), name)


class Workers:
    """``count`` worker processes; ``run(function, items, *args)`` calls
    ``function(share, *args)`` on ``count`` shares of ``items`` (a list or an array), each in
    a worker, and returns at once; ``Pending.result()`` gives each share's result in order.
    ``function`` ("module:name") must return one result per item of its share. Take the
    result of one run before starting the next."""

    def __init__(self, count: int = DEFAULT_WORKERS) -> None:
        self.count = max(1, int(count))
        self._procs: list[subprocess.Popen] = []

    def run(self, function: str, items: Sequence, *args: Any, inline_below: int = 0) -> Pending:
        """``inline_below``: fewer items than this are left to ``Pending.result()`` in this
        process (sending them would cost more than it saves)."""
        if len(items) < inline_below:
            return Pending([(None, function, items, args)])
        self._procs = [p for p in self._procs if p.poll() is None]
        try:
            self._procs += self._start(self.count - len(self._procs))
        except OSError:             # no process can be started: all the work is done here
            pass
        if not self._procs:
            return Pending([(None, function, items, args)])
        step = -(-len(items) // len(self._procs)) if len(items) else 1
        parts = []
        for k, proc in zip(range(0, len(items), step), self._procs):
            share = items[k:k + step]
            try:
                _send(proc.stdin, (function, share, args))
                parts.append((proc, function, share, args))
            except OSError:          # the worker is gone: its share is done here
                parts.append((None, function, share, args))
        return Pending(parts)

    def _start(self, count: int) -> list[subprocess.Popen]:
        import pof
        env = dict(os.environ)
        root = str(Path(pof.__file__).resolve().parent.parent)     # where pof is imported from
        env["PYTHONPATH"] = os.pathsep.join(x for x in (root, env.get("PYTHONPATH")) if x)
        env["OMP_NUM_THREADS"] = "1"
        # the parent's id is handed over: the worker ends when that process does
        code = f"from pof.runtime.workers import serve; serve({os.getpid()})"
        # a worker's errors are not shown (no traceback reaches a user): its share is then
        # done in this process, where an error is reported as pof reports any
        return [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
                for _ in range(count)]

    def close(self) -> None:
        for proc in self._procs:
            try:
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
        self._procs = []


class Pending:
    """Work handed out: (worker or None, function, share, args) per share, in order."""

    def __init__(self, parts: list) -> None:
        self._parts = parts

    def result(self) -> list:
        """Each share's result, in order (a share left to a failed worker is done here)."""
        out = []
        for proc, function, share, args in self._parts:
            got = None
            if proc is not None:
                try:
                    got = _receive(proc.stdout)
                except (OSError, EOFError, pickle.UnpicklingError):
                    proc.kill()                  # replaced on the next run
            if got is None or len(got) != len(share):
                got = resolve(function)(share, *args)
            out.append(got)
        return out


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the worker closed its pipe")
    size = struct.unpack("<Q", head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the worker closed its pipe")
    return pickle.loads(data)


def serve(parent: int | None = None) -> None:
    """A worker's loop: (function, share, args) in, the function's result out, until stdin
    ends or process ``parent`` (the caller) does. A share that fails is answered with None
    (the caller then does it itself)."""
    if parent is not None:
        die_with_parent(parent)
    import cv2
    cv2.setNumThreads(1)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr          # a stray print must not corrupt the answers (stderr is
                                     # discarded)
    while True:
        try:
            function, share, args = _receive(stdin)
        except EOFError:
            return
        try:
            answer = resolve(function)(share, *args)
        except Exception:                    # noqa: BLE001 - reported by the None answer
            answer = None
        _send(stdout, answer)
