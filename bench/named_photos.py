"""Which face `pof build` enrols from a photo named for one person, over all of LFW.

LFW names the person at each photo's centre, so a named photo whose enrolled face is not the
one nearest the centre would be enrolled under someone else's name. For every LFW photo this
runs pof's detector and ``pof.dataset.build._pick_named_face`` and counts: one face; several faces,
the largest enrolled (and whether it is the central one); refused because another face is
nearly as large (the earlier rule, AMBIGUOUS_AREA); refused only by the current rule
(a sizeable face nearer the centre than the largest, OFF_CENTRE_AREA).

    python -m bench named_photos [--lfw DIR] [--workers 2]
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from bench.harness import parser, require, save


def _boxes(pipeline, path: str):
    """Module-level (pof worker processes): the detector's boxes and the photo's size."""
    img = pipeline.load(path).pixels
    dets, _ = pipeline.detect(img)
    return [tuple(float(v) for v in d.box) for d in dets], img.shape[1], img.shape[0]


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--lfw", type=Path, default=Path("/work/data/public/lfw_deepfunneled"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    require([args.lfw], "LFW deep-funneled is needed (--lfw DIR; see bench/README.md)")
    from pof.dataset.build import AMBIGUOUS_AREA, _pick_named_face
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import Pipeline
    from pof.record import Face
    from pof.stages.select import central, largest

    files = sorted(args.lfw.glob("*/*.jpg"))
    pipe = Pipeline(attributes="off", runtime="openvino")
    counts, examples = Counter(), {}
    jobs = ((str(f),) for f in files)
    for f, (boxes, w, h) in zip(files, pipeline_map(pipe, _boxes, jobs, args.workers)):
        faces = [Face(index=i, box=b, det_score=1.0, landmarks5=np.zeros((5, 2), np.float32))
                 for i, b in enumerate(boxes)]
        if len(faces) < 2:
            key = "no face" if not faces else "one face"
        else:
            big, mid = largest(faces), central(faces, w, h)
            areas = sorted(x.box[2] * x.box[3] for x in faces)
            _kept, status, _ = _pick_named_face(faces, w, h)
            if areas[-2] >= AMBIGUOUS_AREA * areas[-1]:
                key = "refused: another face nearly as large (by both rules)"
            elif status == "error":
                key = "refused only by the current rule: a sizeable face nearer the centre"
            else:
                key = "several faces, largest enrolled"
            if status != "error":
                key += ", the central one" if big is mid else ", NOT the central one"
        counts[key] += 1
        examples.setdefault(key, []).append(str(f.relative_to(args.lfw)))
    result = {"photos": len(files), "counts": counts,
              "examples": {k: v[:10] for k, v in examples.items() if "NOT" in k or "only since" in k}}
    print(json.dumps(result, indent=1))
    save("named_photos", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
