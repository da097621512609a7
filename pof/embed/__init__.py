"""The embed stage: a unit-length descriptor per face. Backends by name in EMBEDDERS."""
from __future__ import annotations

from importlib import import_module

EMBEDDERS = {
    # dlib's ResNet and MobileFace, scores added (the default; see pof.embed.mobileface)
    "dlib+mobileface-onnx": "pof.embed.mobileface:DlibMobileFace",
    "dlib-resnet-onnx": "pof.embed.onnx_resnet:OnnxResNet",   # dlib's network in ONNX Runtime
    "dlib-resnet": "pof.embed.dlib_resnet:DlibResNet",        # the same network in dlib itself
    "mobileface-onnx": "pof.embed.mobileface:MobileFace",     # MobileFace alone (for studies)
}


def create(name: str, device: str = "cpu"):
    """Instantiate the embedder backend registered as ``name`` (``device`` for those that
    run on ONNX Runtime)."""
    from ..errors import SettingError
    if name not in EMBEDDERS:
        raise SettingError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}")
    module, cls = EMBEDDERS[name].split(":")
    backend = getattr(import_module(module), cls)
    return backend(device=device) if name.endswith("-onnx") else backend()
