"""The detect stage. Backends by name in DETECTORS, one per file; created on demand."""
from __future__ import annotations

from importlib import import_module
from typing import Any

import numpy as np

from pof.errors import SettingError
from pof.stages.detect.base import Detection, Detector

DETECTORS = {
    "mtcnn": "pof.stages.detect.mtcnn:MTCNNDetector",
    "hog": "pof.stages.detect.hog:HOGDetector",
}


def create(name: str, **options) -> Detector:
    """Instantiate the detector registered as ``name`` with backend ``options``."""
    if name not in DETECTORS:
        raise SettingError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    module, cls = DETECTORS[name].split(":")
    return getattr(import_module(module), cls)(**options)


def detected_face(index: int, box, score: float, landmarks5, seen_on: str = "original"):
    """A new Face from one detection: its index in the photo, box (x, y, w, h), score and
    five landmarks, and the image it was found on where that is not the original
    (``Face.extra["detected_on"]``, see ``with_retries``)."""
    from pof.record import Face
    return Face(index=index, box=box, det_score=float(score), landmarks5=landmarks5,
                extra={"detected_on": seen_on} if seen_on != "original" else {})


def contrast_fixes():
    """The contrast-equalised copies a photo is searched again on when nothing is found on
    it, in order: ("equalized", histogram equalisation), then ("clahe", CLAHE). Harsh side
    light hides half a face; with a mask or an eye band over the other half the detector
    then sees too little. Equalising finds 11 of the 16 masked or eye-banded Yale probes
    missed otherwise (bench/work/core)."""
    import cv2
    return (("equalized", cv2.equalizeHist),
            ("clahe", cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply))


def equalised(pixels: np.ndarray, fix) -> np.ndarray:
    """uint8 RGB (H, W, 3): the photo's grey levels through ``fix`` (of ``contrast_fixes``),
    in all three channels."""
    import cv2
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.repeat(fix(gray)[:, :, None], 3, axis=2))


def with_retries(first: list, find, photos: list[np.ndarray]) -> list[tuple[Any, str]]:
    """(detections, seen_on) per photo. ``first``: each photo's detections above the score
    threshold (anything with a length); ``find(images)`` detects (and thresholds) likewise in
    a list of images. Photos with none are searched again on each ``contrast_fixes`` copy in
    turn; ``seen_on`` names the image they were found on ("original", "equalized", "clahe";
    "original" with no detections where none had any). Boxes stay in the original's pixels.
    The CPU pipeline calls it for one photo, the GPU engine for a batch."""
    found = [(d, "original") for d in first]
    for name, fix in contrast_fixes():
        empty = [i for i, (d, _) in enumerate(found) if not len(d)]
        if not empty:
            break
        for i, d in zip(empty, find([equalised(photos[i], fix) for i in empty]), strict=True):
            if len(d):
                found[i] = (d, name)
    return found


__all__ = ["DETECTORS", "Detection", "Detector", "contrast_fixes", "create", "detected_face", "equalised",
           "with_retries"]
