"""One array module for numpy arrays and torch tensors alike.

The stages' rules (the similarity fit, the affine inverse, the 68 -> 5 point reduction, the
descriptor fusion, the MTCNN box rules, blockiness, blur) are written once, against the few
functions numpy and torch name the same way (``stack``, ``concatenate``, ``linalg.svd``,
``clip``, methods such as ``.mean(axis=...)``). ``namespace`` gives the module of an input:
numpy for numpy arrays and Python numbers, torch for tensors. The CPU pipeline calls a rule
on numpy arrays, one face or one photo at a time; the GPU engine (``pof.gpu``) calls the
same rule on a whole batch, on numpy arrays or on tensors on its device. The handful of
places where the two libraries spell a thing differently are the helpers below.
Nothing here imports torch: a tensor is recognised by its class's module.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_tensor(a: Any) -> bool:
    """Whether ``a`` is a torch tensor (without importing torch)."""
    return type(a).__module__.startswith("torch")


def namespace(*arrays: Any):
    """numpy, or torch where any of ``arrays`` is a tensor."""
    return sys.modules["torch"] if any(is_tensor(a) for a in arrays) else np


def device(a: Any):
    """Where ``a`` lives: a tensor's device, "cpu" for anything else."""
    return a.device if is_tensor(a) else "cpu"


def as_type(a: Any, dtype: str, like: Any = None):
    """``a`` as an array of ``dtype`` ("float32", "float64", "int16", ...) in the array
    module of ``like`` (default: ``a``'s), on its device; no copy where nothing changes."""
    like = a if like is None else like
    xp = namespace(like)
    return xp.asarray(a, dtype=getattr(xp, dtype), device=device(like))


def flatnonzero(mask):
    """Indices where a 1-d mask is true, as an integer array of the mask's module."""
    return mask.nonzero().flatten() if is_tensor(mask) else np.flatnonzero(mask)


def sort_values(a, axis: int = -1):
    """``a`` sorted along ``axis`` (torch's sort also returns the order; only values here)."""
    return a.sort(axis).values if is_tensor(a) else np.sort(a, axis=axis)


def row_norms(v):
    """The Euclidean norm of each row of (N, D), kept as (N, 1)."""
    xp = namespace(v)
    return xp.linalg.vector_norm(v, axis=1, keepdims=True) if is_tensor(v) else \
        np.linalg.norm(v, axis=1, keepdims=True)
