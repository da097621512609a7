"""One-to-one verification: are two faces the same person?

The threshold comes from the reference impostor scores shipped with pof (pairs of photos of
different people, ``pof/data/reference_impostors.npy``): the score that a share ``fmr`` of
impostor pairs reach. ``fmr`` in the result is the estimated false-match rate at the pair's score.
"""
from __future__ import annotations

import numpy as np

from .calibrate import reference_impostors, tail_rate
from .record import Face

DEFAULT_FMR = 1e-3


def largest(faces: list[Face]) -> Face:
    """The face with the largest box (the subject of a portrait)."""
    return max(faces, key=lambda f: f.box[2] * f.box[3])


class Verifier:
    """Scores pairs of faces against a threshold at a target false-match rate."""

    def __init__(self, target_fmr: float = DEFAULT_FMR, embedder: str | None = None) -> None:
        self.impostors = reference_impostors(embedder)
        if len(self.impostors) == 0:
            from .calibrate import reference_path
            raise ValueError(f"{reference_path(embedder)} is missing: reinstall pof")
        self.target_fmr = target_fmr
        k = max(1, int(np.ceil(len(self.impostors) * target_fmr)))
        self.threshold = float(self.impostors[-k]) + 1e-6

    def fmr(self, score: float) -> float:
        """Share of reference impostor pairs scoring at least ``score`` (1/(M+1) if none)."""
        return tail_rate(self.impostors, score)[0]

    def compare(self, a: Face, b: Face) -> dict:
        score = float(np.dot(a.descriptor, b.descriptor))
        return {"same": score >= self.threshold, "score": round(score, 4),
                "threshold": round(self.threshold, 4), "fmr": float(f"{self.fmr(score):.3g}")}
