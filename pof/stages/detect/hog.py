"""dlib's HOG + linear SVM frontal face detector (the face_recognition library's default)."""
from __future__ import annotations

import dlib
import numpy as np

from pof.stages.detect.base import Detection, Detector


class HOGDetector(Detector):
    """dlib's ``get_frontal_face_detector``. Gives boxes only; the landmarks stage fits the
    68 points inside them. ``upsample`` doubles the image that many times first (finds
    faces down to about 40 px, or 20 px with upsample=1)."""

    name = "hog"
    version = f"dlib-{dlib.__version__}-frontal"

    def __init__(self, upsample: int = 1, min_face_size: int = 20, **_ignored) -> None:
        self.upsample = upsample
        self._detector = None

    def settings_key(self) -> str:
        return f"upsample{self.upsample}"

    def detect(self, image: np.ndarray) -> list[Detection]:
        if self._detector is None:
            self._detector = dlib.get_frontal_face_detector()
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        out = []
        for r, s in zip(rects, scores):
            x0, y0, x1, y1 = r.left(), r.top(), r.right(), r.bottom()   # may pass the edge
            conf = float(1.0 / (1.0 + np.exp(-2.0 * s)))   # SVM margin -> 0-1
            out.append(Detection((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), conf, None))
        return sorted(out, key=lambda d: -d.score)
