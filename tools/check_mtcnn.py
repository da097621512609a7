"""Measure the MTCNN detector's detection rate on the Yale faces under degradations, and its speed.

Each Yale image (320 x 243 grayscale, one frontal face) is first run as is; that detection
(box and landmarks) places the degradations and is the truth the degraded versions are
scored against:

* ``plain``: the image as is (found if anything is detected; a miss here is a miss for
  every condition, since nothing places the degradations);
* ``mask-grey`` / ``mask-black``: a grey / black rectangle from a third of the way up the nose
  (tip to eye line) to below the chin, across the whole face (a surgical mask, a censor block);
* ``eye-band``: a black band over both eyes (0.7 x the eye distance high, 2.4 x wide);
* ``small-28px``: the whole image downscaled so that the face box is 28 px wide;
* ``rotated-30``: rotated 30 degrees in plane about the face centre (canvas enlarged);
* ``jpeg8-blur1.5``: Gaussian blur (sigma 1.5 px), then JPEG at quality 8.

A degraded version counts as found if some detection's centre lies within a quarter of the
expected face width of the expected centre and its width is 0.6-1.6 x the expected width;
other detections are counted as extra (false positives). Timing: milliseconds per Yale image,
and per 1024 x 768 image (a 3 x 3 grid of Yale images, nine faces). Project venv only::

    python tools/check_mtcnn.py [--yale /work/shared/testdata/yalefaces] [--min-face-size 20]
        [--thresholds PNET RNET ONET (default: the detector's)] [--no-rescue] [--no-timing]
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
from pof.stages.detect.mtcnn import MTCNNDetector  # noqa: E402

DEFAULT_YALE = Path("/work/shared/testdata/yalefaces")
SMALL_FACE_PX = 28
ROTATION_DEG = 30
JPEG_QUALITY = 8
BLUR_SIGMA = 1.5


def load_yale(folder: Path) -> dict[str, np.ndarray]:
    """Every ``subjectNN.*`` file of ``folder`` as uint8 RGB."""
    return {p.name: np.asarray(Image.open(p).convert("RGB"))
            for p in sorted(folder.glob("subject*")) if p.is_file()}


def _face_geometry(det) -> dict[str, float]:
    """Named positions of a plain-image detection (its box and landmarks)."""
    x, y, w, h = det.box
    lm = det.landmarks5
    return {"x1": x, "y1": y, "x2": x + w, "y2": y + h, "w": w, "cx": x + w / 2, "cy": y + h / 2,
            "eye_y": float(lm[:2, 1].mean()), "nose_y": float(lm[2, 1]),
            "eye_l": float(lm[0, 0]), "eye_r": float(lm[1, 0])}


def _fill(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, value: int) -> np.ndarray:
    out = img.copy()
    h, w = img.shape[:2]
    out[max(int(y1), 0):min(int(np.ceil(y2)), h), max(int(x1), 0):min(int(np.ceil(x2)), w)] = value
    return out


def mask_lower(img: np.ndarray, g: dict, value: int) -> tuple[np.ndarray, tuple]:
    """Cover from a third of the way up the nose (eyes to nose tip) to below the chin."""
    top = g["nose_y"] - 0.35 * (g["nose_y"] - g["eye_y"])
    pad = 0.05 * g["w"]
    out = _fill(img, g["x1"] - pad, top, g["x2"] + pad, g["y2"] + 2 * pad, value)
    return out, (g["cx"], g["cy"], g["w"])


def eye_band(img: np.ndarray, g: dict) -> tuple[np.ndarray, tuple]:
    d = g["eye_r"] - g["eye_l"]
    out = _fill(img, g["eye_l"] - 0.7 * d, g["eye_y"] - 0.35 * d,
                g["eye_r"] + 0.7 * d, g["eye_y"] + 0.35 * d, 0)
    return out, (g["cx"], g["cy"], g["w"])


def downscale(img: np.ndarray, g: dict) -> tuple[np.ndarray, tuple]:
    s = SMALL_FACE_PX / g["w"]
    out = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return out, (g["cx"] * s, g["cy"] * s, g["w"] * s)


def rotate(img: np.ndarray, g: dict) -> tuple[np.ndarray, tuple]:
    """Rotate about the face centre, on a canvas big enough to keep every corner."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((g["cx"], g["cy"]), ROTATION_DEG, 1.0)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float) @ m.T
    lo, hi = corners.min(0), corners.max(0)
    m[:, 2] -= lo
    size = tuple(int(np.ceil(v)) for v in hi - lo)
    out = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR)
    return out, (g["cx"] - lo[0], g["cy"] - lo[1], g["w"])


def jpeg_blur(img: np.ndarray, g: dict) -> tuple[np.ndarray, tuple]:
    blurred = cv2.GaussianBlur(img, (0, 0), BLUR_SIGMA)
    buf = io.BytesIO()
    Image.fromarray(blurred).save(buf, format="JPEG", quality=JPEG_QUALITY)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out, (g["cx"], g["cy"], g["w"])


CONDITIONS = {
    "mask-grey": lambda img, g: mask_lower(img, g, 128),
    "mask-black": lambda img, g: mask_lower(img, g, 0),
    "eye-band": eye_band,
    "small-28px": downscale,
    "rotated-30": rotate,
    "jpeg8-blur1.5": jpeg_blur,
}


def _match(dets, expected: tuple) -> tuple[bool, int]:
    """(is the expected face among ``dets``, number of other detections)."""
    cx, cy, w = expected
    hits = [d for d in dets
            if np.hypot(d.box[0] + d.box[2] / 2 - cx, d.box[1] + d.box[3] / 2 - cy) < 0.25 * w
            and 0.6 * w < d.box[2] < 1.6 * w]
    return bool(hits), len(dets) - min(len(hits), 1)


def measure(detector: MTCNNDetector, images: dict[str, np.ndarray]) -> dict[str, list]:
    """Per condition: [found, total, extra detections, names of misses]."""
    names = ["plain", *CONDITIONS]
    res = {c: [0, 0, 0, []] for c in names}
    for name, img in images.items():
        plain = detector.detect(img)
        for c in names:
            res[c][1] += 1
        if not plain:
            for c in names:
                res[c][3].append(name)
            continue
        res["plain"][0] += 1
        res["plain"][2] += len(plain) - 1
        g = _face_geometry(plain[0])
        for c, make in CONDITIONS.items():
            degraded, expected = make(img, g)
            found, extra = _match(detector.detect(degraded), expected)
            res[c][0] += found
            res[c][2] += extra
            if not found:
                res[c][3].append(name)
    return res


def timing(detector: MTCNNDetector, images: dict[str, np.ndarray]) -> tuple[float, float, int]:
    """(ms per Yale image, ms per 1024 x 768 image, faces found in it), after a warm-up."""
    imgs = list(images.values())
    detector.detect(imgs[0])
    t = time.perf_counter()
    for img in imgs:
        detector.detect(img)
    per_yale = (time.perf_counter() - t) * 1000 / len(imgs)
    tiles = [cv2.resize(im, (341, 256), interpolation=cv2.INTER_AREA) for im in imgs[:9]]
    grid = np.vstack([np.hstack(tiles[r * 3:r * 3 + 3]) for r in range(3)])
    grid = np.ascontiguousarray(cv2.resize(grid, (1024, 768)))
    detector.detect(grid)
    runs = 5
    t = time.perf_counter()
    for _ in range(runs):
        n_faces = len(detector.detect(grid))
    return per_yale, (time.perf_counter() - t) * 1000 / runs, n_faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yale", type=Path, default=DEFAULT_YALE)
    parser.add_argument("--min-face-size", type=float, default=20)
    parser.add_argument("--thresholds", type=float, nargs=3, default=None,
                        metavar=("PNET", "RNET", "ONET"))
    parser.add_argument("--no-rescue", action="store_true",
                        help="plain MTCNN cascade, as facenet-pytorch (no second look)")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    images = load_yale(args.yale)
    if not images:
        raise SystemExit(f"no subject* images in {args.yale}")
    opts = {"thresholds": args.thresholds} if args.thresholds else {}
    detector = MTCNNDetector(min_face_size=args.min_face_size, rescue=not args.no_rescue, **opts)
    print(f"{len(images)} Yale images, min_face_size={args.min_face_size}, "
          f"thresholds={detector.thresholds}, rescue={detector.rescue}")
    print(f"{'condition':<15} {'found':>9} {'rate':>7} {'extra':>6}  misses")
    for c, (found, total, extra, misses) in measure(detector, images).items():
        shown = ", ".join(misses[:4]) + (" ..." if len(misses) > 4 else "")
        print(f"{c:<15} {found:>4}/{total:<4} {100 * found / total:>6.1f}% {extra:>6}  {shown}")
    if not args.no_timing:
        per_yale, per_big, n = timing(detector, images)
        print(f"time: {per_yale:.1f} ms per 320x243 Yale image, "
              f"{per_big:.1f} ms per 1024x768 image ({n} of 9 faces found)")


if __name__ == "__main__":
    main()
