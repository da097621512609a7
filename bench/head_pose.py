"""How often OpenCV's head-pose fit lands on the mirrored solution, and what refitting does.

pof's head pose (``pof.stages.quality.head_pose``) fits a generic 3-D head, flipped top to bottom and
so mirrored, to six of the 68 landmarks with cv2.solvePnP. Only fits at negative depth mean
something (the mirrored head behind the camera projects as the real one in front of it). For
every face in every 5th LFW photo this counts the first fits at positive depth, compares the
angles before and after pof's refit, and checks both against a 2-D cue: the nose tip's
offset from the eye midpoint over the eye distance, mapped to degrees by a line fitted on the
faces whose first fit was fine.

    python -m bench head_pose [--lfw DIR] [--step 5] [--workers 2]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from bench.harness import parser, require, save


def _landmarks(pipeline, path: str):
    """Module-level (pof worker processes): every face's 68 landmarks and the photo's size."""
    img = pipeline.load(path).pixels
    return [f.landmarks68 for f in pipeline.analyze(img, with_crops=False)], (img.shape[1], img.shape[0])


def first_fit(lm: np.ndarray, size: tuple[int, int]) -> tuple[float, float, float]:
    """(yaw, pitch, depth) of OpenCV's fit alone, as pof made it before the refit."""
    import cv2

    from pof.stages import quality
    w, h = size
    f = float(max(w, h))
    cam = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    _ok, rvec, tvec = cv2.solvePnP(quality._MODEL_3D * [1, -1, 1], lm[quality._MODEL_IDX].astype(np.float64),
                                   cam, None, flags=cv2.SOLVEPNP_ITERATIVE)
    yaw, pitch = quality.yaw_pitch(cv2.Rodrigues(rvec)[0])
    return yaw, pitch, float(tvec[2, 0])


def nose_cue(lm: np.ndarray) -> float:
    le, re = lm[36:42].mean(0), lm[42:48].mean(0)
    return float((lm[30, 0] - (le[0] + re[0]) / 2) / max(np.linalg.norm(re - le), 1e-6))


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--lfw", type=Path, default=Path("/work/data/public/lfw_deepfunneled"))
    ap.add_argument("--step", type=int, default=5, help="every STEP-th photo (sorted by path)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    require([args.lfw], "LFW deep-funneled is needed (--lfw DIR; see bench/README.md)")
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import Pipeline
    from pof.stages.quality import head_pose

    files = sorted(args.lfw.glob("*/*.jpg"))[::args.step]
    pipe = Pipeline(attributes="off", runtime="openvino")
    rows = []
    for faces, size in pipeline_map(pipe, _landmarks, ((str(f),) for f in files), args.workers):
        for lm in faces:
            yaw0, pitch0, depth = first_fit(lm, size)
            pose = head_pose(lm, size)
            rows.append((yaw0, pitch0, depth, pose.yaw, pose.pitch, nose_cue(lm)))
    a = np.array(rows)
    fine, mirrored = a[a[:, 2] < 0], a[a[:, 2] > 0]
    line = np.polyfit(fine[:, 5], fine[:, 0], 1)

    def off(yaw, cue):
        return round(float(np.median(np.abs(np.polyval(line, cue) - yaw))), 1)

    result = {
        "photos": len(files), "faces": len(a), "first_fit_at_positive_depth": len(mirrored),
        "unchanged_elsewhere": bool(np.allclose(fine[:, 0].round(1), fine[:, 3]) and np.allclose(fine[:, 1].round(1), fine[:, 4])),
        "refitted_yaw_change_deg": {"median": round(float(np.median(np.abs(mirrored[:, 3] - mirrored[:, 0]))), 1),
                                    "max": round(float(np.abs(mirrored[:, 3] - mirrored[:, 0]).max()), 1)},
        "refitted_pitch_change_deg_median": round(float(np.median(np.abs(mirrored[:, 4] - mirrored[:, 1]))), 1),
        "nose_cue_line_deg": [round(float(v), 1) for v in line],
        "median_deg_from_nose_cue": {"fine_faces": off(fine[:, 0], fine[:, 5]),
                                     "mirrored_before": off(mirrored[:, 0], mirrored[:, 5]),
                                     "mirrored_after": off(mirrored[:, 3], mirrored[:, 5])},
    }
    print(json.dumps(result, indent=1))
    save("head_pose", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
