"""Run pipeline work over many items in worker processes, results in input order.

Each worker builds its own Pipeline once (models load lazily in it), except dlib's 68-point
model, which the parent reads once and its forked workers share; at most two jobs per
worker are in flight, so memory stays bounded however many items there are. Workers run
OpenCV on one thread, as they run the models: parallelism is by process, one per core.
A worker ends when the process that started it does, even one killed with SIGKILL
(``pof.runtime.workers.die_with_parent``).
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import cv2

from pof.runtime.workers import die_with_parent

_PIPELINE: Any = None   # one per worker process, set by _init
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


def pipeline_map(pipeline: Any, fn: Callable[..., Any], jobs: Iterable[tuple],
                 workers: int) -> Iterator[Any]:
    """Yield ``fn(pipeline, *job)`` for each job, in order. ``fn`` must be a module-level
    function; with workers > 1 it runs in that many processes, each with a pipeline of the
    same class made from ``pipeline.settings`` (``pof.pipeline.Pipeline``)."""
    if workers <= 1:
        for job in jobs:
            yield fn(pipeline, *job)
        return
    # OpenCV's own thread pool would compete with the other workers for the cores (a build
    # of the bench photos took 1.4% more CPU with it). The workers inherit the setting from
    # this process when they fork: setting it in a forked child whose parent had started
    # the pool hangs OpenCV. This process gets its threads back at the end.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    # dlib's 68-point model (100 MB, 0.4 s to read) is loaded once here and its pages are
    # shared with every worker, rather than read by each
    _INHERITED["landmarks"] = pipeline.landmarks
    _INHERITED["landmarks"].predictor        # read now, before the workers fork
    try:
        with ProcessPoolExecutor(workers, initializer=_init,
                                 initargs=(type(pipeline), pipeline.settings, os.getpid())) as pool:
            window: deque = deque()
            for job in jobs:
                window.append(pool.submit(_call, fn, job))
                if len(window) >= 2 * workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
    finally:
        _INHERITED.clear()
        cv2.setNumThreads(threads)
