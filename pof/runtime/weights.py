"""Where model files live. Nothing here loads a model; nothing is ever downloaded.

dlib's models come from the ``face_recognition_models`` package. Its ``__init__`` imports
``pkg_resources``, which setuptools 81 and later no longer ship, so we locate the package's
folder with ``importlib.util.find_spec`` (which does not run ``__init__``) and build the paths
ourselves. The MTCNN networks are ONNX files inside pof itself (converted once by
``tools/convert_mtcnn.py`` from the weights in the facenet-pytorch wheel).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from pof.errors import PofError

DLIB_FILES = {
    "shape68": "shape_predictor_68_face_landmarks.dat",
    "shape5": "shape_predictor_5_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
}

PACKAGE = Path(__file__).resolve().parent.parent
MODELS = PACKAGE / "models"      # pof's own model files, one folder a network
DATA = PACKAGE / "data"          # reference impostor scores and the demo photos


@lru_cache(maxsize=None)
def dlib_model(key: str) -> Path:
    """Path of one of dlib's model files (key: shape68, shape5 or resnet)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise PofError("the face_recognition_models package is missing: pip install face_recognition_models")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    path = folder / DLIB_FILES[key]
    if not path.is_file():
        raise PofError(f"model file {path} is missing: reinstall face_recognition_models")
    return path


def package_version(name: str) -> str:
    """Installed version of a distribution, or 'unknown'."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"
