"""How identification degrades as a face gets blurred: the basis of pof's blur gate.

    python -m bench blur_sweep        (after make_core_set and core)

Each plain probe of the core set is blurred with a Gaussian whose sigma is a fraction of the
face's eye distance (so the blur means the same on large and small faces), then searched
against the core gallery (bench/work/core/dataset) with the quality gates switched off. For
each step: the share of probes detected, rank-1 and DIR (at pof's FPIR-1% threshold) of the
enrolled, FPIR of the others, and the median of pof's blur measure (0 sharp .. 1 very
blurred) on the faces found; then, over every blurred face, rank-1 by blur-measure band.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

from bench.harness import WORK, parser, read_csv, require

ROOT = WORK / "core"
SIGMAS = (0.0, 0.03, 0.06, 0.09, 0.12, 0.16, 0.20, 0.25)   # x the eye distance, px
BANDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01)


def search(mated: bool, detected: bool, top_ok: bool, match: bool) -> dict:
    """One search as ``pof.evaluation.metrics.ident_figures`` takes it (only the top candidate
    is known: rank 1 or 0)."""
    return {"mated": mated, "detected": detected, "rank": 1 if top_ok else 0,
            "top_ok": top_ok, "decision_match": match, "top_score": -np.inf}


def sweep(pipe, searcher, rows: list[dict], enrolled: set) -> list[tuple]:
    """Print one table row per blur step; returns (blur measure, enrolled, rank-1 right) of
    each blurred face found."""
    from pof.evaluation.metrics import ident_figures
    from pof.stages.load import load_image
    every = []
    print("| sigma / eye distance | detected | rank-1 | DIR at FPIR 1% | FPIR | median blur |")
    print("|---|---|---|---|---|---|")
    for k in SIGMAS:
        found, blurs, searches = 0, [], []
        for r in rows:
            im = load_image(ROOT / r["path"]).pixels
            faces = pipe.analyze(im, with_crops=False)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.box[2])
            mated = r["person"] in enrolled
            sigma = k * face.interocular
            probe = cv2.GaussianBlur(im, (0, 0), sigma) if sigma > 0 else im
            got = pipe.analyze(probe, with_crops=False)
            if not got:
                searches.append(search(mated, False, False, False))
                continue
            g = max(got, key=lambda f: f.box[2])
            res = searcher.search([g], 1)[0].to_json()
            top = res["candidates"][0]["person"]
            found += 1
            blurs.append(g.blur)
            every.append((g.blur, mated, top == r["person"]))
            searches.append(search(mated, True, top == r["person"], res["decision"] == "match"))
        f = ident_figures(searches, max_rank=1)
        print(f"| {k:.2f} | {found / len(rows):.2f} | {f['rank1']:.2f} | {f['dir_at_threshold']:.2f} | "
              f"{f['fpir_at_threshold']:.2f} | {np.median(blurs):.2f} |")
    return every


def bands(every: list[tuple]) -> None:
    """Rank-1 of the enrolled by band of pof's blur measure, over every blurred face."""
    a = np.array(every, dtype=float)
    print("\n| blur measure | faces (enrolled) | rank-1 |\n|---|---|---|")
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        sel = (a[:, 0] >= lo) & (a[:, 0] < hi) & (a[:, 1] == 1)
        if sel.any():
            print(f"| {lo:.2f}-{min(hi, 1):.2f} | {int(sel.sum())} | {a[sel, 2].mean():.2f} |")


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.parse_args(argv)
    require([ROOT / "probes.csv", ROOT / "dataset"],
            "run python -m bench make_core_set and python -m bench core first")
    from pof.matching.search import Gallery, Searcher
    from pof.pipeline import Pipeline
    rows = [r for r in read_csv(ROOT / "probes.csv") if r["condition"] == "plain"]
    pipe = Pipeline()
    searcher = Searcher(Gallery.load(ROOT / "dataset"), min_interocular=0, max_blur=1.0)
    bands(sweep(pipe, searcher, rows, set(searcher.gallery.labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
