"""How identification degrades as a face gets smaller: the basis of pof's quality gate.

    python -m bench size_sweep        (after make_core_set and core)

Each plain probe of the core set is shrunk so its eyes are N px apart, then searched against
the core gallery (bench/work/core/dataset) with the quality gate switched off. Per eye
distance: the share of probes detected, rank-1 and DIR of the enrolled, FPIR of the others,
and the median eye distance and quality pof measured on the faces found.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np

from bench.harness import WORK, parser, read_csv, require

ROOT = WORK / "core"
EYE_DISTANCES = (40, 20, 14, 10, 8, 6, 5, 4)


def probe_outcomes(p, s, rows: list[dict], enrolled: set, iod: int) -> list[tuple]:
    """(enrolled, found, rank-1 right, match, eye distance, quality) of each plain probe
    shrunk to an eye distance of ``iod`` px (probes with no face at full size are skipped)."""
    from pof.stages.load import load_image
    stats = []
    for r in rows:
        im = load_image(ROOT / r["path"]).pixels
        f0 = p.analyze(im, with_crops=False)
        if not f0:
            continue
        f = max(f0, key=lambda f: f.box[2])
        sc = iod / f.interocular
        small = cv2.resize(im, (max(8, int(im.shape[1] * sc)), max(8, int(im.shape[0] * sc))),
                           interpolation=cv2.INTER_AREA)
        fs = p.analyze(small, with_crops=False)
        if not fs:
            stats.append((r["person"] in enrolled, False, False, False, 0, 0))
            continue
        g = max(fs, key=lambda f: f.box[2])
        res = s.search([g], 1)[0].to_json()
        # no candidates: another gate (blur) refused the face; counted as found, not identified
        top = res["candidates"][0] if res["candidates"] else {"person": None}
        stats.append((r["person"] in enrolled, True, top["person"] == r["person"],
                      res["decision"] == "match", g.interocular, g.quality))
    return stats


def line(iod: int, stats: list[tuple]) -> str:
    from pof.evaluation.metrics import ident_figures
    f = ident_figures([{"mated": bool(s[0]), "detected": bool(s[1]), "rank": 1 if s[2] else 0,
                        "top_ok": bool(s[2]), "decision_match": bool(s[3]), "top_score": -np.inf}
                       for s in stats], max_rank=1)
    a = np.array(stats, dtype=object)
    found = a[:, 1].any()
    return (f"iod {iod:3d}: detected {np.mean(a[:, 1].astype(bool)):.2f} "
            f"rank1 {f['rank1']:.2f} DIR {f['dir_at_threshold']:.2f} "
            f"FPIR {f['fpir_at_threshold']:.2f} "
            f"measured iod {np.median(a[a[:, 1] == True][:, 4].astype(float)) if found else 0:.1f} "  # noqa: E712
            f"q {np.median(a[a[:, 1] == True][:, 5].astype(float)) if found else 0:.2f}")  # noqa: E712


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.parse_args(argv)
    require([ROOT / "probes.csv", ROOT / "dataset"],
            "run python -m bench make_core_set and python -m bench core first")
    from pof.matching.search import Gallery, Searcher
    from pof.pipeline import Pipeline
    rows = [r for r in read_csv(ROOT / "probes.csv") if r["condition"] == "plain"]
    p = Pipeline()
    s = Searcher(Gallery.load(ROOT / "dataset"), min_interocular=0)
    enrolled = set(s.gallery.labels)
    for iod in EYE_DISTANCES:
        print(line(iod, probe_outcomes(p, s, rows, enrolled, iod)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
