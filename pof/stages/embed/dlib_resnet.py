"""dlib's face ResNet (``dlib_face_recognition_resnet_model_v1``): 128-d descriptors from the
150 x 150 chip that ``dlib.get_face_chip`` cuts from the 68 landmarks (padding 0.25)."""
from __future__ import annotations

import numpy as np

from pof.runtime.weights import dlib_model
from pof.record import Face
from pof.stages.embed import unit, with_mirror

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def _detection(face: Face):
    import dlib  # imported where used: pof.gpu runs on machines without dlib
    x, y, w, h = face.box
    rect = dlib.rectangle(int(x), int(y), int(x + w), int(y + h))
    pts = [dlib.point(int(round(px)), int(round(py))) for px, py in face.landmarks68]
    return dlib.full_object_detection(rect, pts)


def chip(image: np.ndarray, face: Face) -> np.ndarray:
    """The recognizer's input: uint8 RGB (150, 150, 3), as dlib.get_face_chip makes it."""
    import dlib
    return dlib.get_face_chip(image, _detection(face), size=CHIP_SIZE, padding=CHIP_PADDING)


def embed_faces(embed_chips, image: np.ndarray, faces: list[Face], mirror: bool = False) -> None:
    """Fill ``descriptor`` of every face (each must have ``landmarks68``) from its dlib chip
    through ``embed_chips`` (chips -> unit vectors); ``mirror``: averaged with the mirrored
    chip's (``pof.stages.embed.with_mirror``). Shared by dlib's ResNet in dlib and in ONNX."""
    if not faces:
        return
    chips = np.stack([chip(image, f) for f in faces])
    vecs = with_mirror(chips, embed_chips) if mirror else embed_chips(chips)
    for f, v in zip(faces, vecs):
        f.descriptor = v


class DlibResNet:
    """128-d descriptors; the raw dlib vectors are scaled to unit length."""

    name = "dlib-resnet"
    dim = 128

    def __init__(self) -> None:
        import dlib
        self._model = None
        self.version = f"dlib_face_recognition_resnet_model_v1/dlib-{dlib.__version__}"

    @property
    def model(self):
        if self._model is None:
            import dlib
            self._model = dlib.face_recognition_model_v1(str(dlib_model("resnet")))
        return self._model

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Unit-length descriptors (N, 128) of chips (N, 150, 150, 3) uint8 RGB."""
        vecs = np.array(self.model.compute_face_descriptor(list(chips)), dtype=np.float32)
        return unit(vecs)

    def embed(self, image: np.ndarray, faces: list[Face], mirror: bool = False) -> None:
        """Fill ``descriptor`` of every face (``pof.stages.embed.dlib_resnet.embed_faces``)."""
        embed_faces(self.embed_chips, image, faces, mirror)
