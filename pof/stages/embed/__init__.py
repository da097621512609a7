"""The embed stage: a unit-length descriptor per face. Backends by name in EMBEDDERS."""
from __future__ import annotations

from importlib import import_module

import numpy as np

from pof.stages.arrays import is_tensor, row_norms

EMBEDDERS = {
    # dlib's ResNet and MobileFaceNet, scores added (the default; see pof.stages.embed.mobilefacenet)
    "dlib+mobilefacenet-onnx": "pof.stages.embed.mobilefacenet:DlibMobileFaceNet",
    # dlib's ResNet and MobileFace, scores added (an earlier default)
    "dlib+mobileface-onnx": "pof.stages.embed.mobileface:DlibMobileFace",
    "dlib-resnet-onnx": "pof.stages.embed.onnx_resnet:OnnxResNet",   # dlib's network in ONNX Runtime
    "dlib-resnet": "pof.stages.embed.dlib_resnet:DlibResNet",        # the same network in dlib itself
    "mobileface-onnx": "pof.stages.embed.mobileface:MobileFace",     # MobileFace alone (for studies)
    "mobilefacenet-onnx": "pof.stages.embed.mobilefacenet:MobileFaceNet",   # MobileFaceNet alone
}


def backend(name: str):
    """The class registered as ``name``."""
    from pof.errors import SettingError
    if name not in EMBEDDERS:
        raise SettingError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}")
    module, cls = EMBEDDERS[name].split(":")
    return getattr(import_module(module), cls)


def create(name: str, device: str = "cpu", threads: int = 1, runtime: str = "onnxruntime"):
    """Instantiate the embedder backend registered as ``name`` (``device``, inference
    ``threads`` and the CPU ``runtime`` setting for those that run ONNX files)."""
    cls = backend(name)
    return cls(device=device, threads=threads, runtime=runtime) if name.endswith("-onnx") else cls()


def with_mirror(chips: np.ndarray, describe) -> np.ndarray:
    """Unit-length descriptors of ``chips`` (N, H, W, 3) that average each chip's descriptor
    with its mirror image's: ``describe`` maps chips to unit vectors (N, D). A test-time
    augmentation for verification (``pof verify --mirror``): it raises LFW pair accuracy, but
    not identification, so builds and searches do not use it (BENCHMARKS.md)."""
    both = describe(np.concatenate([chips, np.ascontiguousarray(chips[:, :, ::-1])]))
    return mirror_mean(both).astype(np.float32)


def unit(vectors):
    """Rows of (N, D) scaled to unit length (rows of zeros stay zeros); numpy or torch."""
    norms = row_norms(vectors)
    if is_tensor(norms):
        return vectors / norms.clamp(min=1e-12)
    return vectors / np.maximum(norms, 1e-12)


def mirror_mean(both):
    """Descriptors of N chips followed by their N mirror images' (2N, D) -> the unit mean of
    each chip's pair (N, D): how a mirrored descriptor is made; numpy or torch."""
    n = len(both) // 2
    return unit(both[:n] + both[n:])
