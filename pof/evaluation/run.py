"""``pof eval pairs`` and ``pof eval ident``: run pof over a labelled set and measure it.

Both read a CSV, analyse every image once (in worker processes), keep one face of each image
(the largest; ``--face center`` takes the most central one, the labelled person in sets such
as LFW; for pairs, descriptors are made as ``pof verify`` makes them), and write figures
(JSON) and pictures (PNG) into an output folder. ``by`` names a column whose values split the
figures (e.g. a probe condition); "all" is always included.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pof.evaluation import metrics as ev
from pof.evaluation import plots
from pof.errors import PofError
from pof.runtime.workers import pipeline_map
from pof.pipeline import Pipeline
from pof.matching.search import Gallery, Searcher
from pof.matching.verify import Verifier, subject_or_error

PROBE_ROLES = {"probe", "mated", "nonmated", "query"}


def read_rows(path: Path, needed: set[str]) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PofError(f"{path}: cannot read ({exc})") from None
    if not rows:
        raise PofError(f"{path}: no rows")
    missing = needed - set(rows[0])
    if missing:
        raise PofError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return rows


def _descriptors(paths: list[str], root: Path, workers: int, progress, rule: str = "largest",
                 mirror: bool = False) -> dict[str, np.ndarray | None]:
    """Descriptor of each image's subject face, picked by ``rule`` (pof.stages.select.SUBJECTS; None
    if unreadable or faceless); ``mirror`` as for pof verify."""
    pipe = Pipeline()
    pipe.settle_runtime(len(paths))
    out: dict[str, np.ndarray | None] = {}
    jobs = ((str(root / p), rule, mirror) for p in paths)
    for p, (face, _err) in zip(paths, pipeline_map(pipe, subject_or_error, jobs, workers)):
        out[p] = face.descriptor if face is not None else None
        progress()
    return out


def _groups(rows: list[dict], by: str | None) -> dict[str, list[int]]:
    groups = {"all": list(range(len(rows)))}
    if by:
        if by not in rows[0]:
            raise PofError(f"no column {by!r} to split by; columns: {', '.join(rows[0])}")
        for i, r in enumerate(rows):
            groups.setdefault(f"{by}={r[by]}", []).append(i)
    return groups


def run_pairs(pairs_csv: Path, root: Path, out: Path, by: str | None, workers: int,
              progress=lambda: None, fmr: float = 1e-3, subject: str = "largest",
              mirror: bool = True) -> dict:
    """Verification figures of a pairs CSV, each image's face picked by ``subject`` and
    described as ``pof verify`` does (``mirror``). A ``fold`` column, if present, gives the
    folds of the 10-fold accuracy (LFW View 2's ten sets); else pairs are dealt at random."""
    rows = read_rows(pairs_csv, {"file_x", "file_y", "Decision"})
    paths = list(dict.fromkeys(p for r in rows for p in (r["file_x"], r["file_y"])))
    desc = _descriptors(paths, root, workers, progress, subject, mirror)
    scores = np.array([float(desc[r["file_x"]] @ desc[r["file_y"]])
                       if desc[r["file_x"]] is not None and desc[r["file_y"]] is not None else -np.inf
                       for r in rows])
    same = np.array([r["Decision"].strip().lower() in ("yes", "1", "true", "same") for r in rows])
    folds = np.array([r["fold"] for r in rows]) if "fold" in rows[0] else None
    threshold = Verifier(fmr, mirror=mirror).threshold
    result = {"kind": "pairs", "subject": subject, "mirror": mirror, "groups": {}}
    roc_curves, det_curves = {}, {}
    for name, idx in _groups(rows, by).items():
        s, y = scores[idx], same[idx]
        result["groups"][name] = ev.pair_figures(s, y, threshold, None if folds is None else folds[idx])
        ok = np.isfinite(s)
        far, tar, _ = ev.roc(s[y & ok], s[~y & ok])
        roc_curves[name], det_curves[name] = (far, tar), (far, 1 - tar)
    out.mkdir(parents=True, exist_ok=True)
    result["pictures"] = [str(plots.roc_plot(roc_curves, out / "roc.png", "Verification ROC")),
                          str(plots.det_plot(det_curves, out / "det.png", "Verification DET"))]
    (out / "pairs.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _search_record(searcher: Searcher, d: np.ndarray | None, person: str, enrolled: set[str]) -> dict:
    rec = {"mated": person in enrolled, "detected": d is not None, "rank": 0,
           "top_score": -np.inf, "top_ok": False, "decision_match": False,
           "predicted_fpir": searcher.calibration.fpir()}
    if d is None:
        return rec
    fused = searcher.fused(d[None, :])[0]
    order = np.argsort(-fused, kind="stable")
    labels = searcher.gallery.labels
    rec["top_score"] = float(fused[order[0]])
    rec["top_ok"] = labels[order[0]] == person
    rec["decision_match"] = rec["top_score"] >= searcher.calibration.threshold
    if rec["mated"]:
        rec["rank"] = int(np.flatnonzero(np.array(labels)[order] == person)[0]) + 1
    return rec


def run_ident(manifest: Path, root: Path, out: Path, by: str | None, workers: int,
              progress=lambda: None, fpir: float = 0.01, subject: str = "largest") -> dict:
    """Open-set identification figures of a manifest, each image's face picked by ``subject``
    (pof.stages.select.SUBJECTS)."""
    rows = read_rows(manifest, {"path", "person", "role"})
    gal = [r for r in rows if r["role"].strip().lower() == "gallery"]
    probes = [r for r in rows if r["role"].strip().lower() in PROBE_ROLES]
    if not gal or not probes:
        raise PofError(f"{manifest}: needs rows with role 'gallery' and rows with role 'probe'")
    desc = _descriptors(list(dict.fromkeys(r["path"] for r in rows)), root, workers, progress,
                        subject)
    g_rows = [r for r in gal if desc[r["path"]] is not None]
    gallery = Gallery.from_arrays(np.stack([desc[r["path"]] for r in g_rows]),
                                  [r["path"] for r in g_rows], [r["person"] for r in g_rows])
    searcher = Searcher(gallery, target_fpir=fpir)
    enrolled = set(gallery.labels)
    recs = [_search_record(searcher, desc[r["path"]], r["person"], enrolled) for r in probes]
    result = {"kind": "ident", "subject": subject, "gallery_images": len(g_rows),
              "gallery_failed": len(gal) - len(g_rows),
              "persons": len(enrolled), "calibration": searcher.calibration.to_json(), "groups": {}}
    cmcs, dets = {}, {}
    for name, idx in _groups(probes, by).items():
        sub = [recs[i] for i in idx]
        result["groups"][name] = fig = ev.ident_figures(sub, max_rank=min(20, len(enrolled)))
        if fig["mated"]:
            cmcs[name] = np.array(fig["cmc"])
        dets[name] = _fnir_fpir_curve(sub)
    out.mkdir(parents=True, exist_ok=True)
    pics = [plots.cmc_plot(cmcs, out / "cmc.png", "Identification CMC")] if cmcs else []
    pics.append(plots.det_plot({k: v for k, v in dets.items() if v is not None}, out / "det.png",
                               "Open-set identification: FNIR vs FPIR"))
    result["pictures"] = [str(p) for p in pics]
    (out / "ident.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _fnir_fpir_curve(recs: list[dict]):
    m = [r for r in recs if r["mated"]]
    n = [r for r in recs if not r["mated"]]
    if not m or not n:
        return None
    nm = np.array([r["top_score"] for r in n])
    ts = np.unique(np.concatenate([nm[np.isfinite(nm)], [np.inf]]))[::-1]
    fpir = np.array([(nm >= t).mean() for t in ts])
    fnir = np.array([1 - np.mean([r["top_ok"] and r["top_score"] >= t for r in m]) for t in ts])
    return fpir, fnir
