"""Multi-probe search on public photos: does ``--same-person`` keep its FPIR promise?

    python -m bench multi_probe_public     (after make_public_set and public)

The Yale study (bench/multi_probe.py) has only 5 people not enrolled, so one lookalike pair can
decide its FPIR. Here: the 236 LFW persons with 5 near-frontal photos of the public set's
calibration part (bench/work/public/calib_gallery.csv). Each draw enrols 50 of them with 3
photos each (pof's Searcher, its default fusion and calibration); their 2 other photos are the
mated probes; the 186 others are not enrolled, and every pair and single of their photos is a
non-mated query. Queries of k = 1 and 2 photos of one person: one photo searched alone, or the
template of two (``Searcher.search_same_person``'s rule: the mean descriptor, judged by
``Searcher.template_calibration(k)``). Prints DIR and observed against predicted FPIR, pooled
over draws (the interval is the normal approximation's). Descriptors come from pof's own
pipeline, cached as the public study caches them (bench/descriptors.py).
"""
from __future__ import annotations

import itertools
import math
import sys

import numpy as np

from bench.descriptors import PofFaces
from bench.harness import WORK, parser, read_csv, require

ROOT = WORK / "public"
DRAWS = 5
ENROLLED = 50


def descriptors_by_person() -> dict[str, list[np.ndarray]]:
    """The calibration gallery's descriptors, by person (photos where pof found a face)."""
    rows = read_csv(ROOT / "calib_gallery.csv")
    faces = PofFaces(ROOT, 2).get([r["path"] for r in rows])
    by_person: dict[str, list[np.ndarray]] = {}
    for r in rows:
        f = faces[r["path"]]
        if f.get("detected"):
            by_person.setdefault(r["person"], []).append(np.asarray(f["descriptor"], np.float32))
    return by_person


def draw_gallery(by_person: dict, persons: list[str], draw: int):
    """One draw: ENROLLED persons enrolled with 3 photos each; (searcher, enrolled, probes by
    person)."""
    from pof.matching.search import Gallery, Searcher
    rng = np.random.default_rng(draw)
    enrolled = set(rng.choice(persons, ENROLLED, replace=False))
    ids, who, vecs, probes = [], [], [], {}
    for p in persons:
        d = by_person[p]
        if p in enrolled:
            for i, v in enumerate(d[:3]):
                ids.append(f"{p}/{i}")
                who.append(p)
                vecs.append(v)
            probes[p] = d[3:5]
        else:
            probes[p] = d[:5]
    return Searcher(Gallery.from_arrays(np.stack(vecs), ids, who)), enrolled, probes


def tally_draw(s, enrolled: set, probes: dict, tally: dict) -> None:
    """Every query of k = 1 and 2 photos of one person, judged by the k-photo template rule."""
    labels = s.gallery.labels
    for k in (1, 2):
        cal = s.template_calibration(k)
        t = tally[k]
        t["pred"].append(cal.fpir())
        t["thr"].append(cal.threshold)
        # each query's top score less the draw's threshold (both float32-exact, so its sign is
        # that of the float32 comparison): the draws pool at a threshold of 0
        thr = float(np.float32(cal.threshold))
        for p, d in probes.items():
            for group in itertools.combinations(range(len(d)), k):
                q = np.mean([d[i] for i in group], axis=0)
                per = s.fused((q / np.linalg.norm(q))[None])[0]
                top = int(np.argmax(per))
                margin = float(per[top]) - thr
                if p in enrolled:
                    t["ok"].append(labels[top] == p)
                    t["margin"].append(margin)
                else:
                    t["non_margin"].append(margin)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.parse_args(argv)
    require([ROOT / "calib_gallery.csv"], "run python -m bench make_public_set first")
    by_person = descriptors_by_person()
    persons = sorted(p for p, d in by_person.items() if len(d) >= 5)
    tally = {k: {"ok": [], "margin": [], "non_margin": [], "pred": [], "thr": []} for k in (1, 2)}
    for draw in range(DRAWS):
        s, enrolled, probes = draw_gallery(by_person, persons, draw)
        tally_draw(s, enrolled, probes, tally)
    print(f"{len(persons)} persons, {DRAWS} draws of {ENROLLED} enrolled (3 photos each), "
          f"fusion {s.fusion}")
    print("| k photos | mated queries | DIR | non-mated queries | observed FPIR (95% CI) | predicted FPIR | threshold |")
    print("|---|---|---|---|---|---|---|")
    from pof.evaluation.metrics import dir_at, fpir_at
    for k, t in tally.items():
        n = len(t["non_margin"])
        p = fpir_at(t["non_margin"], 0.0)
        half = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n)
        print(f"| {k} | {len(t['ok'])} | {dir_at(t['ok'], t['margin'], 0.0):.1%} | {n} | {p:.2%} "
              f"({max(p - half, 0):.2%}-{p + half:.2%}) | {np.mean(t['pred']):.2%} | "
              f"{np.min(t['thr']):.3f}-{np.max(t['thr']):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
