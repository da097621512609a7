"""dlib's face ResNet run by ONNX Runtime: the same 128-d descriptors as ``dlib_resnet``
(cosine > 0.9999 to dlib's on real chips), from the same 150 x 150 chips, faster and batched.

The ONNX file is converted once from dlib's ``.dat`` by ``tools/convert_dlib_resnet.py``; its
input is ``chip`` float32 (N, 3, 150, 150) raw RGB 0-255, its output ``descriptor`` float32
(N, 128), dlib's raw (not unit-length) vectors.
"""
from __future__ import annotations


import numpy as np

from pof.runtime.sessions import OnnxModel
from pof.errors import PofError
from pof.record import Face
from pof.stages.embed import unit
from pof.stages.embed.dlib_resnet import CHIP_SIZE, embed_faces
from pof.runtime.weights import MODELS

MODEL_DIR = MODELS / "dlib_resnet"
MODEL = MODEL_DIR / "dlib_face_recognition_resnet_model_v1.onnx"
# SHA-256 of MODEL as tools/convert_dlib_resnet.py writes it; checked when the model is loaded.
MODEL_SHA256 = "0ec1cc381faf523a90076791c2ffeeb40bb2feba556dffd4d255f192b8969638"


class OnnxResNet(OnnxModel):
    """128-d unit-length descriptors; all faces of one image go through the network at once.

    device: "cpu" or "cuda" (see ``pof.runtime.device.onnx_providers``); threads: ONNX Runtime's
    intra-op threads (default 1: pof parallelises over images, one process per core).
    """

    name = "dlib-resnet-onnx"
    dim = 128

    MODEL, MODEL_SHA256, CONVERTER = MODEL, MODEL_SHA256, "tools/convert_dlib_resnet.py"
    version = f"{MODEL.name}/sha256-{MODEL_SHA256[:12]}"

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Unit-length descriptors (N, 128) float32 of chips (N, 150, 150, 3) uint8 RGB, as
        ``pof.stages.embed.dlib_resnet.chip`` cuts them; one network run for the whole batch."""
        chips = np.asarray(chips)
        shape = (CHIP_SIZE, CHIP_SIZE, 3)
        if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != shape:
            raise PofError(f"chips must be uint8 (N, {CHIP_SIZE}, {CHIP_SIZE}, 3); got "
                           f"{chips.dtype} {chips.shape}: cut them with pof.stages.embed.dlib_resnet.chip")
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = np.ascontiguousarray(chips.transpose(0, 3, 1, 2), dtype=np.float32)
        vecs = self.session.run(["descriptor"], {"chip": x})[0].astype(np.float32, copy=False)
        return unit(vecs)

    def embed(self, image: np.ndarray, faces: list[Face], mirror: bool = False) -> None:
        """Fill ``descriptor`` of every face (``pof.stages.embed.dlib_resnet.embed_faces``)."""
        embed_faces(self.embed_chips, image, faces, mirror)
