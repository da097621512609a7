"""The detect stage. Backends by name in DETECTORS, one per file; created on demand."""
from __future__ import annotations

from importlib import import_module

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


__all__ = ["DETECTORS", "Detection", "Detector", "create"]
