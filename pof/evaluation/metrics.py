"""Evaluation figures, pure numpy: verification (ROC, TAR at FAR, EER, accuracy) and open-set
identification (CMC, FNIR at FPIR, fail-to-detect), following NIST FRVT's definitions.

Scores are similarities (higher = more alike). A mated search is of a person who is enrolled;
a nonmated search is of someone who is not. FPIR(t): share of nonmated searches whose top
candidate scores >= t. FNIR(t): share of mated searches whose mate is not the top candidate
with a score >= t (a face that was not detected is a miss).
"""
from __future__ import annotations

import numpy as np

FARS = (1e-2, 1e-3, 1e-4)
FPIRS = (0.01, 0.05)


def roc(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) at every distinct score, thresholds descending."""
    g, i = np.sort(np.asarray(genuine, float)), np.sort(np.asarray(impostor, float))
    t = np.unique(np.concatenate([g, i]))[::-1]
    tar = (len(g) - np.searchsorted(g, t, side="left")) / max(len(g), 1)
    far = (len(i) - np.searchsorted(i, t, side="left")) / max(len(i), 1)
    return far, tar, t


def auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Area under the ROC curve (probability a genuine score beats an impostor one)."""
    g, i = np.asarray(genuine, float), np.sort(np.asarray(impostor, float))
    if not len(g) or not len(i):
        return float("nan")
    below = np.searchsorted(i, g, side="left")
    ties = np.searchsorted(i, g, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(g) * len(i)))


def threshold_at(negatives: np.ndarray, rate: float) -> float | None:
    """The lowest threshold that at most ``rate`` of ``negatives`` reach (None when there are
    too few of them to show that rate, fewer than 1/rate)."""
    n = np.sort(np.asarray(negatives, float))
    if len(n) * rate < 1:
        return None
    k = int(np.floor(len(n) * rate))          # negatives allowed at or above the threshold
    return float(np.nextafter(n[len(n) - k - 1], np.inf)) if k < len(n) else float("-inf")


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float | None:
    """TAR at the threshold where at most ``far`` of impostors pass; None if the impostor set is
    too small to show that rate (fewer than 1/far scores)."""
    t = threshold_at(impostor, far)
    return None if t is None else float((np.asarray(genuine) >= t).mean())


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    far, tar, _ = roc(genuine, impostor)
    frr = 1 - tar
    j = int(np.argmin(np.abs(far - frr)))
    return float((far[j] + frr[j]) / 2)


def accuracy_10fold(scores: np.ndarray, same: np.ndarray, folds: int = 10,
                    fold_of: np.ndarray | None = None) -> float:
    """LFW protocol: each fold judged at the threshold that is best on the other folds.
    Unscored pairs (score -inf) count as "not same". ``fold_of``: each pair's fold (e.g. LFW
    View 2's own ten sets); by default the pairs are dealt at random (seed 0) into ``folds``."""
    s, y = np.asarray(scores, float), np.asarray(same, bool)
    if fold_of is None:
        idx = np.random.default_rng(0).permutation(len(s)) % folds
    else:
        idx = np.unique(np.asarray(fold_of), return_inverse=True)[1].reshape(-1)
    right = 0
    for f in np.unique(idx):
        tr = idx != f
        cands = np.unique(s[tr & np.isfinite(s)])
        if not len(cands):
            right += int((~y[~tr]).sum())
            continue
        acc = [((s[tr] >= t) == y[tr]).mean() for t in cands]
        j = int(np.argmax(acc))
        best = (cands[j] + cands[j - 1]) / 2 if j > 0 else cands[0]   # mid-gap, not on a sample
        right += int(((s[~tr] >= best) == y[~tr]).sum())
    return right / max(len(s), 1)


def pair_figures(scores: np.ndarray, same: np.ndarray, threshold: float,
                 fold_of: np.ndarray | None = None) -> dict:
    """Verification figures for pairs; ``scores`` -inf where a pair could not be scored."""
    s, y = np.asarray(scores, float), np.asarray(same, bool)
    ok = np.isfinite(s)
    g, i = s[y & ok], s[~y & ok]
    out = {"pairs": int(len(s)), "genuine": int(y.sum()), "impostor": int((~y).sum()),
           "unscored": int((~ok).sum()), "threshold": round(threshold, 4),
           "accuracy": round(float(((s >= threshold) == y).mean()), 4) if len(s) else None,
           "accuracy_10fold": round(accuracy_10fold(s, y, fold_of=fold_of), 4) if len(s) else None,
           "folds": 10 if fold_of is None else int(len(np.unique(fold_of))),   # of that figure
           "auc": round(auc(g, i), 5), "eer": round(eer(g, i), 4) if len(g) and len(i) else None}
    for far in FARS:
        v = tar_at_far(g, i, far)
        out[f"tar_at_far_{far:g}"] = None if v is None else round(v, 4)
    return out


def cmc(ranks: np.ndarray, max_rank: int = 20) -> np.ndarray:
    """Share of mated searches whose mate is within rank r, for r = 1..max_rank. ``ranks`` are
    1-based; 0 (or less) means the mate was not returned or the face was not detected."""
    r = np.asarray(ranks)
    return np.array([float(((r >= 1) & (r <= k)).mean()) if len(r) else float("nan")
                     for k in range(1, max_rank + 1)])


def fnir_at_fpir(mated_top_ok: np.ndarray, mated_top_score: np.ndarray,
                 nonmated_top_score: np.ndarray, fpir: float) -> tuple[float | None, float | None]:
    """(FNIR, threshold) at the threshold that gives ``fpir`` on the nonmated searches.
    mated_top_ok: the top candidate is the mate; scores -inf where nothing was detected."""
    t = threshold_at(nonmated_top_score, fpir)
    if t is None:
        return None, None
    hit = np.asarray(mated_top_ok, bool) & (np.asarray(mated_top_score, float) >= t)
    return float(1 - hit.mean()) if len(hit) else None, t


def ident_figures(searches: list[dict], max_rank: int = 20) -> dict:
    """Figures over searches: dicts with keys mated (bool), detected (bool), rank (int, 1-based,
    0 if not found), top_score (float or -inf), top_ok (bool), decision_match (bool)."""
    m = [s for s in searches if s["mated"]]
    n = [s for s in searches if not s["mated"]]
    ranks = np.array([s["rank"] if s["detected"] else 0 for s in m])
    curve = cmc(ranks, max_rank)
    out = {"mated": len(m), "nonmated": len(n),
           "fail_to_detect": round(float(np.mean([not s["detected"] for s in searches])), 4) if searches else None,
           "rank1": round(float(curve[0]), 4) if len(m) else None,
           "rank5": round(float(curve[4]), 4) if len(m) and max_rank >= 5 else None,
           "dir_at_threshold": round(float(np.mean([s["top_ok"] and s["decision_match"] for s in m])), 4) if m else None,
           "fpir_at_threshold": round(float(np.mean([s["decision_match"] for s in n])), 4) if n else None,
           "predicted_fpir": round(float(np.mean([s["predicted_fpir"] for s in searches if s.get("predicted_fpir") is not None] or [np.nan])), 4),
           "cmc": [round(float(v), 4) for v in curve]}
    for f in FPIRS:
        fnir, t = fnir_at_fpir([s["top_ok"] for s in m], [s["top_score"] for s in m],
                               [s["top_score"] for s in n], f)
        out[f"fnir_at_fpir_{f:g}"] = None if fnir is None else round(fnir, 4)
    return out


def threshold_for_fpir(nonmated_top: np.ndarray, fpir: float) -> float:
    """The lowest threshold that at most ``fpir`` of the nonmated top scores reach (so with 250
    searches and 1%, at most 2 do); -inf scores are searches where nothing was found. Unlike
    ``threshold_at`` it answers for any number of searches: with fewer than 1/fpir, the
    threshold none of them reaches; -inf when every search may pass."""
    s = np.sort(np.asarray(nonmated_top, float))[::-1]
    k = int(np.floor(len(s) * fpir + 1e-9))        # allowed at or above the threshold
    if k >= len(s):
        return float("-inf")
    return float(np.nextafter(s[k], np.inf)) if np.isfinite(s[k]) else float("-inf")


def dir_at(mated_top_ok: np.ndarray, mated_top_score: np.ndarray, threshold: float) -> float | None:
    """Detection-and-identification rate at ``threshold``: the share of mated searches whose
    top candidate is the mate and scores at least the threshold (None without mated searches)."""
    ok = np.asarray(mated_top_ok, bool) & (np.asarray(mated_top_score, float) >= threshold)
    return float(ok.mean()) if len(ok) else None


def fpir_at(nonmated_top_score: np.ndarray, threshold: float) -> float | None:
    """False-positive identification rate at ``threshold``: the share of nonmated searches
    whose top candidate scores at least the threshold (-inf: nothing found; None without
    nonmated searches)."""
    s = np.asarray(nonmated_top_score, float)
    return float((s >= threshold).mean()) if len(s) else None


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a rate of ``k`` in ``n`` (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, float(c - h)), min(1.0, float(c + h)))


def pairwise_precision_recall(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Of the pairs of items grouped together (same ``labels``), the share of one person (same
    ``truth``), and of the pairs of one person, the share grouped together; counted from the
    contingency table, without an N x N matrix."""
    def pairs(*keys):
        _, counts = np.unique(np.stack(keys, 1), axis=0, return_counts=True)
        return float((counts * (counts - 1) // 2).sum())
    both, grouped, same = pairs(labels, truth), pairs(labels), pairs(truth)
    return both / max(1.0, grouped), both / max(1.0, same)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true top k (rows of ``truth``) among the k it got (rows of
    ``found``): how much of an exact search an approximate index returns."""
    return float(np.mean([len(set(g) & set(t)) / len(t) for g, t in zip(found, truth)]))


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The mean of the recall on both sides of a yes/no attribute (0.5 is chance whatever the
    balance); a side with no examples is left out; nan with none at all."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    if not len(t):
        return float("nan")
    recalls = [np.mean(p[t]) if t.any() else float("nan"),
               1 - np.mean(p[~t]) if (~t).any() else float("nan")]
    return float(np.nanmean(recalls))
