"""Multi-probe search: several photos of one unknown face fused into one query.

    python -m bench multi_probe        (after make_core_set and core)

Probes of the core set (bench/work/core) are grouped by person and condition into groups of k
(k = 1, 2, 3; up to 20 random groups per person and condition), searched against the core
gallery (persons scored with pof's gallery fusion, ``Searcher.fused``), each way of fusing
the probes judged by a rule calibrated for it on the gallery alone:

* template: the mean of the k descriptors (pof's ``--same-person``; calibrated on k-image
  templates of gallery persons, ``calibrate.template_impostor_scores``);
* score mean: each probe searched alone, the k per-person scores averaged (calibrated the same
  way on the gallery, averaging instead of templating).

For each: DIR at FPIR 1% of the enrolled and FPIR of the others, per condition.
"""
from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

from bench.harness import WORK, parser, read_csv, require

ROOT = WORK / "core"
GROUPS = 20


def score_mean_impostors(g, k: int, fusion: str, seed: int = 0) -> np.ndarray:
    """Impostor scores of k-probe score means, simulated on the gallery as for templates."""
    from pof.matching.calibrate import person_scores
    starts, ends = g.starts, np.append(g.starts[1:], len(g.persons))
    fused = person_scores(g.descriptors, g.descriptors, starts, fusion)
    rng, out = np.random.default_rng(seed), []
    for p, (a, b) in enumerate(zip(starts, ends)):
        if b - a < 2:
            continue
        for _ in range(GROUPS):
            rows = a + rng.choice(b - a, min(k, b - a), replace=False)
            out.append(np.delete(fused[rows].mean(axis=0), p))
    return np.sort(np.concatenate(out))


def probe_descriptors(pipe, s) -> dict:
    """(condition, person) -> descriptors of its probes' largest faces that pass the gates."""
    from pof.stages.load import load_image
    desc = defaultdict(list)
    for r in read_csv(ROOT / "probes.csv"):
        faces = pipe.analyze(load_image(ROOT / r["path"]).pixels, with_crops=False)
        if faces:
            f = max(faces, key=lambda f: f.box[2])
            if s.gate(f) is None:
                desc[(r["condition"], r["person"])].append(f.descriptor)
    return desc


def row(s, g, desc: dict, enrolled: set, conditions: list[str], k: int, how: str, cal, rng) -> str:
    """One table row: GROUPS random k-photo queries of every person and condition, fused
    ``how`` ("template" or "score mean") and judged at ``cal``'s threshold; DIR per condition
    of the enrolled, FPIR over every condition of the others."""
    from pof.evaluation.metrics import dir_at, fpir_at
    # the threshold in the scores' own precision (float32): a score equal to it passes
    thr = np.float32(cal.threshold)
    dirs, non_scores = [], []
    for c in conditions:
        ok, scores = [], []
        for (cc, person), d in desc.items():
            if cc != c or len(d) < k:
                continue
            for _ in range(GROUPS):
                pick = np.stack([d[i] for i in rng.choice(len(d), k, replace=False)])
                if how == "template":
                    q = pick.mean(axis=0)
                    per = s.fused((q / np.linalg.norm(q))[None])[0]
                else:
                    per = s.fused(pick).mean(axis=0)
                top = int(np.argmax(per))
                if person in enrolled:
                    ok.append(g.labels[top] == person)
                    scores.append(per[top])
                else:
                    non_scores.append(per[top])
        dirs.append(dir_at(ok, scores, thr) or 0.0)
    fpir = fpir_at(non_scores, thr) or 0.0
    return (f"| {k} | {how} | " + " | ".join(f"{x:.1%}" for x in dirs)
            + f" | {fpir:.1%} ({len(non_scores)}) | {cal.threshold:.3f} |")


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.parse_args(argv)
    require([ROOT / "probes.csv", ROOT / "dataset"],
            "run python -m bench make_core_set and python -m bench core first")
    from pof.matching.calibrate import calibrate
    from pof.matching.search import Gallery, Searcher
    from pof.pipeline import Pipeline
    pipe, g = Pipeline(), Gallery.load(ROOT / "dataset")
    s = Searcher(g)
    enrolled = set(g.labels)
    desc = probe_descriptors(pipe, s)
    rng = np.random.default_rng(0)
    conditions = sorted({c for c, _ in desc})
    print("| k | fusion | " + " | ".join(f"{c} DIR" for c in conditions) + " | FPIR (all) | threshold |")
    print("|---|---|" + "---|" * len(conditions) + "---|---|")
    for k in (1, 2, 3):
        rules = {"template": s.template_calibration(k),
                 "score mean": calibrate(score_mean_impostors(g, k, s.fusion), len(g.labels))}
        for how, cal in rules.items():
            if k == 1 and how == "score mean":
                continue
            print(row(s, g, desc, enrolled, conditions, k, how, cal, rng))
    return 0


if __name__ == "__main__":
    sys.exit(main())
