"""The embed stage: a unit-length descriptor per face. Backends by name in EMBEDDERS."""
from __future__ import annotations

from importlib import import_module

EMBEDDERS = {"dlib-resnet": "pof.embed.dlib_resnet:DlibResNet"}


def create(name: str):
    """Instantiate the embedder backend registered as ``name``."""
    from ..errors import SettingError
    if name not in EMBEDDERS:
        raise SettingError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}")
    module, cls = EMBEDDERS[name].split(":")
    return getattr(import_module(module), cls)()
