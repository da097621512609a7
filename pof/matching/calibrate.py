"""Open-set calibration: from impostor scores to a decision threshold and error-rate estimates.

A person's score against a probe is the fusion of that person's gallery images: by default
the similarity to their mean descriptor (``template``; or the best image, ``max``; see
``person_scores``). An impostor score is such a score for a probe that is not that person. From gallery
faces searched against every *other* person we get M impostor scores. With N persons, a probe
of someone not enrolled is falsely matched when any of N impostor scores passes the threshold
t, so FPIR(t) = 1 - (1 - FMR(t))^N, where FMR(t) is the share of impostor scores >= t. For a
target FPIR we solve for FMR and take that tail quantile.

Where the gallery is too small for the tail to be seen (fewer than MIN_TAIL expected impostor
scores above t), the tail is extrapolated with a normal fit to the impostor scores; a gallery
with fewer than MIN_OWN impostor scores of its own is first pooled with a reference set shipped
with pof (``pof/data/reference_impostors_<embedder>.npy``, made by ``tools/make_reference.py``). The
result says which in ``method``. An FMR below what the
samples can show is reported as an upper bound, ``1/M``.

That rule is safe but, below a few hundred persons, far too strict: the independence it
assumes does not hold (a probe that looks like many people scores high against all of them),
and the normal tail, extrapolated to an FMR near 1e-4, lies above the real one. On LFW
(bench/public.py) galleries of 10 to 100 persons predicted an FPIR of 1% and observed 0 to
0.2%, losing identifications for nothing. So a gallery of MIN_PERSONS_BEST persons or more is
calibrated on FPIR directly: each gallery face searched against the persons it is not gives
the best impostor score that a probe of someone not enrolled would meet
(``impostor_sample``'s second array); the threshold is the 1 - FPIR quantile of those, the FPIR
first scaled for the one person fewer: the order statistic whose exceedance probability is at
most the target wherever the M scores can show it (M + 1 >= 1 / FPIR), else a normal fit.
Earlier, the normal fit served up to 5 scores past the threshold (below about 100
persons of 5 photos), and there it under-stated FPIR by 1.2 to 1.9 times on LFW (BENCHMARKS.md).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from pof.errors import DatasetError
from pof.runtime.weights import DATA

MIN_TAIL = 5
MIN_OWN = 100
MIN_PERSONS_BEST = 20       # persons from which FPIR is calibrated on best impostor scores
MIN_BEST = 50               # ... and gallery faces (probes) it needs
MAX_PROBES = 4000
MAX_SCORES = 20_000_000     # probes x persons kept at most
CHUNK_CELLS = 50_000_000    # probe x gallery similarities computed at once


def reference_path(embedder: str | None = None, mirror: bool = False) -> Path:
    """The reference impostor file of a descriptor backend (the default one if None): the two
    dlib backends give the same descriptors and share one file. ``mirror``: the file for
    descriptors averaged with their mirror image's (verification; see pof.matching.verify)."""
    from pof.settings import defaults
    name = embedder or defaults()["embedder"]
    if name in ("dlib-resnet", "dlib-resnet-onnx"):
        name = "dlib-resnet"
    return DATA / f"reference_impostors_{name.replace('+', '_')}{'_mirror' if mirror else ''}.npy"


@dataclass
class Calibration:
    """Decision rule of one gallery, JSON-safe via ``asdict``."""

    persons: int
    target_fpir: float
    threshold: float
    fmr_at_threshold: float
    method: str                    # "empirical", "normal tail fit" (+ ", pooled with reference ...")
    impostor_scores: int
    impostors: np.ndarray          # sorted ascending, float32 (not serialised)
    fpir_at_threshold: float | None = None   # set when calibrated on best impostor scores

    def fmr(self, score: float) -> tuple[float, bool]:
        """Estimated FMR at ``score``: (rate, is_upper_bound)."""
        return tail_rate(self.impostors, score)

    def fpir(self) -> float:
        """Expected FPIR of the decision rule on this gallery."""
        if self.fpir_at_threshold is not None:
            return self.fpir_at_threshold
        return 1.0 - (1.0 - self.fmr_at_threshold) ** max(self.persons, 1)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("impostors")
        d["expected_fpir"] = round(self.fpir(), 6)
        return d


def tail_rate(sorted_scores: np.ndarray, score: float) -> tuple[float, bool]:
    """Share of ``sorted_scores`` (ascending) at or above ``score``, and whether that is only
    an upper bound: when none reaches it, the rate is reported as below 1 / (M + 1)."""
    m = len(sorted_scores)
    above = m - _below(sorted_scores, score)
    if above > 0:
        return above / m, False
    return 1.0 / (m + 1), True


def _below(sorted_scores: np.ndarray, score: float) -> int:
    """How many of ``sorted_scores`` (ascending) are below ``score``, compared exactly.

    A float32 array is searched with a float32 key, never cast to float64 (that copy of 20
    million reference scores cost 11 ms a candidate). No float32 lies strictly between a
    number and its nearest float32 ``f``, so "below score" is "below f" where f >= score and
    "at most f" where f < score: the same count as comparing in float64."""
    if sorted_scores.dtype != np.float32:
        return int(np.searchsorted(sorted_scores, score, side="left"))
    f = np.float32(score)
    return int(np.searchsorted(sorted_scores, f, side="left" if float(f) >= score else "right"))


def group_starts(labels: list[str]) -> np.ndarray:
    """First index of each run of equal labels (labels sorted or grouped): the ``starts`` of
    fuse_by_person."""
    lab = np.asarray(labels)
    return np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])


FUSIONS = ("auto", "template", "max", "mean2")


def resolve_fusion(fusion: str, persons: int) -> str:
    """The fusion a gallery of ``persons`` uses: ``auto`` is ``template`` from MIN_PERSONS_BEST
    persons up and ``max`` below. Measured: on LFW (bench/public.py, 50 persons) the template
    identifies 6 points more at the same FPIR and its best-impostor calibration holds from 20
    to 236 persons; in a 10-person Yale gallery, calibrated by the per-pair rule, it let 5.7%
    of people not enrolled match for 1% promised, where ``max`` kept its promise (1.1%)."""
    if fusion == "auto":
        return "template" if persons >= MIN_PERSONS_BEST else "max"
    return fusion


def person_templates(desc: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each person's mean descriptor, scaled to unit length: (P, D), rows grouped by person
    (person p owning rows starts[p]:starts[p+1])."""
    sums = np.add.reduceat(np.asarray(desc, np.float64), starts, axis=0)
    return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def person_scores(queries: np.ndarray, desc: np.ndarray, starts: np.ndarray, how: str = "max",
                  templates: np.ndarray | None = None) -> np.ndarray:
    """Per-person scores (Q, P) of queries (Q, D) against a gallery (N, D) grouped by person.
    ``how``: template (similarity to the person's mean descriptor; ``templates`` if already
    made), max (best image) or mean2 (mean of the best 2 images)."""
    if how == "template":
        t = person_templates(desc, starts) if templates is None else templates
        return queries @ t.T
    return fuse_by_person(queries @ desc.T, starts, how)


def fuse_by_person(scores: np.ndarray, starts: np.ndarray, how: str = "max") -> np.ndarray:
    """Per-person scores (Q, P) from image scores (Q, N) whose columns are grouped by person,
    person p owning columns starts[p]:starts[p+1]. ``how``: max, or mean2 (mean of the best 2)."""
    if how == "max":
        return np.maximum.reduceat(scores, starts, axis=1)
    ends = np.append(starts[1:], scores.shape[1])
    out = np.empty((scores.shape[0], len(starts)), np.float32)
    for p, (a, b) in enumerate(zip(starts, ends)):
        block = np.sort(scores[:, a:b], axis=1)[:, ::-1][:, :2]
        out[:, p] = block.mean(axis=1)
    return out


def impostor_scores(desc: np.ndarray, persons: list[str], how: str = "max",
                    seed: int = 0) -> np.ndarray:
    """Fused scores of gallery faces against every person they are not (sorted ascending).

    At most MAX_PROBES faces are used as probes (a fixed-seed sample), and fewer for very large
    galleries so that probes x persons stays under MAX_SCORES; the work is done in chunks so
    memory stays bounded.
    """
    return impostor_sample(desc, persons, how, seed)[0]


def impostor_sample(desc: np.ndarray, persons: list[str], how: str = "max",
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(impostor_scores, best) in one pass, rows grouped by person: best holds, for each probe
    face, its highest fused score among the persons it is not (sorted ascending), what the best
    candidate of a probe of someone not enrolled scores in a gallery of one person fewer."""
    if len(set(persons)) < 2:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    starts = group_starts(persons)
    owner = np.searchsorted(starts, np.arange(len(persons)), side="right") - 1
    n_probes = min(len(desc), MAX_PROBES, max(50, MAX_SCORES // len(starts)))
    probes = np.arange(len(desc))
    if n_probes < len(desc):
        probes = np.sort(np.random.default_rng(seed).choice(probes, n_probes, replace=False))
    chunk = max(1, CHUNK_CELLS // len(desc))
    templates = person_templates(desc, starts) if how == "template" else None
    out, best = [], []
    for a in range(0, len(probes), chunk):
        p = probes[a:a + chunk]
        fused = person_scores(desc[p], desc, starts, how, templates)
        fused[np.arange(len(p)), owner[p]] = np.nan
        best.append(np.nanmax(fused, axis=1).astype(np.float32))
        out.append(fused[~np.isnan(fused)].astype(np.float32))
    return np.sort(np.concatenate(out)), np.sort(np.concatenate(best))


def template(desc: np.ndarray) -> np.ndarray:
    """One query from several descriptors (K, D) of one face: their mean, unit length."""
    m = np.asarray(desc, np.float32).mean(axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def template_impostor_scores(desc: np.ndarray, persons: list[str], k: int, how: str = "max",
                             per_person: int = 20, seed: int = 0) -> np.ndarray:
    """Impostor scores of k-image queries (see ``template_impostor_sample``)."""
    return template_impostor_sample(desc, persons, k, how, per_person, seed)[0]


def template_impostor_sample(desc: np.ndarray, persons: list[str], k: int, how: str = "max",
                             per_person: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Impostor scores of k-image queries (see ``template``) made from gallery faces, against
    every person they are not (sorted ascending), and the best of each query: the
    calibration of multi-probe search.

    Each person with at least 2 images gives up to ``per_person`` queries, each the template
    of a different set of min(k, their image count) of their images, drawn at random (fixed
    seed). Only distinct sets: repeating one query would make a thin tail look thick enough to
    count (3 images give only 3 pairs), where it must fall back to the normal fit. Empty when
    fewer than two persons have 2 images.
    """
    starts = group_starts(persons)
    ends = np.append(starts[1:], len(persons))
    rng = np.random.default_rng(seed)
    queries, owners = [], []
    for p, (a, b) in enumerate(zip(starts, ends)):
        if b - a < 2:
            continue
        m = min(k, b - a)
        if math.comb(b - a, m) <= per_person:
            subsets = [np.array(c) for c in itertools.combinations(range(b - a), m)]
        else:
            seen: set[tuple[int, ...]] = set()
            while len(seen) < per_person:
                seen.add(tuple(sorted(rng.choice(b - a, m, replace=False).tolist())))
            subsets = [np.array(c) for c in sorted(seen)]
        for rows in subsets:
            queries.append(template(desc[a + rows]))
            owners.append(p)
    if len(set(owners)) < 2:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    q = np.stack(queries)
    out, best = [], []
    chunk = max(1, CHUNK_CELLS // len(desc))
    templates = person_templates(desc, starts) if how == "template" else None
    for a in range(0, len(q), chunk):
        fused = person_scores(q[a:a + chunk], desc, starts, how, templates)
        fused[np.arange(len(fused)), owners[a:a + chunk]] = np.nan
        best.append(np.nanmax(fused, axis=1).astype(np.float32))
        out.append(fused[~np.isnan(fused)].astype(np.float32))
    return np.sort(np.concatenate(out)), np.sort(np.concatenate(best))


def reference_impostors(embedder: str | None = None, mirror: bool = False) -> np.ndarray:
    """The impostor scores shipped with pof for a descriptor backend (default: the default
    one; ``mirror``: for mirror-averaged descriptors), sorted, or an empty array if absent."""
    path = reference_path(embedder, mirror)
    return np.sort(np.load(path)).astype(np.float32) if path.exists() else np.zeros(0, np.float32)


def embedder_of(desc: np.ndarray) -> str | None:
    """The descriptor backend that makes descriptors of this width (for the reference set a
    tiny gallery is pooled with); None if unknown (the default's reference is used)."""
    from importlib import import_module

    from pof.stages.embed import EMBEDDERS
    width = np.asarray(desc).shape[-1]
    for name, target in EMBEDDERS.items():
        module, cls = target.split(":")
        if getattr(getattr(import_module(module), cls), "dim", None) == width:
            return name
    return None


def calibrate_gallery(desc: np.ndarray, persons: list[str], target_fpir: float = 0.01,
                      how: str = "auto") -> Calibration:
    """The decision rule of a gallery: descriptors (N, D), rows grouped by person; ``how``
    as in ``resolve_fusion``."""
    how = resolve_fusion(how, len(set(persons)))
    imp, best = impostor_sample(desc, persons, how)
    return calibrate(imp, len(set(persons)), target_fpir, best, embedder_of(desc))


def calibrate(impostors: np.ndarray, persons: int, target_fpir: float = 0.01,
              best: np.ndarray | None = None, embedder: str | None = None) -> Calibration:
    """Decision threshold for ``target_fpir`` on a gallery of ``persons`` people, from its
    impostor scores and, if given, its best impostor scores (see the module docstring).
    ``embedder``: whose reference impostors a tiny gallery is pooled with (default: the
    default backend's)."""
    if best is not None and persons >= MIN_PERSONS_BEST and len(best) >= MIN_BEST:
        return _calibrate_best(np.sort(np.asarray(impostors, np.float32)),
                               np.sort(np.asarray(best, np.float32)), persons, target_fpir)
    fmr_target = 1.0 - (1.0 - target_fpir) ** (1.0 / max(persons, 1))
    imp = np.sort(np.asarray(impostors, np.float32))
    if len(imp) * fmr_target >= MIN_TAIL:
        k = int(np.ceil(len(imp) * fmr_target))
        t = float(np.nextafter(imp[-k], np.float32(np.inf))) if k <= len(imp) else float(imp[0])
        # the threshold sits just above the k-th highest impostor: fewer than k pass it
        method = "empirical"
    else:
        method = "normal tail fit"
        if len(imp) < MIN_OWN:
            imp = np.sort(np.concatenate([imp, reference_impostors(embedder)]))
            method = "normal tail fit, pooled with reference impostors"
        if len(imp) < 2:
            raise DatasetError("no impostor scores to calibrate from: enrol at least two persons")
        mu, sd = float(imp.mean()), float(imp.std()) or 1e-3
        t = max(mu + sd * NormalDist().inv_cdf(1.0 - fmr_target), float(imp[-1]) + 1e-6)
    cal = Calibration(persons, target_fpir, round_up(t), 0.0, method, len(imp), imp)
    rate, bound = cal.fmr(t)
    cal.fmr_at_threshold = fmr_target if (bound or method != "empirical") else rate
    return cal


def round_up(t: float) -> float:
    """A threshold to 6 decimals, rounded up: rounding it down could let the very score it was
    set just above pass."""
    return math.ceil(t * 1e6 - 1e-6) / 1e6


def _calibrate_best(imp: np.ndarray, best: np.ndarray, persons: int,
                    target_fpir: float) -> Calibration:
    """Threshold from the best impostor scores (sorted ascending), each the best of persons - 1
    persons (the target is first scaled to that many): just above the k-th highest of the M
    scores, k = floor(target x (M + 1)). A new score from the same distribution passes the k-th
    highest of M with probability exactly k / (M + 1), so this needs no model of the tail. Only
    where M + 1 < 1 / target (k = 0) is the tail extrapolated with a normal fit, and then never
    below the highest of the M scores (which a new score passes with probability 1 / (M + 1),
    about the target there): on LFW the normal fit alone sat lower and let 1.9% through for 1%."""
    target = 1.0 - (1.0 - target_fpir) ** ((persons - 1) / persons)
    k = int(np.floor(target * (len(best) + 1) + 1e-9))
    if k >= 1:
        t = float(np.nextafter(best[-k], np.float32(np.inf)))
        method = "best impostor, empirical"
    else:
        mu, sd = float(best.mean()), float(best.std()) or 1e-3
        t = max(mu + sd * NormalDist().inv_cdf(1.0 - target),
                float(np.nextafter(best[-1], np.float32(np.inf))))
        method = "best impostor, normal fit"
    rate, _ = tail_rate(imp, t)
    return Calibration(persons, target_fpir, round_up(t), rate, method, len(imp), imp,
                       fpir_at_threshold=target_fpir)
