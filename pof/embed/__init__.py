"""The embed stage: a unit-length descriptor per face. Backends by name in EMBEDDERS."""
from __future__ import annotations

from importlib import import_module

import numpy as np

EMBEDDERS = {
    # dlib's ResNet and MobileFace, scores added (the default; see pof.embed.mobileface)
    "dlib+mobileface-onnx": "pof.embed.mobileface:DlibMobileFace",
    "dlib-resnet-onnx": "pof.embed.onnx_resnet:OnnxResNet",   # dlib's network in ONNX Runtime
    "dlib-resnet": "pof.embed.dlib_resnet:DlibResNet",        # the same network in dlib itself
    "mobileface-onnx": "pof.embed.mobileface:MobileFace",     # MobileFace alone (for studies)
}


def create(name: str, device: str = "cpu", threads: int = 1):
    """Instantiate the embedder backend registered as ``name`` (``device`` and inference
    ``threads`` for those that run on ONNX Runtime)."""
    from ..errors import SettingError
    if name not in EMBEDDERS:
        raise SettingError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}")
    module, cls = EMBEDDERS[name].split(":")
    backend = getattr(import_module(module), cls)
    return backend(device=device, threads=threads) if name.endswith("-onnx") else backend()


def with_mirror(chips: np.ndarray, describe) -> np.ndarray:
    """Unit-length descriptors of ``chips`` (N, H, W, 3) that average each chip's descriptor
    with its mirror image's: ``describe`` maps chips to unit vectors (N, D). A test-time
    augmentation for verification (``pof verify --mirror``): it raises LFW pair accuracy, but
    not identification, so builds and searches do not use it (BENCHMARKS.md)."""
    both = describe(np.concatenate([chips, np.ascontiguousarray(chips[:, :, ::-1])]))
    v = both[:len(chips)] + both[len(chips):]
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)
