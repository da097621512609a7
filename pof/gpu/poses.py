"""Head poses for the GPU engine, fitted by OpenCV in worker processes (``pof.runtime.workers``).

``pof.stages.quality.head_pose`` is OpenCV's PnP fit, about 0.3 ms a face. In the engine's one
Python process even a thread pool left it serial, so worker processes fit shares of a batch's
faces while the device cuts chips and runs the recognizers. The angles are the CPU pipeline's
exactly.
"""
from __future__ import annotations

import numpy as np

from pof.runtime.workers import Workers

INLINE_FACES = 64          # fewer faces than this: poses fitted here (sending costs more)
FUNCTION = "pof.stages.quality:head_poses"


class Poses:
    """``start(landmarks68, image_size)`` returns at once; ``.result()`` of what it returns
    gives the (N, 3) yaw, pitch, roll array of ``pof.stages.quality.head_poses``."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers

    def start(self, landmarks68: np.ndarray, image_size: tuple[int, int]) -> _Joined:
        points = np.asarray(landmarks68, np.float64)
        return _Joined(self.workers.run(FUNCTION, points, tuple(image_size), inline_below=INLINE_FACES))


class _Joined:
    """The workers' shares as one array."""

    def __init__(self, pending) -> None:
        self._pending = pending

    def result(self) -> np.ndarray:
        parts = self._pending.result()
        return np.concatenate(parts) if parts else np.zeros((0, 3))
