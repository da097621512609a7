"""Head poses for the GPU engine, fitted by OpenCV in worker processes.

``pof.quality.head_pose`` is OpenCV's PnP fit, about 0.3 ms a face. In the engine's one
Python process even a thread pool leaves it serial (the numpy around each OpenCV call holds
the interpreter lock), so here worker processes fit shares of a batch's faces while the device
cuts chips and runs the recognizers. The angles are the CPU pipeline's exactly. This module
imports no torch: the workers import it, and should start fast.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from .. import quality as cpu_quality

INLINE_FACES = 64          # fewer faces than this: poses fitted here (sending costs more)
POSE_WORKERS = max(1, min(4, (os.cpu_count() or 1) // 2))


class Poses:
    """Head poses fitted by OpenCV in worker processes, each fitting a share of the faces.

    The workers are plain ``python -c`` processes fed pickled landmarks through a pipe
    (started on first need): a forked child of a process holding a CUDA context or OpenCV's
    thread pool is not safe, and multiprocessing's ``spawn`` would re-run the caller's main
    script. A worker that fails or dies is replaced by fitting its share here: results are
    never lost. ``start(landmarks68, image_size)`` returns at once; ``Pending.result()`` gives
    the (N, 3) yaw, pitch, roll array, as ``pof.quality.head_poses``."""

    def __init__(self, workers: int = POSE_WORKERS) -> None:
        self.workers = max(1, int(workers))
        self._procs: list[subprocess.Popen] = []

    def start(self, landmarks68: np.ndarray, image_size: tuple[int, int]) -> Pending:
        points = np.asarray(landmarks68, np.float64)
        if len(points) < INLINE_FACES:
            return Pending([(None, points, image_size)])
        self._procs = [p for p in self._procs if p.poll() is None]
        self._procs += self._start_workers(self.workers - len(self._procs))
        parts = []
        for proc, part in zip(self._procs, np.array_split(points, len(self._procs))):
            try:
                _send(proc.stdin, (part, tuple(image_size)))
                parts.append((proc, part, image_size))
            except OSError:          # the worker is gone: its share is fitted here
                parts.append((None, part, image_size))
        return Pending(parts)

    def _start_workers(self, count: int) -> list[subprocess.Popen]:
        import pof
        env = dict(os.environ)
        root = str(Path(pof.__file__).resolve().parent.parent)     # where pof is imported from
        env["PYTHONPATH"] = os.pathsep.join(x for x in (root, env.get("PYTHONPATH")) if x)
        env["OMP_NUM_THREADS"] = "1"
        code = "from pof.gpu.poses import serve; serve()"
        return [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=env) for _ in range(count)]

    def close(self) -> None:
        for proc in self._procs:
            try:
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
        self._procs = []


class Pending:
    """Poses being fitted, in face order: each share is (worker or None, landmarks, size)."""

    def __init__(self, parts: list) -> None:
        self._parts = parts

    def result(self) -> np.ndarray:
        out = []
        for proc, points, size in self._parts:
            got = None
            if proc is not None:
                try:
                    got = _receive(proc.stdout)
                except (OSError, EOFError, pickle.UnpicklingError):
                    proc.kill()                  # replaced on the next start
            if not isinstance(got, np.ndarray) or got.shape != (len(points), 3):
                got = cpu_quality.head_poses(points, size)
            out.append(got)
        return np.concatenate(out) if out else np.zeros((0, 3))


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the pose worker closed its pipe")
    size = struct.unpack("<Q", head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pose worker closed its pipe")
    return pickle.loads(data)


def serve() -> None:
    """A pose worker's loop: (landmarks, image size) in, their poses out, until stdin ends.
    A share that cannot be fitted is answered with None (the engine fits it itself)."""
    import cv2
    cv2.setNumThreads(1)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            points, size = _receive(stdin)
        except EOFError:
            return
        try:
            answer = cpu_quality.head_poses(points, size)
        except Exception:                    # noqa: BLE001 - reported by the None answer
            answer = None
        _send(stdout, answer)
