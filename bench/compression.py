"""Heavily compressed photos: which restoration before description helps, and when.

On the public set (``python -m bench make_public_set``, LFW, 50 enrolled persons, the face nearest each
photo's centre), pof's descriptors are computed with deblocking off (``Pipeline(deblock="off")``)
on probes that were restored in each way below before the pipeline saw them; the gallery is
the set's own photos (none of them blocky) and its threshold pof's calibration (template
fusion, FPIR 1%), as the recognizers study does. Per probe set and restoration: rank-1, DIR at
an observed FPIR of 1% (oracle) and DIR / FPIR at pof's threshold.

Probe sets: the benchmark's own JPEG+blur probes (blur 2 px, then JPEG quality 8), and its
plain probes made worse here in three other ways (JPEG quality 10, blur 1 px then quality 15,
quality 20), so that a restoration is not judged on the one degradation it was chosen on.
Also each probe set's blockiness (pof.stages.restore.blockiness), which decides when pof restores.

    python -m bench compression [--sets jpeg_blur,q10,b1q15,q20] [--methods none,gauss1.5,...]
                                [--out bench/work/compression.json]

Prints Markdown; writes the figures as JSON (--out).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.descriptors import Templates, evaluate_scores, stack
from bench.harness import WORK, parser, read_csv, require, save

ROOT = WORK / "public"


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# probe sets: (condition of the set's probes, how they are made worse here)
SETS = {
    "jpeg_blur": ("jpeg_blur", None),
    "q10": ("plain", lambda im: jpeg(im, 10)),
    "b1q15": ("plain", lambda im: jpeg(cv2.GaussianBlur(im, (0, 0), 1.0), 15)),
    "q20": ("plain", lambda im: jpeg(im, 20)),
}


def gauss(s):
    return lambda im: cv2.GaussianBlur(im, (0, 0), s)


# restorations: (function of the pixels or None, mirror-averaged descriptors)
METHODS = {
    "none": (None, False),
    "none+mirror": (None, True),
    "gauss1": (gauss(1.0), False),
    "gauss1.5": (gauss(1.5), False),
    "gauss2": (gauss(2.0), False),
    "gauss1.5+mirror": (gauss(1.5), True),
    "bilateral": (lambda im: cv2.bilateralFilter(im, 9, 75, 5), False),
    "bilateral+mirror": (lambda im: cv2.bilateralFilter(im, 9, 75, 5), True),
    "median3": (lambda im: cv2.medianBlur(im, 3), False),
    "nlmeans5": (lambda im: cv2.fastNlMeansDenoisingColored(im, None, 5, 5, 7, 21), False),
    "nlmeans8": (lambda im: cv2.fastNlMeansDenoisingColored(im, None, 8, 8, 7, 21), False),
}


def describe(pipe, pixels: np.ndarray, mirror: bool) -> dict:
    from pof.stages.select import subject
    faces = pipe.analyze(pixels, with_crops=False, mirror=mirror)
    if not faces:
        return {"detected": False}
    f = subject(faces, "center", pixels.shape[1], pixels.shape[0])
    return {"detected": True, "descriptor": f.descriptor.astype(np.float32)}


def gallery_templates(pipe):
    """The set's gallery as mean-descriptor templates and pof's calibration of them."""
    from pof.matching.calibrate import calibrate
    gal = read_csv(ROOT / "gallery.csv")
    gi = [describe(pipe, np.asarray(Image.open(ROOT / r["path"]).convert("RGB")), False)
          for r in tqdm(gal, desc="gallery")]
    G, fg = stack(gi)
    keep = np.flatnonzero(fg)
    t = Templates(G[keep], [gal[i]["person"] for i in keep], np.ones(len(keep)), "mean_descriptor")
    imp, best = t.impostors()
    return t, calibrate(imp, len(t.labels), 0.01, best)


def probe_set(pipe, t, cal, probes: list[dict], name: str, methods: list[str]) -> dict:
    """One probe set: its blockiness, and the figures after each restoration."""
    from pof.stages.restore import blockiness
    cond, worse = SETS[name]
    rows = [r for r in probes if r["condition"] == cond]
    pixels = [np.asarray(Image.open(ROOT / r["path"]).convert("RGB")) for r in rows]
    if worse is not None:
        pixels = [worse(p) for p in pixels]
    block = [blockiness(p) for p in pixels]
    res = {"blockiness_pct": dict(zip(["0", "5", "50", "95", "100"],
                                      np.percentile(block, [0, 5, 50, 95, 100]).round(2).tolist())),
           "methods": {}}
    for m in methods:
        fn, mirror = METHODS[m]
        qi = [describe(pipe, np.ascontiguousarray(fn(p)) if fn else p, mirror)
              for p in tqdm(pixels, desc=f"{name} {m}")]
        Q, fq = stack(qi)
        res["methods"][m] = evaluate_scores(t.scores(Q), fq, [r["person"] for r in rows],
                                            [r["role"] for r in rows], t.labels, cal.threshold)
    return res


def table(out: dict) -> str:
    lines = ["| probes | blockiness (median, 5-95%) | restoration | rank-1 | DIR at FPIR 1% (oracle) | DIR / FPIR at pof's threshold |",
             "|---|---|---|---|---|---|"]
    for name, res in out["sets"].items():
        b = res["blockiness_pct"]
        for m, e in res["methods"].items():
            lines.append(f"| {name} | {b['50']:.2f} ({b['5']:.2f}-{b['95']:.2f}) | {m} | {100 * e['rank1']:.1f}% | "
                         f"{100 * e['dir_at_observed_fpir_1pct']:.1f}% | {100 * e['dir_at_threshold']:.1f}% / "
                         f"{100 * e['fpir_at_threshold']:.1f}% |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--sets", default="jpeg_blur,q10,b1q15,q20")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", type=Path, default=WORK / "compression.json")
    args = ap.parse_args(argv)
    require([ROOT / "gallery.csv", ROOT / "probes.csv"], "run python -m bench make_public_set first")
    from pof.pipeline import Pipeline

    pipe = Pipeline(deblock="off")
    t, cal = gallery_templates(pipe)
    probes = read_csv(ROOT / "probes.csv")
    out = {"threshold": round(cal.threshold, 4), "sets": {}}
    for name in args.sets.split(","):
        out["sets"][name] = probe_set(pipe, t, cal, probes, name, args.methods.split(","))
        save("compression", out, out=args.out)          # after each set: a long run keeps its part
    print(f"pof's threshold {out['threshold']} (50 persons, FPIR 1%)\n")
    print(table(out))
    save("compression", out, table(out), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
