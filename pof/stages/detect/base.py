"""The detect stage: find faces in an RGB image.

Coordinates are in source pixels, x to the right, y down. The five landmarks are, in this
order: the eye on the image's left, the eye on the image's right, the nose tip, the mouth
corner on the image's left, the mouth corner on the image's right (shape (5, 2), x then y).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected face.

    box: (x, y, w, h) in source pixels, floats.
    score: detector confidence, 0-1.
    landmarks5: float32 array of shape (5, 2) in source pixels, or None for a detector
        that gives no landmarks (the pipeline then estimates them).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks5: np.ndarray | None


class Detector:
    """Interface of a face detector backend.

    A backend sets ``name`` and ``version`` and implements :meth:`detect`. Heavy resources
    (model sessions) are created lazily on first use, never at import.
    """

    name: str = "base"
    version: str = "0"

    def settings_key(self) -> str:
        """The settings that change what this detector finds (part of the descriptor key)."""
        return ""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find every face in ``image`` (uint8 RGB array, shape (H, W, 3)).

        Returns detections sorted by score, highest first; an empty list if there is none.
        """
        raise NotImplementedError
