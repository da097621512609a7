"""The landmarks stage: 68 points per face with dlib's shape predictor.

dlib's predictor was trained on upright faces inside the boxes of dlib's HOG detector. To give
it that for any detector (MTCNN boxes are shaped differently) and any in-plane rotation, the
face is first warped into an upright frame from its 5 detector landmarks, the predictor runs
there on a box placed as HOG would place it, and the points are mapped back to the source.
HOG_BOX_CENTRE and HOG_BOX_WIDTH were measured on the 160 Yale faces dlib's HOG detector finds
(offset of the box centre below the eye midpoint, and box width, in units of the
eye-to-mouth distance and the sum of the eye distance and eye-to-mouth distance).
"""
from __future__ import annotations

import numpy as np

from pof.stages import align
from pof.stages.arrays import as_type, namespace
from pof.runtime.weights import dlib_model
from pof.record import Face

HOG_BOX_CENTRE = 0.472   # x eye-to-mouth distance, below the eye midpoint
HOG_BOX_WIDTH = 1.15     # x (eye distance + eye-to-mouth distance)


def five_from_68(points):
    """The 5 pof landmarks (eye centres, nose tip, mouth corners) from 68 iBUG points:
    (68, 2) -> (5, 2), or (N, 68, 2) -> (N, 5, 2); float32, numpy or torch."""
    p = as_type(points, "float32")
    xp = namespace(p)
    return xp.stack([p[..., 36:42, :].mean(axis=-2), p[..., 42:48, :].mean(axis=-2), p[..., 30, :],
                     p[..., 48, :], p[..., 54, :]], axis=-2)


def hog_like_box(landmarks5: np.ndarray) -> tuple[float, float, float, float]:
    """Where dlib's HOG detector would put its box (x, y, w, h) for a face with these 5
    landmarks, in the same coordinates (use on an upright face)."""
    eyes = (landmarks5[0] + landmarks5[1]) / 2
    mouth = (landmarks5[3] + landmarks5[4]) / 2
    d_ee = float(np.linalg.norm(landmarks5[1] - landmarks5[0]))
    d_em = float(np.linalg.norm(mouth - eyes))
    w = HOG_BOX_WIDTH * (d_ee + d_em)
    cx, cy = eyes[0], eyes[1] + HOG_BOX_CENTRE * d_em
    return (float(cx - w / 2), float(cy - w / 2), w, w)


def rect_ltrb(box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A box (x, y, w, h) as the whole-pixel left, top, right, bottom of a dlib rectangle."""
    x, y, w, h = box
    return int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))


def _rect(box: tuple[float, float, float, float]):
    import dlib  # imported where used: pof.gpu runs on machines without dlib
    return dlib.rectangle(*rect_ltrb(box))


class DlibLandmarks:
    """68-point landmarks with ``shape_predictor_68_face_landmarks.dat``."""

    name = "dlib-68"
    version = "shape_predictor_68_face_landmarks"

    def __init__(self) -> None:
        self._predictor = None

    @property
    def predictor(self):
        if self._predictor is None:
            import dlib
            self._predictor = dlib.shape_predictor(str(dlib_model("shape68")))
        return self._predictor

    def fit(self, image: np.ndarray, face: Face) -> None:
        """Fill ``face.landmarks68`` (source pixels). A face without 5 landmarks (e.g. from the
        HOG detector) is fitted in its own box and gets its 5 landmarks derived from the 68."""
        if face.landmarks5 is None:
            shape = self.predictor(image, _rect(face.box))
            face.landmarks68 = _points(shape)
            face.landmarks5 = five_from_68(face.landmarks68)
            return
        m = align.frame_matrix(face.landmarks5)
        frame = align.warp(image, m, (align.FRAME_SIZE, align.FRAME_SIZE))
        box = hog_like_box(align.transform_points(face.landmarks5, m))
        shape = self.predictor(frame, _rect(box))
        face.landmarks68 = align.transform_points(_points(shape), align.invert(m))


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
