"""The one record that flows through the pipeline: a Face, each stage filling its fields.

Coordinates are (x, y) in source pixels unless a name says ``crop``. Boxes are (x, y, w, h).
Landmark order for the 5 points: image-left eye, image-right eye, nose tip, image-left mouth
corner, image-right mouth corner. The 68 points follow the iBUG 300-W numbering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Pose:
    """Head pose in degrees: yaw (turn, + to the image's right), pitch (nod, + down), roll
    (in-plane tilt, + clockwise in the image)."""

    yaw: float
    pitch: float
    roll: float


@dataclass
class Face:
    """One face found in one source image."""

    index: int                                   # order of the face in its source (by score)
    box: tuple[float, float, float, float]       # detect: (x, y, w, h), source pixels
    det_score: float                             # detect: 0-1
    landmarks5: np.ndarray                       # detect: (5, 2) float32, source pixels
    landmarks68: np.ndarray | None = None        # landmarks: (68, 2) float32, source pixels
    crop: np.ndarray | None = None               # align: uint8 RGB (280, 200, 3)
    crop_matrix: np.ndarray | None = None        # align: 2 x 3, source -> crop pixels
    descriptor: np.ndarray | None = None         # embed: float32 (D,), unit length
    pose: Pose | None = None                     # quality
    interocular: float = 0.0                     # quality: eye-centre distance, source pixels
    blur: float = 0.0                            # quality: 0 sharp .. 1 very blurred
    quality: float = 0.0                         # quality: 0 unusable .. 1 ideal
    attributes: dict = field(default_factory=dict)   # attributes: {schema name: 0-1 score}
    extra: dict = field(default_factory=dict)    # backend-specific notes, JSON-safe

    def crop_points(self, points: np.ndarray) -> np.ndarray:
        """Map source-pixel points (N, 2) into crop pixels with this face's crop matrix."""
        if self.crop_matrix is None:
            raise ValueError("this face has not been aligned yet")
        return points @ self.crop_matrix[:, :2].T + self.crop_matrix[:, 2]
