"""pof's descriptors of many photos computed in-process and cached, and ways of scoring probes
against a gallery from them: what the public-set studies (public, compression, recognizers,
multi_probe_public) share.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

TARGET_FPIR = 0.01


def sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- pof in-process

def rounded(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(v, digits)


def _face_info(pipeline, path: str, rule: str = "center") -> dict:
    """Module-level (pof worker processes): the descriptor and quality of the scored face: by
    default the one nearest the photo's centre (the person LFW labels), or with ``rule``
    "largest" the largest (the Yale set)."""
    from PIL import Image

    from pof.pipeline import faces_or_error
    from pof.stages.select import subject
    faces, _err = faces_or_error(pipeline, path)
    if not faces:
        return {"detected": False}
    with Image.open(path) as im:
        f = subject(faces, rule, *im.size)
    return {"detected": True, "descriptor": f.descriptor.astype(np.float32),
            "yaw": f.pose.yaw, "pitch": f.pose.pitch, "blur": f.blur,
            "interocular": f.interocular, "quality": f.quality}


QUALITY_VERSION = 2


class PofFaces:
    """Descriptors of many photos by pof's own pipeline, cached by content hash. ``rule``: which
    face of a photo (see _face_info); ``embedder``: another of pof's embedders than the
    default (its own cache file)."""

    def __init__(self, root: Path, workers: int, rule: str = "center", embedder: str | None = None):
        from pof.pipeline import Pipeline
        self.root, self.workers, self.rule = root, workers, rule
        self.pipe = Pipeline(**({"embedder": embedder} if embedder else {}))
        # the pose and quality the cache holds come from pof.stages.quality, which the descriptor key
        # does not name: QUALITY_VERSION changes with it (2: the head-pose refit)
        self.key = self.pipe.descriptor_key() + f"|face={rule}|quality={QUALITY_VERSION}"
        self.cache_path = root / (f"pof_faces_cache_{embedder.replace('+', '_')}.npz" if embedder
                                  else "pof_faces_cache.npz")
        self.cache: dict[str, dict] = {}
        if self.cache_path.is_file():
            try:
                z = np.load(self.cache_path, allow_pickle=True)
                if str(z["key"]) == self.key:
                    self.cache = z["cache"].item()
            except Exception:  # noqa: BLE001
                self.cache = {}
        self.wall_s = 0.0
        self.analysed = 0

    def get(self, paths: list[str]) -> dict[str, dict]:
        from pof.runtime.workers import pipeline_map
        hashes = {p: sha_file(self.root / p) for p in dict.fromkeys(paths)}
        todo = [p for p, h in hashes.items() if h not in self.cache]
        if todo:
            t0 = time.perf_counter()
            print(f"pof in-process: analysing {len(todo)} photos ...", file=sys.stderr, flush=True)
            jobs = ((str(self.root / p), self.rule) for p in todo)
            for p, r in zip(todo, pipeline_map(self.pipe, _face_info, jobs, self.workers)):
                self.cache[hashes[p]] = r
            self.wall_s += time.perf_counter() - t0
            self.analysed += len(todo)
            tmp = self.cache_path.with_suffix(".tmp.npz")
            np.savez(tmp, key=self.key, cache=np.array(self.cache, dtype=object))
            os.replace(tmp, self.cache_path)
        return {p: self.cache[hashes[p]] for p in paths}


def stack(infos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors with zero rows where nothing was found, found mask)."""
    found = np.array([i.get("detected", False) for i in infos])
    dim = next((len(i["descriptor"]) for i in infos if i.get("detected")), 128)
    D = np.zeros((len(infos), dim), np.float32)
    for j, i in enumerate(infos):
        if i.get("detected"):
            D[j] = i["descriptor"]
    return D, found


# ----------------------------------------------------------------------------- templates

class Templates:
    """Scores of probes against persons, one way of fusing each person's gallery photos."""

    METHODS = ("max", "mean2", "mean_top3", "mean_all", "mean_descriptor", "quality_weighted")

    def __init__(self, G: np.ndarray, persons: list[str], quality: np.ndarray, method: str):
        order = sorted(range(len(persons)), key=lambda i: persons[i])
        self.G = G[order]
        self.persons = [persons[i] for i in order]
        self.q = np.asarray(quality, float)[order]
        self.labels = sorted(set(persons))
        self.owner = np.array([self.labels.index(p) for p in self.persons])
        self.method = method
        if method in ("mean_descriptor", "quality_weighted"):
            T = np.zeros((len(self.labels), G.shape[1]), np.float32)
            for k in range(len(self.labels)):
                rows = self.owner == k
                w = np.ones(rows.sum()) if method == "mean_descriptor" else \
                    np.maximum(self.q[rows], 1e-3)
                v = (w[:, None] * self.G[rows]).sum(0)
                T[k] = v / max(np.linalg.norm(v), 1e-9)
            self.T = T

    def scores(self, Q: np.ndarray) -> np.ndarray:
        if self.method in ("mean_descriptor", "quality_weighted"):
            return Q @ self.T.T
        S = Q @ self.G.T
        out = np.empty((len(Q), len(self.labels)), np.float32)
        k = {"max": 1, "mean2": 2, "mean_top3": 3, "mean_all": 10 ** 6}[self.method]
        for p in range(len(self.labels)):
            block = np.sort(S[:, self.owner == p], axis=1)[:, ::-1][:, :k]
            out[:, p] = block.mean(axis=1)
        return out

    def impostors(self) -> tuple[np.ndarray, np.ndarray]:
        """Gallery photos scored against every person they are not, and each photo's best such
        score (both sorted; what pof.matching.calibrate.calibrate takes)."""
        S = self.scores(self.G)
        S[np.arange(len(self.G)), self.owner] = np.nan
        return np.sort(S[~np.isnan(S)]), np.sort(np.nanmax(S, axis=1))


def evaluate_scores(S: np.ndarray, found: np.ndarray, persons: list[str], roles: list[str],
                    labels: list[str], threshold: float | None) -> dict:
    """rank-1, DIR at an observed FPIR of 1%, and (given a threshold) DIR and FPIR there."""
    from pof.evaluation.metrics import dir_at, threshold_for_fpir
    top = np.where(found, S.max(axis=1) if S.size else -np.inf, -np.inf)
    arg = S.argmax(axis=1) if S.size else np.zeros(len(found), int)
    ok = np.array([found[i] and labels[arg[i]] == persons[i] for i in range(len(found))])
    m = np.array([r == "mated" for r in roles])
    n = ~m
    out = {"n_mated": int(m.sum()), "n_nonmated": int(n.sum()),
           "rank1": round(float(ok[m].mean()), 4) if m.any() else None}
    if n.any() and m.any():
        t1 = threshold_for_fpir(top[n], TARGET_FPIR)
        out["dir_at_observed_fpir_1pct"] = rounded(dir_at(ok[m], top[m], t1))
        out["threshold_observed_fpir_1pct"] = None if not np.isfinite(t1) else round(t1, 4)
    if threshold is not None:
        out["dir_at_threshold"] = rounded(dir_at(ok[m], top[m], threshold)) if m.any() else None
        out["fpir_at_threshold"] = round(float((top[n] >= threshold).mean()), 4) if n.any() else None
    return out
