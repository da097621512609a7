"""One-to-one verification: are two faces the same person?

The threshold comes from the reference impostor scores shipped with pof (pairs of photos of
different people, ``pof/data/reference_impostors_<embedder>[_mirror].npy``): the score that a
share ``fmr`` of impostor pairs reach. ``fmr`` in the result is the estimated false-match rate at
the pair's score.

Which face of a photo is compared (``SUBJECTS``): the largest (a portrait's subject), or the one
nearest the centre (the convention of sets such as LFW, whose photos are centred on the named
person while a larger face may stand beside). By default both faces' descriptors average the
face and its mirror image (``mirror``): on the 6,000 LFW pairs that takes 10-fold accuracy from
98.9% to 99.2% (central faces), while it does not help identification, so only verification
uses it (BENCHMARKS.md). Mirrored descriptors have their own reference impostors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pof.matching.calibrate import reference_impostors, reference_path, tail_rate
from pof.errors import InstallError, NoFaceError, PofError
from pof.matching.results import Verification, box_of, rate
from pof.record import Face
from pof.stages.select import subject

DEFAULT_FMR = 1e-3
def subject_or_error(pipeline, path: str | Path, rule: str = "largest", mirror: bool = False
                     ) -> tuple[Face | None, str | None]:
    """(the subject face of an image, None), or (None, why not). The face's ``extra`` gets
    ``faces_in_photo``, so a caller can say when another face could have been meant.
    Module-level so worker processes can run it (see pof.runtime.workers)."""
    try:
        pixels = pipeline.load(path).pixels
        faces = pipeline.analyze(pixels, with_crops=False, mirror=mirror)
        if not faces:
            raise NoFaceError(f"{path}: no face found")
        face = subject(faces, rule, pixels.shape[1], pixels.shape[0])
        face.extra["faces_in_photo"] = len(faces)
        return face, None
    except PofError as exc:
        return None, str(exc)


class Verifier:
    """Scores pairs of faces against a threshold at a target false-match rate. ``mirror``:
    the faces' descriptors were made with ``mirror=True`` (the threshold comes from impostors
    made the same way)."""

    def __init__(self, target_fmr: float = DEFAULT_FMR, embedder: str | None = None,
                 mirror: bool = False) -> None:
        self.impostors = reference_impostors(embedder, mirror)
        if len(self.impostors) == 0:
            raise InstallError(f"{reference_path(embedder, mirror)} is missing: reinstall pof")
        self.target_fmr = target_fmr
        self.mirror = mirror
        k = max(1, int(np.ceil(len(self.impostors) * target_fmr)))
        self.threshold = float(self.impostors[-k]) + 1e-6

    def fmr(self, score: float) -> float:
        """Share of reference impostor pairs scoring at least ``score`` (1/(M+1) if none)."""
        return tail_rate(self.impostors, score)[0]

    def compare(self, a: Face, b: Face) -> Verification:
        """``same``, ``score``, ``threshold``, ``fmr``; and how many faces each photo held
        (``faces_in_photo`` in ``extra``) with the compared face's box (x, y, w, h), which the
        JSON gives where a photo held more than one, so the reader can check it was the
        person meant."""
        score = float(np.dot(a.descriptor, b.descriptor))
        return Verification(score >= self.threshold, round(score, 4), round(self.threshold, 4),
                            rate(self.fmr(score)),
                            a.extra.get("faces_in_photo", 1), box_of(a.box),
                            b.extra.get("faces_in_photo", 1), box_of(b.box))
