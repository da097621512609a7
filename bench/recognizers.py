#!/usr/bin/env python
"""How much of each recognizer: dlib's ResNet, MobileFace, and their weighted sum (issue 3).

pof's default descriptor (embedder ``dlib+mobileface-onnx``) is [sqrt(w) * dlib, sqrt(1 - w) *
MobileFace] with w = 0.93, so one inner product scores w * dlib cosine + (1 - w) * MobileFace
cosine. This study takes that descriptor apart (both parts are unit vectors) and puts it back
together at other weights, w = 0 (MobileFace alone) to 1 (dlib alone), on the same faces:

- the public set (LFW, bench/make_public_set.py): per condition, DIR at an observed FPIR of 1%
  (threshold set on that condition's non-enrolled probes: an oracle, the same for every w) and
  DIR / FPIR at the threshold pof calibrates from the gallery (template fusion, target 1%);
  verification pairs (LFW View 2 folds 1-2), 10-fold accuracy;
- the Yale core set (bench/make_core_set.py), which played no part in choosing w: the same.

Descriptors come from pof's own pipeline (cached with bench/public.py's cache). Prints Markdown,
writes bench/work/recognizers.json.

    python bench/recognizers.py [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from core import read_csv
from public import PofFaces, Templates, evaluate_scores, stack

WEIGHTS = [0.0, 0.5, 0.8, 0.9, 0.93, 0.95, 1.0]
TARGET_FPIR = 0.01


def split(D: np.ndarray, w: float) -> tuple[np.ndarray, np.ndarray]:
    """The dlib and MobileFace unit vectors inside pof's fused descriptors."""
    from pof.embed.mobileface import DLIB_WEIGHT
    d = D[:, :128] / math.sqrt(DLIB_WEIGHT)
    m = D[:, 128:] / math.sqrt(1 - DLIB_WEIGHT)
    return d, m


def refuse(D: np.ndarray, w: float) -> np.ndarray:
    d, m = split(D, w)
    return np.hstack([math.sqrt(w) * d, math.sqrt(1 - w) * m]).astype(np.float32)


def ident(gal_rows, gal_faces, probe_rows, probe_faces, conditions, w) -> dict:
    from pof.calibrate import calibrate
    Dg, fg = stack([gal_faces[r["path"]] for r in gal_rows])
    keep = [i for i in range(len(gal_rows)) if fg[i]]
    G = refuse(Dg[keep], w)
    persons = [gal_rows[i]["person"] for i in keep]
    t = Templates(G, persons, np.ones(len(keep)), "mean_descriptor")
    imp, best = t.impostors()
    # pof's rule: the template from 20 persons, the best image below (fusion "auto")
    if len(t.labels) < 20:
        t = Templates(G, persons, np.ones(len(keep)), "max")
        imp, best = t.impostors()
    cal = calibrate(imp, len(t.labels), TARGET_FPIR, best)
    out = {"threshold": round(cal.threshold, 4), "by_condition": {}}
    for c in conditions + ["overall"]:
        rows = [r for r in probe_rows if c == "overall" or r["condition"] == c]
        Dq, fq = stack([probe_faces[r["path"]] for r in rows])
        out["by_condition"][c] = evaluate_scores(
            t.scores(refuse(Dq, w)), fq, [r["person"] for r in rows], [r["role"] for r in rows],
            t.labels, cal.threshold)
    return out


def pairs_accuracy(pairs, faces, w) -> float:
    from pof.evaluate import accuracy_10fold
    scores, same = [], []
    for p in pairs:
        a, b = faces[p["file_x"]], faces[p["file_y"]]
        if a.get("detected") and b.get("detected"):
            va, vb = refuse(a["descriptor"][None], w), refuse(b["descriptor"][None], w)
            scores.append(float(va[0] @ vb[0]))
        else:
            scores.append(-np.inf)
        same.append(p["Decision"] == "Yes")
    return round(accuracy_10fold(np.array(scores), np.array(same)), 4)


def study(root: Path, gal_rows, conditions, workers: int) -> dict:
    probe_rows = read_csv(root / "probes.csv")
    pairs = read_csv(root / "pairs.csv")
    pf = PofFaces(root, workers)
    if not pf.key.split("embedder=")[1].startswith("dlib+mobileface-onnx/"):
        raise SystemExit("this study needs pof's default embedder dlib+mobileface-onnx")
    gal_faces = pf.get([r["path"] for r in gal_rows])
    probe_faces = pf.get([r["path"] for r in probe_rows])
    pair_faces = pf.get(sorted({p[k] for p in pairs for k in ("file_x", "file_y")}))
    out = {}
    for w in WEIGHTS:
        res = ident(gal_rows, gal_faces, probe_rows, probe_faces, conditions, w)
        res["pairs_accuracy_10fold"] = pairs_accuracy(pairs, pair_faces, w)
        out[str(w)] = res
        print(f"  w={w}: done", file=sys.stderr, flush=True)
    return out


def markdown(name: str, res: dict, conditions) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"
    lines = [f"#### {name}", "",
             "DIR at observed FPIR 1% (oracle) | DIR / FPIR at pof's calibrated threshold", "",
             "| w (dlib share) | " + " | ".join(conditions + ["overall"]) + " | pairs 10-fold |",
             "|---" * (len(conditions) + 3) + "|"]
    for w, r in res.items():
        cells = []
        for c in conditions + ["overall"]:
            e = r["by_condition"][c]
            cells.append(f"{pct(e.get('dir_at_observed_fpir_1pct'))} \\| "
                         f"{pct(e.get('dir_at_threshold'))} / {pct(e.get('fpir_at_threshold'))}")
        label = {"0.0": "0 (MobileFace)", "1.0": "1 (dlib)", "0.93": "**0.93 (pof)**"}.get(w, w)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {pct(r['pairs_accuracy_10fold'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    pub = HERE / "work" / "public"
    core = HERE / "work" / "core"
    out = {}
    pub_cond = ["plain", "masked", "eyeband", "small", "jpeg_blur", "pose"]
    out["public"] = study(pub, read_csv(pub / "gallery.csv"), pub_cond, args.workers)
    core_gal = [{"path": str(p.relative_to(core)), "person": p.parent.name}
                for p in sorted((core / "gallery").glob("*/*")) if p.is_file()]
    core_cond = ["plain", "masked", "eyeband", "small", "jpeg_blur"]
    out["core"] = study(core, core_gal, core_cond, args.workers)
    (HERE / "work" / "recognizers.json").write_text(json.dumps(out, indent=1))
    print(markdown("Public set (LFW, 50 enrolled persons)", out["public"], pub_cond))
    print(markdown("Yale core set (10 enrolled persons)", out["core"], core_cond))


if __name__ == "__main__":
    main()
