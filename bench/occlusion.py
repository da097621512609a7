"""Does enrolling synthetic occlusions help identify masked and eye-covered faces?

    python -m bench occlusion [SET_DIR]      (default bench/work/public; bench/work/core works too)

SET_DIR holds gallery/PERSON/IMAGE and probes.csv (path,person,role,condition), as written by
``python -m bench make_public_set`` or ``make_core_set``. Every gallery photo is analysed by pof;
then, from its 68 landmarks, bench/augment.py draws a cloth mask and dark sunglasses on it and the
covered photos are analysed too. Each probe's largest face is searched (quality gates on)
against:

* plain: the real gallery faces only (what pof does without augmentation);
* augmented: each person's real faces plus their masked and sunglassed versions (a person's
  score is the max over all of them).

Each gallery is calibrated on its own impostor scores (pof.matching.calibrate: every row, synthetic
ones included, searched against the other persons; pof.matching.calibrate.calibrate_gallery) for
FPIR 1%. Printed per condition:
rank-1 and DIR at FPIR 1% of the mated probes, FPIR of the non-mated ones.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.augment import KINDS, occlude
from bench.harness import WORK, parser, read_csv, require


def nearest(faces, box):
    """The face whose box centre is nearest ``box``'s (the same face after covering)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)


def gallery_rows(root: Path, pipe) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Descriptors, persons and kinds ("real", "mask", "sunglasses") of the gallery."""
    from pof.errors import PofError
    from pof.stages.load import load_image
    desc, persons, kinds = [], [], []
    files = sorted(f for f in (root / "gallery").glob("*/*") if f.is_file())
    for f in tqdm(files, desc="gallery", unit="img"):
        try:
            px = load_image(f).pixels
            faces = pipe.analyze(px, with_crops=False)
        except PofError:
            continue
        if not faces:
            continue
        face = max(faces, key=lambda x: x.box[2] * x.box[3])
        desc.append(face.descriptor), persons.append(f.parent.name), kinds.append("real")
        for kind in KINDS:
            got = pipe.analyze(occlude(px, face.landmarks68, kind), with_crops=False)
            if got:
                desc.append(nearest(got, face.box).descriptor)
                persons.append(f.parent.name), kinds.append(kind)
    return desc, persons, kinds


def probe_rows(root: Path, pipe) -> list[tuple[str, str, str, np.ndarray | None]]:
    """(condition, person, role, descriptor or None if not found / gated) of every probe."""
    from pof.errors import PofError
    from pof.settings import value
    from pof.stages.load import load_image
    min_interocular, max_blur = value("min_interocular", None), value("max_blur", None)  # pof's gates
    out = []
    rows = read_csv(root / "probes.csv")
    for r in tqdm(rows, desc="probes", unit="img"):
        d = None
        try:
            faces = pipe.analyze(load_image(root / r["path"]).pixels, with_crops=False)
        except PofError:
            faces = []
        if faces:
            f = max(faces, key=lambda x: x.box[2] * x.box[3])
            if f.interocular >= min_interocular and f.blur <= max_blur:
                d = f.descriptor
        out.append((r["condition"], r["person"], r["role"], d))
    return out


def evaluate(desc: np.ndarray, persons: list[str], probes) -> dict[str, tuple[float, float, float]]:
    """Per condition: (rank-1, DIR at FPIR 1%, FPIR) against the gallery (desc, persons)."""
    from pof.evaluation.metrics import cmc, dir_at, fpir_at
    from pof.matching.calibrate import calibrate_gallery, fuse_by_person, group_starts
    order = np.argsort(persons, kind="stable")
    desc, persons = desc[order], [persons[i] for i in order]
    starts = group_starts(persons)
    labels = [persons[i] for i in starts]
    cal = calibrate_gallery(desc, persons, 0.01)
    # per condition: the mated probes' (mate on top, top score) and the others' top scores;
    # -inf where no face was found or it was gated
    stats: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    for cond, person, role, d in probes:
        ok, scores, non = stats[cond]
        mated = person in labels
        top, score = None, -np.inf
        if d is not None:
            per = fuse_by_person(d[None] @ desc.T, starts)[0]
            top = int(np.argmax(per))
            score = per[top]
        if mated:
            ok.append(top is not None and labels[top] == person)
            scores.append(score)
        else:
            non.append(score)
    thr = np.float32(cal.threshold)        # in the scores' own precision: one equal to it passes
    out = {c: (float(cmc([1 if x else 0 for x in ok], 1)[0]) if ok else 0.0,
               dir_at(ok, scores, thr) or 0.0, fpir_at(non, thr) or 0.0)
           for c, (ok, scores, non) in stats.items()}
    out["_threshold"] = (cal.threshold, cal.fpir(), 0.0)
    return out


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("root", nargs="?", type=Path, default=WORK / "public", metavar="SET_DIR")
    root = ap.parse_args(argv).root
    require([root / "gallery", root / "probes.csv"],
            "run python -m bench make_public_set (or make_core_set) first")
    from pof.pipeline import Pipeline
    pipe = Pipeline()
    desc, persons, kinds = gallery_rows(root, pipe)
    probes = probe_rows(root, pipe)
    desc = np.stack(desc)
    real = [i for i, k in enumerate(kinds) if k == "real"]
    results = {"plain gallery": evaluate(desc[real], [persons[i] for i in real], probes),
               "augmented gallery": evaluate(desc, persons, probes)}
    conds = sorted(c for c in results["plain gallery"] if not c.startswith("_"))
    n = defaultdict(lambda: [0, 0])
    for cond, person, role, _ in probes:
        n[cond][role != "mated"] += 1
    print(f"{root}: {len(real)} real gallery faces of {len(set(persons))} persons, "
          f"{len(kinds) - len(real)} synthetic; probes per condition (mated/non-mated): "
          + ", ".join(f"{c} {n[c][0]}/{n[c][1]}" for c in conds))
    print("\n| gallery | threshold | " + " | ".join(f"{c} rank-1 / DIR / FPIR" for c in conds) + " |")
    print("|---|---|" + "---|" * len(conds))
    for name, res in results.items():
        cells = [f"{res[c][0]:.1%} / {res[c][1]:.1%} / {res[c][2]:.1%}" for c in conds]
        print(f"| {name} | {res['_threshold'][0]:.3f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
