"""Open-set calibration: from impostor scores to a decision threshold and error-rate estimates.

A person's score against a probe is the fusion (``max`` by default) of that person's gallery
images. An impostor score is such a score for a probe that is not that person. From gallery
faces searched against every *other* person we get M impostor scores. With N persons, a probe
of someone not enrolled is falsely matched when any of N impostor scores passes the threshold
t, so FPIR(t) = 1 - (1 - FMR(t))^N, where FMR(t) is the share of impostor scores >= t. For a
target FPIR we solve for FMR and take that tail quantile.

Where the gallery is too small for the tail to be seen (fewer than MIN_TAIL expected impostor
scores above t), the tail is extrapolated with a normal fit to the impostor scores; a gallery
with fewer than MIN_OWN impostor scores of its own is first pooled with a reference set shipped
with pof (``pof/data/reference_impostors.npy``, made by ``tools/make_reference.py``). The
result says which in ``method``. An FMR below what the
samples can show is reported as an upper bound, ``1/M``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

MIN_TAIL = 5
MIN_OWN = 100
MAX_PROBES = 4000
MAX_SCORES = 20_000_000     # probes x persons kept at most
CHUNK_CELLS = 50_000_000    # probe x gallery similarities computed at once
REFERENCE = Path(__file__).parent / "data" / "reference_impostors.npy"


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

    def fmr(self, score: float) -> tuple[float, bool]:
        """Estimated FMR at ``score``: (rate, is_upper_bound)."""
        return tail_rate(self.impostors, score)

    def fpir(self) -> float:
        """Expected FPIR of the decision rule on this gallery."""
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
    above = m - int(np.searchsorted(sorted_scores, score, side="left"))
    if above > 0:
        return above / m, False
    return 1.0 / (m + 1), True


def group_starts(labels: list[str]) -> np.ndarray:
    """First index of each run of equal labels (labels sorted or grouped): the ``starts`` of
    fuse_by_person."""
    lab = np.asarray(labels)
    return np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])


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
    if len(set(persons)) < 2:
        return np.zeros(0, np.float32)
    starts = group_starts(persons)
    owner = np.searchsorted(starts, np.arange(len(persons)), side="right") - 1
    n_probes = min(len(desc), MAX_PROBES, max(50, MAX_SCORES // len(starts)))
    probes = np.arange(len(desc))
    if n_probes < len(desc):
        probes = np.sort(np.random.default_rng(seed).choice(probes, n_probes, replace=False))
    chunk = max(1, CHUNK_CELLS // len(desc))
    out = []
    for a in range(0, len(probes), chunk):
        p = probes[a:a + chunk]
        fused = fuse_by_person(desc[p] @ desc.T, starts, how)
        fused[np.arange(len(p)), owner[p]] = np.nan
        out.append(fused[~np.isnan(fused)].astype(np.float32))
    return np.sort(np.concatenate(out))


def reference_impostors() -> np.ndarray:
    """The impostor scores shipped with pof (sorted), or an empty array if absent."""
    return np.sort(np.load(REFERENCE)).astype(np.float32) if REFERENCE.exists() else np.zeros(0, np.float32)


def calibrate(impostors: np.ndarray, persons: int, target_fpir: float = 0.01) -> Calibration:
    """Decision threshold for ``target_fpir`` on a gallery of ``persons`` people."""
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
            imp = np.sort(np.concatenate([imp, reference_impostors()]))
            method = "normal tail fit, pooled with reference impostors"
        if len(imp) < 2:
            raise ValueError("no impostor scores to calibrate from: enrol at least two persons")
        mu, sd = float(imp.mean()), float(imp.std()) or 1e-3
        t = max(mu + sd * NormalDist().inv_cdf(1.0 - fmr_target), float(imp[-1]) + 1e-6)
    cal = Calibration(persons, target_fpir, round(t, 6), 0.0, method, len(imp), imp)
    rate, bound = cal.fmr(t)
    cal.fmr_at_threshold = fmr_target if (bound or method != "empirical") else rate
    return cal
