"""How identification degrades as a face gets blurred: the basis of pof's blur gate.

    python bench/blur_sweep.py        (after bench/make_core_set.py and bench/core.py)

Each plain probe of the core set is blurred with a Gaussian whose sigma is a fraction of the
face's eye distance (so the blur means the same on large and small faces), then searched
against the core gallery (bench/work/core/dataset) with the quality gates switched off. For
each step: the share of probes detected, rank-1 and DIR (at pof's FPIR-1% threshold) of the
enrolled, FPIR of the others, and the median of pof's blur measure (0 sharp .. 1 very
blurred) on the faces found; then, over every blurred face, rank-1 by blur-measure band.
"""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from pof.stages.load import load_image
from pof.pipeline import Pipeline
from pof.matching.search import Gallery, Searcher

ROOT = Path(__file__).resolve().parent / "work" / "core"
SIGMAS = (0.0, 0.03, 0.06, 0.09, 0.12, 0.16, 0.20, 0.25)   # x the eye distance, px
BANDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01)


def main() -> None:
    rows = [r for r in csv.DictReader(open(ROOT / "probes.csv")) if r["condition"] == "plain"]
    pipe = Pipeline()
    searcher = Searcher(Gallery.load(ROOT / "dataset"), min_interocular=0, max_blur=1.0)
    enrolled = set(searcher.gallery.labels)
    every = []   # (blur measure, enrolled, rank-1 right) of each blurred face found
    print("| sigma / eye distance | detected | rank-1 | DIR at FPIR 1% | FPIR | median blur |")
    print("|---|---|---|---|---|---|")
    for k in SIGMAS:
        found, right, dir_hits, fp, blurs, n_in, n_out = 0, 0, 0, 0, [], 0, 0
        for r in rows:
            im = load_image(ROOT / r["path"]).pixels
            faces = pipe.analyze(im, with_crops=False)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.box[2])
            mated = r["person"] in enrolled
            n_in, n_out = n_in + mated, n_out + (not mated)
            sigma = k * face.interocular
            probe = cv2.GaussianBlur(im, (0, 0), sigma) if sigma > 0 else im
            got = pipe.analyze(probe, with_crops=False)
            if not got:
                continue
            g = max(got, key=lambda f: f.box[2])
            res = searcher.search([g], 1)[0].to_json()
            top = res["candidates"][0]["person"]
            found += 1
            blurs.append(g.blur)
            every.append((g.blur, mated, top == r["person"]))
            if mated:
                right += top == r["person"]
                dir_hits += top == r["person"] and res["decision"] == "match"
            else:
                fp += res["decision"] == "match"
        print(f"| {k:.2f} | {found / len(rows):.2f} | {right / n_in:.2f} | {dir_hits / n_in:.2f} | "
              f"{fp / n_out:.2f} | {np.median(blurs):.2f} |")
    a = np.array(every, dtype=float)
    print("\n| blur measure | faces (enrolled) | rank-1 |\n|---|---|---|")
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        sel = (a[:, 0] >= lo) & (a[:, 0] < hi) & (a[:, 1] == 1)
        if sel.any():
            print(f"| {lo:.2f}-{min(hi, 1):.2f} | {int(sel.sum())} | {a[sel, 2].mean():.2f} |")


if __name__ == "__main__":
    main()
