"""pof's two pools of worker processes, with one interface (``Pool``): ``map(function,
jobs)`` yields ``function``'s result for each job, in order; ``close()`` ends the processes.

- ``PipelinePool`` (``pipeline_map``): the CPU pipeline's work (build, search, verify,
  evaluation), one job at a time. Each worker is a *forked* copy of the caller holding its
  own Pipeline; the parent reads dlib's 68-point model (100 MB) once and the workers share
  its pages, and they start in 0.02 s instead of the 1.5 s a fresh interpreter takes to
  import pof and read the model (measured on a 2-core AMD EPYC machine: a build of the demo
  and test photos with ``--workers 2`` would take about a third longer on fresh ones).
- ``Workers``: the CPU shares of the GPU engine's batches (OpenCV's head-pose fit, the
  attribute estimators) and of ``pof build --device cuda``. The engine's process holds a
  CUDA context and OpenCV's thread pool, and a forked child of such a process is not safe,
  so these are plain ``python -c`` processes fed pickled work through a pipe, started on
  first need and kept for the next batch (multiprocessing's ``spawn`` would run the caller's
  main script again). A share whose worker fails or dies is done in this process instead,
  so no result is ever lost; the worker is replaced on the next call. This pool imports no
  torch: the workers import it and should start fast.

The engine and ``pof build --device cuda`` run in one Python process, and what they still do
on the CPU for every face does not spread over the cores from threads: the numpy and Python
around each call hold the interpreter lock; hence worker processes there too.

No worker outlives the process that started it (``die_with_parent``): a caller killed with
SIGKILL, which runs no clean-up, leaves no worker behind. Workers run OpenCV on one thread,
as they run the models: parallelism is by process, one per core.
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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


def function_name(function: Callable | str) -> str:
    """"package.module:function" for a module-level function (or that name itself)."""
    return function if isinstance(function, str) else f"{function.__module__}:{function.__qualname__}"


@runtime_checkable
class Pool(Protocol):
    """The interface of both pools."""

    def map(self, function: Callable | str, jobs: Iterable[tuple]) -> Iterator[Any]:
        """``function``'s result for each job (a tuple of arguments), in order."""
        ...

    def close(self) -> None:
        """End the worker processes, if any run (the pool can still be used after)."""
        ...


_PIPELINE: Any = None   # one per forked worker process, set by _init
# models the parent loaded just before its workers forked; they inherit them instead of
# loading their own (the start method is fork on Linux; elsewhere each worker loads)
_INHERITED: dict[str, Any] = {}


def _init(kind: type, settings: dict[str, Any], parent: int) -> None:
    global _PIPELINE
    die_with_parent(parent)
    _PIPELINE = kind(**settings)
    if "landmarks" in _INHERITED:
        _PIPELINE._landmarks = _INHERITED["landmarks"]


def _call(fn: Callable, args: tuple) -> Any:
    if _PIPELINE is None:
        raise RuntimeError("worker pipeline not initialised")
    return fn(_PIPELINE, *args)


class PipelinePool:
    """``count`` forked processes, each with a pipeline of the same class made from
    ``pipeline.settings`` (``pof.pipeline.Pipeline``): ``map(fn, jobs)`` yields ``fn(pipeline,
    *job)`` for each job, in order (``fn`` a module-level function). With count <= 1 the
    jobs run here, on ``pipeline`` itself. The processes live for one ``map``; at most two
    jobs per worker are in flight, so memory stays bounded however many jobs there are."""

    def __init__(self, pipeline: Any, count: int) -> None:
        self.pipeline, self.count = pipeline, int(count)

    def map(self, function: Callable | str, jobs: Iterable[tuple]) -> Iterator[Any]:
        fn = resolve(function) if isinstance(function, str) else function
        if self.count <= 1:
            for job in jobs:
                yield fn(self.pipeline, *job)
            return
        import cv2
        # OpenCV's own thread pool would compete with the other workers for the cores (a
        # build of the bench photos took 1.4% more CPU with it). The workers inherit the
        # setting from this process when they fork: setting it in a forked child whose
        # parent had started the pool hangs OpenCV. This process gets its threads back at
        # the end.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        # dlib's 68-point model (100 MB, 0.4 s to read) is loaded once here and its pages are
        # shared with every worker, rather than read by each
        _INHERITED["landmarks"] = self.pipeline.landmarks
        _INHERITED["landmarks"].predictor        # read now, before the workers fork
        try:
            with ProcessPoolExecutor(self.count, initializer=_init,
                                     initargs=(type(self.pipeline), self.pipeline.settings, os.getpid())) as pool:
                window: deque = deque()
                for job in jobs:
                    window.append(pool.submit(_call, fn, job))
                    if len(window) >= 2 * self.count:
                        yield window.popleft().result()
                while window:
                    yield window.popleft().result()
        finally:
            _INHERITED.clear()
            cv2.setNumThreads(threads)

    def close(self) -> None:
        """Nothing to end: the processes of a ``map`` end with it."""


def pipeline_map(pipeline: Any, fn: Callable[..., Any], jobs: Iterable[tuple],
                 workers: int) -> Iterator[Any]:
    """Yield ``fn(pipeline, *job)`` for each job, in order. ``fn`` must be a module-level
    function; with workers > 1 it runs in that many processes (``PipelinePool``)."""
    return PipelinePool(pipeline, workers).map(fn, jobs)


def _each(share: Sequence[tuple], function: str) -> list:
    """``function(*job)`` of each job of a share (``Workers.map``)."""
    fn = resolve(function)
    return [fn(*job) for job in share]


class Workers:
    """``count`` worker processes; ``run(function, items, *args)`` calls
    ``function(share, *args)`` on ``count`` shares of ``items`` (a list or an array), each in
    a worker, and returns at once; ``Pending.result()`` gives each share's result in order.
    ``function`` ("module:name") must return one result per item of its share. Take the
    result of one run before starting the next. ``map`` (``Pool``) runs one function per
    job instead, the jobs shared among the workers."""

    def __init__(self, count: int = DEFAULT_WORKERS) -> None:
        self.count = max(1, int(count))
        self._procs: list[subprocess.Popen] = []

    def map(self, function: Callable | str, jobs: Iterable[tuple]) -> Iterator[Any]:
        """``function(*job)`` for each job, in order (``Pool``): the jobs in one run, a share
        a worker; ``function`` a module-level function or its "module:name"."""
        for part in self.run("pof.runtime.workers:_each", list(jobs), function_name(function)).result():
            yield from part

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
