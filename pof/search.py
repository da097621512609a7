"""Open-set search of faces against a built dataset: ranked candidates, never verdicts.

Every face gets a ranked list of candidate persons, each with its fused score, the estimated
false-match rate at that score and the gallery images that matched (evidence), and a decision:
"match" only when the top score reaches the gallery's calibrated threshold, else "no_match".
The expected FPIR of that decision rule is reported with every face.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibrate import Calibration, calibrate, fuse_by_person, group_starts, impostor_scores
from .catalog import Catalog
from .errors import DatasetError
from .index import Index, build as build_index
from .record import Face

EVIDENCE = 3
# Quality gate, measured on the core bench (plain probes shrunk step by step): with the eyes
# 14 px apart DIR at FPIR 1% is 0.94, at 10 px 0.68, at 8 px 0.28, at 6 px rank-1 falls to
# 0.82 and DIR to 0.03. Under 8 px a face is answered "quality_too_low" rather than searched.
MIN_INTEROCULAR = 8.0
# Blur gate (bench/blur_sweep.py, plain probes blurred step by step): rank-1 is 0.95 or more
# while pof's blur measure stays under 0.9, 0.81 between 0.9 and 0.95, 0.44 above; DIR at
# FPIR 1% is already near 0 from 0.85. Over 0.9 a face is answered "quality_too_low".
MAX_BLUR = 0.9
NEIGHBOURS = 200      # images an approximate index returns per query before fusion


@dataclass
class Gallery:
    """Enrolled faces grouped by person (rows sorted by person label)."""

    descriptors: np.ndarray      # float32 (N, D), unit rows
    face_ids: list[str]
    persons: list[str]           # label of each row
    labels: list[str]            # distinct persons, in row order
    names: dict[str, str]
    starts: np.ndarray           # first row of each person in ``labels``
    descriptor_key: str
    attribution: dict[str, dict] = field(default_factory=dict)   # label -> agency, unit, badge...

    @classmethod
    def from_arrays(cls, descriptors: np.ndarray, face_ids: list[str], persons: list[str],
                    names: dict[str, str] | None = None, descriptor_key: str = "") -> "Gallery":
        """A gallery held in memory (rows in any order; they are grouped by person here)."""
        if not len(face_ids):
            raise DatasetError("the gallery is empty: enrol at least one face")
        order = sorted(range(len(persons)), key=lambda i: (persons[i], face_ids[i]))
        desc = np.asarray(descriptors, np.float32)[order]
        ids, pers = [face_ids[i] for i in order], [persons[i] for i in order]
        starts = group_starts(pers)
        labels = [pers[i] for i in starts]
        return cls(desc, ids, pers, labels, names or {p: p for p in labels}, starts, descriptor_key)

    @classmethod
    def load(cls, folder: str | Path) -> "Gallery":
        with Catalog(folder) as cat:
            desc, ids, persons, _ = cat.gallery()
            people = cat.persons()
            key = cat.get_meta("descriptor_key") or ""
        if not ids:
            raise DatasetError(f"{folder}: the dataset has no enrolled faces; build it from named images")
        g = cls.from_arrays(desc, ids, persons, {r["label"]: r["name"] for r in people}, key)
        g.attribution = {r["label"]: json.loads(r["attribution"]) for r in people}
        return g

    def filter(self, **where: str | list[str]) -> "Gallery":
        """The persons whose attribution matches every condition (case-insensitive; a list
        means any of its values), e.g. ``gallery.filter(agency="NYPD", unit=["6", "7"])``.
        ``person`` and ``name`` match the label and display name. Raises DatasetError if no
        one matches."""
        def value(label: str, key: str) -> str:
            if key == "person":
                return label
            if key == "name":
                return self.names.get(label, label)
            return str(self.attribution.get(label, {}).get(key, ""))

        wanted = {k: {str(x).casefold() for x in (v if isinstance(v, list) else [v])} for k, v in where.items()}
        keep = {p for p in self.labels if all(value(p, k).casefold() in vals for k, vals in wanted.items())}
        if not keep:
            shown = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in wanted.items())
            raise DatasetError(f"no enrolled person matches {shown}")
        rows = [i for i, p in enumerate(self.persons) if p in keep]
        g = Gallery.from_arrays(self.descriptors[rows], [self.face_ids[i] for i in rows],
                                [self.persons[i] for i in rows], {p: self.names[p] for p in keep},
                                self.descriptor_key)
        g.attribution = {p: self.attribution.get(p, {}) for p in keep}
        return g


class Searcher:
    """Searches faces against one dataset. ``fusion``: max or mean2; ``target_fpir``: the
    decision rule's false-positive identification rate."""

    def __init__(self, gallery: Gallery, target_fpir: float = 0.01, fusion: str = "max",
                 index: Index | None = None, min_interocular: float = MIN_INTEROCULAR,
                 max_blur: float = MAX_BLUR) -> None:
        self.gallery = gallery
        self.min_interocular = min_interocular
        self.max_blur = max_blur
        self.fusion = fusion
        self.index = index if index is not None else build_index(gallery.descriptors)
        imp = impostor_scores(gallery.descriptors, gallery.persons, fusion)
        self.calibration: Calibration = calibrate(imp, len(gallery.labels), target_fpir)

    def image_scores(self, queries: np.ndarray) -> np.ndarray:
        """Similarity of each query (Q, D) to each gallery image: (Q, N). With an approximate
        index (large galleries, max fusion) only the NEIGHBOURS nearest images are scored and
        the rest are -inf, which leaves every person's max among them unchanged."""
        if self.index.kind == "exact" or self.fusion != "max":
            return Index.scores(self.index, queries)
        scores, ids = self.index.search(queries, NEIGHBOURS)
        out = np.full((len(queries), len(self.index)), -np.inf, np.float32)
        valid = ids >= 0
        rows = np.repeat(np.arange(len(queries)), ids.shape[1]).reshape(ids.shape)
        out[rows[valid], ids[valid]] = scores[valid]
        return out

    def fused(self, queries: np.ndarray) -> np.ndarray:
        """Per-person scores (Q, P) of descriptors (Q, D), persons in ``gallery.labels`` order."""
        return fuse_by_person(self.image_scores(queries), self.gallery.starts, self.fusion)

    def search(self, faces: list[Face], top: int = 5) -> list[dict]:
        """One result dict per face, as in SPEC §4 (``faces`` entries)."""
        if not faces:
            return []
        q = np.stack([f.descriptor for f in faces])
        image_scores = self.image_scores(q)
        fused = fuse_by_person(image_scores, self.gallery.starts, self.fusion)
        return [self._result(f, image_scores[i], fused[i], top) for i, f in enumerate(faces)]

    def _result(self, face: Face, image_scores: np.ndarray, fused: np.ndarray, top: int) -> dict:
        g, cal = self.gallery, self.calibration
        if face.interocular < self.min_interocular:
            return {**self._face_fields(face), "decision": "quality_too_low", "candidates": [],
                    "reason": (f"the eyes are {face.interocular:.0f} px apart; under "
                               f"{self.min_interocular:g} px pof cannot identify a face reliably "
                               "(find a larger or sharper photo of this face)")}
        if face.blur > self.max_blur:
            return {**self._face_fields(face), "decision": "quality_too_low", "candidates": [],
                    "reason": (f"the face is too blurred (blur {face.blur:.2f} over "
                               f"{self.max_blur:g}: too little detail, from blur, motion, "
                               "darkness or upscaling); find a sharper photo of this face")}
        order = [p for p in np.argsort(-fused, kind="stable")[:top] if np.isfinite(fused[p])]
        ends = np.append(g.starts[1:], len(g.face_ids))
        cands = []
        for p in order:
            a, b = g.starts[p], ends[p]
            best = [i for i in a + np.argsort(-image_scores[a:b], kind="stable")[:EVIDENCE]
                    if np.isfinite(image_scores[i])]
            rate, bound = cal.fmr(float(fused[p]))
            label = g.labels[p]
            cands.append({"person": label, "name": g.names.get(label, label),
                          "score": round(float(fused[p]), 4), "fmr": float(f"{rate:.3g}"),
                          "fmr_upper_bound": bound, "evidence": [g.face_ids[i] for i in best]})
        match = bool(cands) and cands[0]["score"] >= cal.threshold
        return {**self._face_fields(face), "decision": "match" if match else "no_match",
                "candidates": cands}

    def _face_fields(self, face: Face) -> dict:
        cal = self.calibration
        return {"box": [round(float(v), 1) for v in face.box], "det_score": round(face.det_score, 4),
                "quality": round(face.quality, 3), "interocular": round(face.interocular, 1),
                "blur": round(float(face.blur), 3),
                "fpir": float(f"{cal.fpir():.3g}"), "threshold": round(cal.threshold, 4)}


def result_line(image: str, faces: list[dict] | None, error: str | None = None) -> str:
    """One JSON line for one probe image (SPEC §4)."""
    return json.dumps({"image": image, "error": error, "faces": faces or []})
