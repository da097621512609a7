"""Synthetic face descriptors shaped like pof's, for studies at sizes no real set reaches here:
unit vectors grouped into persons (``per_person`` photos each), with the spread measured on
real descriptors (see ``synthetic`` and ``FUSED``)."""
from __future__ import annotations

import numpy as np


def synthetic(n: int, d: int = 128, per_person: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=d)
    mean /= np.linalg.norm(mean)
    persons = max(1, n // per_person)
    centres = mean + 0.5 * rng.normal(size=(persons, d)).astype(np.float32) / np.sqrt(d)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, d), np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        x = centres[np.arange(a, b) // per_person % persons] + 0.25 * rng.normal(size=(b - a, d)) / np.sqrt(d)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


# the fused shapes: total width -> (dlib's share w, second part's width, its noise). The noise
# sets the cosine within a person, about 1 / (1 + noise**2): 0.61 for MobileFace's part as
# the earlier default modelled it, 0.74 for MobileFaceNet's, as measured on 150 LFW faces of 25
# people (between persons: 0.007, sd 0.14)
FUSED = {384: (0.93, 256, 0.8),     # dlib + MobileFace (an earlier default)
         320: (0.8, 192, 0.6)}      # dlib + MobileFaceNet (the default)


def synthetic_fused(n: int, per_person: int = 10, seed: int = 0, w: float = 0.93,
                    dim2: int = 256, noise: float = 0.8) -> np.ndarray:
    """Synthetic descriptors shaped like a fused pof descriptor: a dlib-like 128-d part
    (``synthetic``) and an ArcFace-like ``dim2``-d part (persons' centres unrelated, cosine
    about 0 between persons, about 1 / (1 + noise**2) within), joined as [sqrt(w) dlib,
    sqrt(1-w) second]."""
    d = synthetic(n, 128, per_person, seed)
    rng = np.random.default_rng(seed + 1)
    persons = max(1, n // per_person)
    centres = rng.normal(size=(persons, dim2)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    m = np.empty((n, dim2), np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        x = centres[np.arange(a, b) // per_person % persons] + noise * rng.normal(size=(b - a, dim2)) / np.sqrt(dim2)
        m[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.hstack([np.sqrt(w) * d, np.sqrt(1 - w) * m]).astype(np.float32)
