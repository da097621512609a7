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

from pof.matching.calibrate import (FUSIONS, Calibration, calibrate, calibrate_gallery, embedder_of,
                        fuse_by_person, group_starts, person_templates, resolve_fusion, template,
                        template_impostor_sample)
from pof.dataset.catalog import Catalog, excluded_persons
from pof.errors import DatasetError, SettingError
from pof.dataset.index import Index, build as build_index
from pof.matching.results import (MATCH, NO_MATCH, QUALITY_TOO_LOW, Candidate, FaceGeometry,
                                  FaceResult, LeftOut, SamePersonResult, box_of, rate)
from pof.record import Face

EVIDENCE = 3
# Quality gate, measured on the core bench (plain probes shrunk step by step): with the eyes
# 14 px apart DIR at FPIR 1% is 0.94, at 10 px 0.68, at 8 px 0.28, at 6 px rank-1 falls to
# 0.82 and DIR to 0.03. Under 8 px a face is answered "quality_too_low" rather than searched
# (setting min_interocular).
# Blur gate (bench/blur_sweep.py, plain probes blurred step by step): rank-1 is 0.95 or more
# while pof's blur measure stays under 0.9, 0.81 between 0.9 and 0.95, 0.44 above; DIR at
# FPIR 1% is already near 0 from 0.85. Over 0.9 a face is answered "quality_too_low" (setting
# max_blur).
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
    face_attributes: dict[str, dict] = field(default_factory=dict)   # face id -> {attribute: 0-1}
    attributes_from: Path | None = None   # dataset whose catalog holds them, read on first use

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
            excluded = excluded_persons(cat.db)      # the exclusion list: never returned
        if excluded:
            rows = [i for i, p in enumerate(persons) if p not in excluded]
            desc, ids, persons = desc[rows], [ids[i] for i in rows], [persons[i] for i in rows]
        if not ids:
            raise DatasetError(f"{folder}: the dataset has no enrolled faces (or every person is "
                               "on the exclusion list); build it from named images")
        g = cls.from_arrays(desc, ids, persons, {r["label"]: r["name"] for r in people}, key)
        g.attribution = {r["label"]: json.loads(r["attribution"]) for r in people}
        g.attributes_from = Path(folder)
        return g

    def scores_by_face(self) -> dict[str, dict]:
        """Attribute scores by face id ({} for faces without), read from the catalog the first
        time they are needed (a search that filters on no attribute never reads them)."""
        if not self.face_attributes and self.attributes_from is not None:
            with Catalog(self.attributes_from) as cat:
                self.face_attributes = cat.attributes()
            self.attributes_from = None
        return self.face_attributes

    def filter(self, attributes: dict[str, str | float] | None = None,
               **where: str | list[str]) -> "Gallery":
        """The persons whose attribution matches every condition (case-insensitive; a list
        means any of its values), e.g. ``gallery.filter(agency="NYPD", unit=["6", "7"])``.
        ``person`` and ``name`` match the label and display name.

        ``attributes`` keeps only the face images whose attribute scores (attributes.csv)
        pass every condition: ``{"Eyeglasses": ">=0.5", "Wearing Hat": "<0.5"}`` (operators
        >=, >, <=, <; a bare number means >=). Perceived age group and gender are refused:
        they are never used for identification. Raises DatasetError if no one matches."""
        if isinstance(attributes, (str, list)):     # an attribution column named "attributes"
            where, attributes = {**where, "attributes": attributes}, None

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
        if attributes:
            tests = attribute_tests(attributes)
            scores = self.scores_by_face()
            rows = [i for i in rows if all(t(scores.get(self.face_ids[i], {}))
                                            for t in tests)]
            if not rows:
                raise DatasetError(f"no enrolled face matches {attributes}")
            keep = {self.persons[i] for i in rows}
        g = Gallery.from_arrays(self.descriptors[rows], [self.face_ids[i] for i in rows],
                                [self.persons[i] for i in rows], {p: self.names[p] for p in keep},
                                self.descriptor_key)
        g.attribution = {p: self.attribution.get(p, {}) for p in keep}
        g.face_attributes = {self.face_ids[i]: self.face_attributes[self.face_ids[i]] for i in rows
                             if self.face_ids[i] in self.face_attributes}
        g.attributes_from = self.attributes_from
        return g


_OPS = {">=": float.__ge__, ">": float.__gt__, "<=": float.__le__, "<": float.__lt__}


def attribute_tests(conditions: dict[str, str | float]) -> list:
    """Checks (scores dict -> bool) for conditions like {"Eyeglasses": ">=0.5"}. A face with no
    score for the attribute fails. Raises SettingError for an unknown, not estimated or
    demographic attribute, or a malformed condition."""
    from pof.stages.attributes.schema import BY_NAME, DEMOGRAPHIC
    from pof.errors import SettingError
    tests = []
    for name, cond in conditions.items():
        if name not in BY_NAME:
            raise SettingError(f"unknown attribute {name!r}; see attributes.csv's columns")
        if name in DEMOGRAPHIC:
            raise SettingError(f"{name} is a perceived age group or gender: pof never uses those "
                               "to narrow an identification")
        if BY_NAME[name].estimator is None:
            raise SettingError(f"{name} is not estimated by pof ({BY_NAME[name].reason})")
        text = str(cond).strip()
        op = next((o for o in (">=", "<=", ">", "<") if text.startswith(o)), ">=")
        try:
            value = float(text[len(op):] if text.startswith(op) else text)
        except ValueError:
            raise SettingError(f"attribute condition {name}={cond!r}: write e.g. '>=0.5' or '<0.3'") from None
        tests.append(lambda s, n=name, f=_OPS[op], v=value: s.get(n) is not None and f(float(s[n]), v))
    return tests


class Searcher:
    """Searches faces against one dataset. ``fusion``: how a person's gallery images make
    their score, template (similarity to their mean descriptor: measured best, bench/public.py),
    max (best image), mean2 (mean of the best two), or auto (template from 20 persons up, max
    below: see calibrate.resolve_fusion); ``target_fpir``: the decision rule's
    false-positive identification rate."""

    def __init__(self, gallery: Gallery, target_fpir: float | None = None, fusion: str | None = None,
                 index: Index | None = None, min_interocular: float | None = None,
                 max_blur: float | None = None) -> None:
        from pof.settings import value
        target_fpir = value("fpir", target_fpir)       # None: the setting (environment, default)
        fusion = value("fusion", fusion)
        self.gallery = gallery
        self.min_interocular = value("min_interocular", min_interocular)
        self.max_blur = value("max_blur", max_blur)
        if fusion not in FUSIONS:
            raise SettingError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.fusion = resolve_fusion(fusion, len(gallery.labels))
        self.templates = (person_templates(gallery.descriptors, gallery.starts)
                          if self.fusion == "template" else None)
        self._index = index
        self.target_fpir = target_fpir
        self.calibration: Calibration = calibrate_gallery(gallery.descriptors, gallery.persons,
                                                          target_fpir, self.fusion)
        self._template_calibrations: dict[int, Calibration] = {}

    @property
    def index(self) -> Index:
        """The image index (built on first use: template fusion never needs it)."""
        if self._index is None:
            self._index = build_index(self.gallery.descriptors)
        return self._index

    def image_scores(self, queries: np.ndarray) -> np.ndarray:
        """Similarity of each query (Q, D) to each gallery image: (Q, N). With an approximate
        index (large galleries, max fusion) only the NEIGHBOURS nearest images are scored and
        the rest are -inf, which leaves every person's max among them unchanged."""
        if self.index.kind == "exact" or self.fusion == "mean2":
            return Index.scores(self.index, queries)
        scores, ids = self.index.search(queries, NEIGHBOURS)
        out = np.full((len(queries), len(self.index)), -np.inf, np.float32)
        valid = ids >= 0
        rows = np.repeat(np.arange(len(queries)), ids.shape[1]).reshape(ids.shape)
        out[rows[valid], ids[valid]] = scores[valid]
        return out

    def fused(self, queries: np.ndarray) -> np.ndarray:
        """Per-person scores (Q, P) of descriptors (Q, D), persons in ``gallery.labels`` order."""
        if self.fusion == "template":
            return np.asarray(queries, np.float32) @ self.templates.T
        return fuse_by_person(self.image_scores(queries), self.gallery.starts, self.fusion)

    def search(self, faces: list[Face], top: int | None = None) -> list[FaceResult]:
        """One result per face (``to_json()``: the ``faces`` entries of ``pof search --json``), in
        reading order (``reading_order``: face 1 is the top-left one, whatever order the
        detector found them in); ``top`` candidates each (None: the ``top`` setting)."""
        if not faces:
            return []
        from pof.settings import value
        top = value("top", top)
        faces = [faces[i] for i in reading_order([f.box for f in faces])]
        q = np.stack([f.descriptor for f in faces])
        fused = self.fused(q)
        return [self._result(f, fused[i], top) for i, f in enumerate(faces)]

    def template_calibration(self, k: int) -> Calibration:
        """The decision rule for queries fused from ``k`` probe faces (multi-probe search):
        calibrated on k-image templates of gallery persons (calibrate.template_impostor_sample);
        the single-image rule where too few persons have two images."""
        if k <= 1:
            return self.calibration
        if k not in self._template_calibrations:
            g = self.gallery
            imp, best = template_impostor_sample(g.descriptors, g.persons, k, self.fusion)
            if len(imp):
                cal = calibrate(imp, len(g.labels), self.target_fpir, best,
                                embedder_of(g.descriptors))
                cal.method += f", {k}-image templates"
            else:
                cal = self.calibration
            self._template_calibrations[k] = cal
        return self._template_calibrations[k]

    def search_same_person(self, faces: list[Face], top: int | None = None) -> SamePersonResult:
        """One result for several faces known to be one person (photos or video frames of one
        unknown face): their descriptors are averaged into one query (calibrate.template) and
        judged by the rule calibrated for that many images. Faces under the quality gates are
        left out of the query (listed in ``left_out`` with the reason)."""
        usable, left_out = [], []
        for i, f in enumerate(faces):
            reason = self.gate(f)
            (left_out.append(LeftOut(i, reason)) if reason else usable.append(f))
        probes = tuple(self._geometry(f) for f in faces)
        if not usable:
            return SamePersonResult(probes=probes, left_out=tuple(left_out), decision=QUALITY_TOO_LOW,
                                    reason="no probe face passes the quality gates")
        from pof.settings import value
        top = value("top", top)
        q = template(np.stack([f.descriptor for f in usable]))
        cal = self.template_calibration(len(usable))
        decision, cands = self._ranked(q, self.fused(q[None])[0], top, cal)
        return SamePersonResult(probes=probes, left_out=tuple(left_out), probes_used=len(usable),
                                fpir=rate(cal.fpir()), threshold=round(cal.threshold, 4),
                                decision=decision, candidates=cands)

    def gate(self, face: Face) -> str | None:
        """Why ``face`` is too poor to search (the quality gates), or None."""
        if face.interocular < self.min_interocular:
            return (f"the eyes are {face.interocular:.0f} px apart; under "
                    f"{self.min_interocular:g} px pof cannot identify a face reliably "
                    "(find a larger or sharper photo of this face)")
        if face.blur > self.max_blur:
            return (f"the face is too blurred (blur {face.blur:.2f} over {self.max_blur:g}: "
                    "too little detail, from blur, motion, darkness or upscaling); find a "
                    "sharper photo of this face")
        return None

    def _result(self, face: Face, fused: np.ndarray, top: int) -> FaceResult:
        cal = self.calibration
        rule = {**self._measures(face), "fpir": rate(cal.fpir()), "threshold": round(cal.threshold, 4)}
        reason = self.gate(face)
        if reason:
            return FaceResult(**rule, decision=QUALITY_TOO_LOW, reason=reason)
        decision, cands = self._ranked(face.descriptor, fused, top, cal)
        return FaceResult(**rule, decision=decision, candidates=cands)

    def _ranked(self, query: np.ndarray, fused: np.ndarray, top: int, cal: Calibration
                ) -> tuple[str, tuple[Candidate, ...]]:
        """Decision and candidates of one query (D,) from its per-person scores; evidence: each
        candidate's gallery images most like the query."""
        g = self.gallery
        order = [p for p in best_first(fused, top) if np.isfinite(fused[p])]
        ends = np.append(g.starts[1:], len(g.face_ids))
        cands = []
        for p in order:
            a, b = g.starts[p], ends[p]
            sims = g.descriptors[a:b] @ np.asarray(query, np.float32)
            best = a + np.argsort(-sims, kind="stable")[:EVIDENCE]
            fmr, bound = cal.fmr(float(fused[p]))
            label = g.labels[p]
            cands.append(Candidate(label, g.names.get(label, label), round(float(fused[p]), 4),
                                   rate(fmr), bound, tuple(g.face_ids[i] for i in best)))
        # the reported (rounded) score decides, so the JSON's reader reaches the same decision
        match = bool(cands) and cands[0].score >= cal.threshold
        return (MATCH if match else NO_MATCH), tuple(cands)

    @staticmethod
    def _measures(face: Face) -> dict:
        """The FaceGeometry fields of ``face``, rounded as reported."""
        return {"box": box_of(face.box), "det_score": round(face.det_score, 4),
                "quality": round(face.quality, 3), "interocular": round(face.interocular, 1),
                "blur": round(float(face.blur), 3),
                # described after smoothing its JPEG blocks (pof.stages.restore)
                "restored": face.extra.get("restored") or None}

    @classmethod
    def _geometry(cls, face: Face) -> FaceGeometry:
        return FaceGeometry(**cls._measures(face))


def best_first(scores: np.ndarray, top: int) -> np.ndarray:
    """Indices of the ``top`` highest ``scores``, highest first, ties in index order: what
    ``np.argsort(-scores, kind="stable")[:top]`` gives, without sorting every person of a
    large gallery (a full sort of 10^5 scores cost half of a search)."""
    neg = -np.asarray(scores)
    if top >= len(neg):
        return np.argsort(neg, kind="stable")[:top]
    kth = np.partition(neg, top - 1)[top - 1]
    if not np.isfinite(kth):                    # NaN or infinite scores near the top: sort all
        return np.argsort(neg, kind="stable")[:top]
    above = np.flatnonzero(neg < kth)
    ties = np.flatnonzero(neg == kth)[:top - len(above)]
    picked = np.concatenate([above, ties])
    return picked[np.lexsort((picked, neg[picked]))]


def reading_order(boxes) -> list[int]:
    """Indices of face boxes (x, y, w, h) in the order people read them: rows top to bottom,
    each row left to right. A face joins the row above when its vertical centre is within
    about half a face height of that row's centre, so faces of one row at slightly different
    heights stay one row."""
    centres = [(x + w / 2, y + h / 2, h) for x, y, w, h in (tuple(map(float, b)) for b in boxes)]
    rows: list[list[int]] = []
    row_y = row_h = 0.0
    for i in sorted(range(len(centres)), key=lambda i: (centres[i][1], centres[i][0])):
        cx, cy, h = centres[i]
        if rows and cy - row_y <= 0.5 * max(h, row_h):
            rows[-1].append(i)
            n = len(rows[-1])
            row_y += (cy - row_y) / n             # the row's mean centre and height
            row_h += (h - row_h) / n
        else:
            rows.append([i])
            row_y, row_h = cy, h
    return [i for row in rows for i in sorted(row, key=lambda i: centres[i][0])]


def result_line(image: str, faces: list[FaceResult] | None, error: str | None = None) -> str:
    """One JSON line for one probe image (docs/cli.md, "pof search")."""
    return json.dumps({"image": image, "error": error, "faces": [f.to_json() for f in faces or []]})
