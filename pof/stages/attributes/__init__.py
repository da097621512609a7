"""The attributes stage: a 0-1 score per face for each attribute of the schema pof estimates.

The schema (``pof.stages.attributes.schema.SCHEMA``) names, for each of its 67 attributes, the backend
that scores it or why none does. Backends, one per file, registered by name in ESTIMATORS:

- ``landmarks`` (geometry.py): measured from the 68 landmarks (eyes open, mouth open).
- ``pixels`` (pixels.py): measured from the crop's pixels (blur, colour, lighting, glasses,
  teeth).
- ``regions`` (regions.py): hair colour, baldness, moustache, beard and forehead, measured in
  landmark-placed regions of the colour crop against the same face's own skin (colour photos
  only).
- ``face-api`` (faceapi.py): face-api's small age-gender and expression networks, converted to
  ONNX by ``tools/convert_faceapi_attributes.py``.

Every backend sees the 200 x 280 dataset crop and the 68 landmarks in crop pixels, so the
scores are the same whatever the source photo's size. Scores are probabilities or monotone
0-1 measures; 0.5 is the decision point used in validation (bench/attributes.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

import numpy as np

from pof.errors import SettingError
from pof.record import Face
from pof.stages.attributes.schema import BY_NAME, COLUMNS, DEMOGRAPHIC, SCHEMA, TASKS, Attribute

ESTIMATORS = {
    "landmarks": "pof.stages.attributes.geometry:LandmarkEstimator",
    "pixels": "pof.stages.attributes.pixels:PixelEstimator",
    "face-api": "pof.stages.attributes.faceapi:FaceApiEstimator",
    "regions": "pof.stages.attributes.regions:RegionEstimator",
}

# batches of at least this many faces are scored in worker processes when the caller has
# them (AttributeStage.estimate)
WORKER_MIN_FACES = 16

__all__ = ["AttributeStage", "FaceView", "SCHEMA", "COLUMNS", "TASKS", "Attribute", "BY_NAME",
           "DEMOGRAPHIC", "ESTIMATORS"]


@dataclass
class FaceView:
    """What an estimator sees of one face."""

    crop: np.ndarray       # uint8 RGB (280, 200, 3), the dataset crop
    points: np.ndarray     # float32 (68, 2), the 68 landmarks in crop pixels (x, y)
    blur: float            # pof's blur measure, 0 sharp .. 1 very blurred
    yaw: float = 0.0       # head turn, degrees (pof.stages.quality)

    @classmethod
    def of(cls, face: Face) -> "FaceView":
        if face.crop is None or face.landmarks68 is None:
            raise ValueError("attributes need the face's crop and 68 landmarks: run align first")
        return cls(face.crop, face.crop_points(face.landmarks68).astype(np.float32), face.blur,
                   face.pose.yaw if face.pose is not None else 0.0)


def create(name: str, device: str = "cpu", threads: int = 1):
    """Instantiate the estimator backend registered as ``name`` (``threads``: inference
    threads, for those that run a model)."""
    if name not in ESTIMATORS:
        raise SettingError(f"unknown attribute estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    module, cls = ESTIMATORS[name].split(":")
    return getattr(import_module(module), cls)(device=device, threads=threads)


class AttributeStage:
    """Fills ``Face.attributes`` ({name: 0-1 score}, columns order) for a batch of faces.

    demographics: False leaves out perceived age group and gender (they are then not computed
    at all). Backends are created on first use and cached here.
    """

    def __init__(self, demographics: bool = True, device: str = "cpu", threads: int = 1) -> None:
        self.demographics = demographics
        self.device = device
        self.threads = threads
        self._backends: dict[str, object] = {}

    def backend(self, name: str):
        if name not in self._backends:
            self._backends[name] = create(name, self.device, self.threads)
        return self._backends[name]

    def names(self) -> list[str]:
        """The attributes this stage scores, in column order."""
        skip = set() if self.demographics else set(DEMOGRAPHIC)
        return [n for n in COLUMNS if BY_NAME[n].estimator and n not in skip]

    def estimate(self, faces: list[Face], workers=None) -> None:
        """Fill the faces' attributes. ``workers`` (``pof.runtime.workers.Workers``, optional):
        worker processes that score shares of the faces, for a batch of WORKER_MIN_FACES
        or more (the GPU engine's builds: its process is one core)."""
        if not faces:
            return
        views = [FaceView.of(f) for f in faces]
        if workers is not None and len(views) >= WORKER_MIN_FACES:
            parts = workers.run("pof.stages.attributes:score_views", views, self.demographics).result()
            self._assign(faces, [s for part in parts for s in part])
        else:
            self._assign(faces, self.scores(views))

    def scores(self, views: list[FaceView]) -> list[dict[str, float]]:
        """Every backend's raw scores of each face."""
        scores: list[dict[str, float]] = [{} for _ in views]
        for name in ESTIMATORS:
            for acc, s in zip(scores, self.backend(name).estimate(views, self.demographics)):
                acc.update(s)
        return scores

    def _assign(self, faces: list[Face], scores: list[dict[str, float]]) -> None:
        wanted = self.names()
        for f, s in zip(faces, scores):
            # a backend leaves out what it cannot measure on this face (e.g. lighting on a
            # turned head); that attribute is then empty for this face, never a guess
            f.attributes = {n: round(float(s[n]), 3) for n in wanted
                            if n in s and np.isfinite(s[n])}

    def describe(self) -> dict[str, str]:
        """Each backend's name and version (cheap: loads no model)."""
        return {name: import_module(ESTIMATORS[name].split(":")[0]).VERSION for name in ESTIMATORS}


_WORKER_STAGES: dict[bool, AttributeStage] = {}     # score_views's stage, in a worker process


def score_views(views: list[FaceView], demographics: bool = True) -> list[dict[str, float]]:
    """``AttributeStage.scores`` in a worker process (``pof.runtime.workers``): one stage a
    process, on the CPU, one thread."""
    if demographics not in _WORKER_STAGES:
        _WORKER_STAGES[demographics] = AttributeStage(demographics)
    return _WORKER_STAGES[demographics].scores(views)
