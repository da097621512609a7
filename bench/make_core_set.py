#!/usr/bin/env python
"""Build the core benchmark set (issue 2) from the Yale Face Database.

Data: The Yale Face Database (Belhumeur, Hespanha, Kriegman, 1997), 15 subjects x 11
conditions, grayscale GIF, files named ``subjectNN.condition`` (no extension).

Writes under ``bench/work/core/`` (ignored by git):

  gallery/subjectNN/*.png   subjects 01-10, images normal/centerlight/noglasses/happy (RGB PNG,
                            native 320x243)
  all/subjectNN/*.png       every distinct Yale image, RGB PNG (large-gallery speed test, verification)
  probes/COND/subjectNN/*   probes, COND in plain, masked, eyeband, small, jpeg_blur:
                            mated    = subjects 01-10, their other (non-gallery) images
                            nonmated = subjects 11-15, all their images
                            (byte-identical copies in Yale are dropped everywhere)
  probes.csv                path,person,role,condition (paths relative to bench/work/core)
  pairs.csv                 file_x,file_y,Decision: every genuine pair among the plain images
                            (all/) of all 15 subjects + as many random impostor pairs (seed 2)
  landmarks.csv             where each probe's 68 landmarks came from (dlib or fallback)
  set_info.json             counts, dropped identical copies, landmark fallbacks, settings
  probes_sheet.png          contact sheet: a few probes in every condition, for a visual check

Landmarks for the mask and the eye band come from ``face_recognition.face_landmarks`` (dlib HOG
+ dlib 68-point predictor from face_recognition_models) on the plain image. Where no face is
found there, the fallback is the per-point median of the 68 landmarks found on that subject's
other images (Yale photos of one subject are taken from a fixed camera, so this is close).

Run: python bench/make_core_set.py [--yale DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import itertools
import random
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DEFAULT_YALE = Path("/work/shared/testdata/yalefaces")
DEFAULT_OUT = HERE / "work" / "core"

GALLERY_CONDS = ["normal", "centerlight", "noglasses", "happy"]
ALL_CONDS = ["centerlight", "glasses", "happy", "leftlight", "noglasses", "normal",
             "rightlight", "sad", "sleepy", "surprised", "wink"]
ENROLLED = [f"subject{i:02d}" for i in range(1, 11)]
NOT_ENROLLED = [f"subject{i:02d}" for i in range(11, 16)]
CONDITIONS = ["plain", "masked", "eyeband", "small", "jpeg_blur"]

MASK_RGB = (140, 190, 214)       # light blue surgical mask
MASK_EDGE_RGB = (100, 150, 178)
SMALL_FACE_PX = 28                # face width (jaw 0..16) after downscaling
BLUR_SIGMA = 2.0
JPEG_QUALITY = 8
PAIR_SEED = 2


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def save_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")


def find_landmarks(fr, img: np.ndarray, rule: str = "largest"):
    """68 points (68x2, iBUG order) of the largest face found by dlib HOG (upsample 1), or with
    ``rule`` "center" of the one nearest the image centre (LFW); None if none is found.

    Uses the same detector and 68-point predictor that face_recognition.face_landmarks uses.
    """
    dets = fr.api.face_detector(img, 1)
    if len(dets) == 0:
        return None
    if rule == "center":
        from pof.stages.select import off_centre
        box = lambda r: (r.left(), r.top(), r.right() - r.left(), r.bottom() - r.top())  # noqa: E731
        rect = min(dets, key=lambda r: off_centre(box(r), img.shape[1], img.shape[0]))
    else:
        rect = max(dets, key=lambda r: r.width() * r.height())
    shape = fr.api.pose_predictor_68_point(img, rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def mask_polygon(lm: np.ndarray) -> list[tuple[float, float]]:
    """Lower-face mask: from just below the nose to below the chin, jaw to jaw."""
    jaw = lm[0:17]
    centre_x = (lm[0, 0] + lm[16, 0]) / 2.0
    face_h = np.linalg.norm(lm[8] - lm[27])           # chin to nose bridge top
    y_top = lm[33, 1] - 0.04 * face_h                  # just below the nose tip (at nose base)
    drop = 0.10 * face_h                               # below the chin
    spread = 0.04 * face_h                             # a little outside the jaw line
    poly = []
    # left edge starts at the jaw point nearest the mask top
    left = [p for p in jaw[0:8] if p[1] >= y_top]
    right = [p for p in jaw[9:17] if p[1] >= y_top]
    x_left = (left[0][0] if left else jaw[3, 0]) - spread
    x_right = (right[-1][0] if right else jaw[13, 0]) + spread
    poly.append((x_left, y_top))
    for p in list(left) + [jaw[8]] + list(right):
        x, y = p
        dx = -spread if x < centre_x else spread
        # push points below the mouth further down so the chin is covered
        t = max(0.0, (y - y_top) / max(1.0, jaw[8, 1] - y_top))
        poly.append((x + dx, y + drop * t))
    poly.append((x_right, y_top))
    return [(float(x), float(y)) for x, y in poly]


def apply_mask(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    poly = mask_polygon(lm)
    d.polygon(poly, fill=MASK_RGB, outline=MASK_EDGE_RGB)
    # three horizontal pleats, for a little realism
    ys = [p[1] for p in poly]
    xs = [p[0] for p in poly]
    y0, y1 = min(ys), max(ys)
    for k in (1, 2, 3):
        y = y0 + (y1 - y0) * k / 5.0
        d.line([(min(xs) + 6, y), (max(xs) - 6, y)], fill=MASK_EDGE_RGB, width=1)
    return np.asarray(im)


def apply_eyeband(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """A black band over both eyes, following the eye line's angle."""
    le, re = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    iod = np.linalg.norm(re - le)
    c = (le + re) / 2.0
    u = (re - le) / max(iod, 1e-6)
    v = np.array([-u[1], u[0]])
    half_w = 0.5 * iod + 0.55 * iod        # from outer eye corner plus margin
    half_h = 0.28 * iod
    corners = [c - u * half_w - v * half_h, c + u * half_w - v * half_h,
               c + u * half_w + v * half_h, c - u * half_w + v * half_h]
    im = Image.fromarray(img)
    ImageDraw.Draw(im).polygon([tuple(map(float, p)) for p in corners], fill=(0, 0, 0))
    return np.asarray(im)


def apply_small(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
    face_w = float(np.linalg.norm(lm[16] - lm[0]))
    s = SMALL_FACE_PX / max(face_w, 1.0)
    h, w = img.shape[:2]
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)


def save_jpeg_blur(img: np.ndarray, path: Path) -> None:
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=BLUR_SIGMA, sigmaY=BLUR_SIGMA)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(blurred).save(path, format="JPEG", quality=JPEG_QUALITY)


def save_condition(img: np.ndarray, lm: np.ndarray, cond: str, dst: Path) -> None:
    """Write ``img`` degraded by one synthetic condition (masked, eyeband, small, jpeg_blur),
    placed by its 68 landmarks ``lm``, to ``dst``."""
    if cond == "jpeg_blur":
        save_jpeg_blur(img, dst)
        return
    degrade = {"masked": apply_mask, "eyeband": apply_eyeband, "small": apply_small}[cond]
    save_png(degrade(img, lm), dst)


def contact_sheet(root: Path, rows: list[dict], out: Path, extra: list[str],
                  per_cond: int = 5, conditions: list[str] | None = None) -> None:
    """Rows of probes, one row per condition, the same images in every row.

    Shows ``per_cond`` random probes plus ``extra`` (the fallback-landmark ones).
    """
    conditions = conditions or CONDITIONS
    rng = random.Random(7)
    plain = [r for r in rows if r["condition"] == "plain"]
    names = [Path(r["path"]).name.rsplit(".", 1)[0] for r in plain]
    rest = [n for n in names if n not in extra]
    picks = sorted(rng.sample(rest, min(per_cond, len(rest)))) + [n for n in extra if n in names]
    cell_w, cell_h, label_w = 160, 122, 80
    sheet = Image.new("RGB", (label_w + cell_w * len(picks), 14 + cell_h * len(conditions)),
                      "white")
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for j, n in enumerate(picks):
        d.text((label_w + j * cell_w + 2, 1), n, fill="black", font=font)
    for i, cond in enumerate(conditions):
        d.text((2, 14 + i * cell_h + cell_h // 2), cond, fill="black", font=font)
        for j, n in enumerate(picks):
            r = next(r for r in rows if r["condition"] == cond
                     and Path(r["path"]).name.rsplit(".", 1)[0] == n)
            with Image.open(root / r["path"]) as im:
                im = im.convert("RGB")
                small = im.width < 100
                im = im.resize((cell_w - 4, cell_h - 4),
                               Image.NEAREST if small else Image.BILINEAR)
            sheet.paste(im, (label_w + j * cell_w + 2, 14 + i * cell_h + 2))
    sheet.save(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--yale", type=Path, default=DEFAULT_YALE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    import face_recognition as fr  # the peer; also our landmark source

    yale, out = args.yale, args.out
    if not yale.is_dir():
        print(f"error: Yale folder not found: {yale}", file=sys.stderr)
        return 2
    for sub in ("gallery", "all", "probes", "dataset", "dataset_all"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    subjects = ENROLLED + NOT_ENROLLED
    avail = {s: [c for c in ALL_CONDS if (yale / f"{s}.{c}").is_file()] for s in subjects}
    missing = [f"{s}.{c}" for s in subjects for c in ALL_CONDS if c not in avail[s]]
    if missing:
        print(f"note: missing from the Yale folder: {', '.join(missing)}")

    # 1. every image, its landmarks; byte-identical pixel copies are dropped (Yale has 9 such
    #    pairs, e.g. subject08.glasses == subject08.normal, subject04.sad == subject04.normal,
    #    which would leak gallery images into the probes and give trivial verification pairs)
    imgs, lms, dup_of = {}, {}, {}
    for s in subjects:
        seen = {}
        for c in GALLERY_CONDS + [c for c in ALL_CONDS if c not in GALLERY_CONDS]:
            if c not in avail[s]:
                continue
            key = f"{s}.{c}"
            img = load_rgb(yale / key)
            h = hashlib.sha256(img.tobytes()).hexdigest()
            if h in seen:
                dup_of[key] = seen[h]
                continue
            seen[h] = key
            imgs[key] = img
        avail[s] = [c for c in ALL_CONDS if f"{s}.{c}" in imgs]
        for c in avail[s]:
            key = f"{s}.{c}"
            save_png(imgs[key], out / "all" / s / f"{key}.png")
            lms[key] = find_landmarks(fr, imgs[key])
    if dup_of:
        print("dropped identical copies: "
              + ", ".join(f"{k} (= {v})" for k, v in sorted(dup_of.items())))

    # fallback: per-subject median of the landmarks found on that subject's other images
    lm_source = {}
    all_found = [v for v in lms.values() if v is not None]
    for key, v in list(lms.items()):
        if v is not None:
            lm_source[key] = "dlib"
            continue
        s = key.split(".")[0]
        same = [lms[f"{s}.{c}"] for c in avail[s]
                if f"{s}.{c}" != key and lms.get(f"{s}.{c}") is not None]
        pool = same or all_found
        lms[key] = np.median(np.stack(pool), axis=0)
        lm_source[key] = f"fallback_median_of_{len(pool)}_{'subject' if same else 'all'}_images"
    n_fb = sum(1 for v in lm_source.values() if v != "dlib")
    print(f"landmarks: {len(lm_source) - n_fb} found by dlib, {n_fb} geometric fallback "
          f"({', '.join(k for k, v in lm_source.items() if v != 'dlib') or 'none'})")

    # 2. gallery
    n_gal = 0
    for s in ENROLLED:
        for c in GALLERY_CONDS:
            if c in avail[s]:
                key = f"{s}.{c}"
                save_png(imgs[key], out / "gallery" / s / f"{key}.png")
                n_gal += 1

    # 3. probes
    rows, lm_rows = [], []
    for s in subjects:
        role = "mated" if s in ENROLLED else "nonmated"
        conds = [c for c in avail[s] if not (role == "mated" and c in GALLERY_CONDS)]
        for c in conds:
            key = f"{s}.{c}"
            img, lm = imgs[key], lms[key]
            lm_rows.append({"image": key, "landmarks": lm_source[key]})
            for cond in CONDITIONS:
                ext = "jpg" if cond == "jpeg_blur" else "png"
                rel = Path("probes") / cond / s / f"{key}.{ext}"
                dst = out / rel
                if cond == "plain":
                    save_png(img, dst)
                else:
                    save_condition(img, lm, cond, dst)
                rows.append({"path": rel.as_posix(), "person": s, "role": role,
                             "condition": cond})

    with open(out / "probes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "person", "role", "condition"])
        w.writeheader()
        w.writerows(rows)
    with open(out / "landmarks.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "landmarks"])
        w.writeheader()
        w.writerows(lm_rows)

    # 4. verification pairs over the plain images (all/) of all 15 subjects
    files = {s: [f"all/{s}/{s}.{c}.png" for c in avail[s]] for s in subjects}
    genuine = [(a, b) for s in subjects for a, b in itertools.combinations(files[s], 2)]
    rng = random.Random(PAIR_SEED)
    impostor, seen = [], set()
    while len(impostor) < len(genuine):
        s1, s2 = rng.sample(subjects, 2)
        a, b = rng.choice(files[s1]), rng.choice(files[s2])
        k = tuple(sorted((a, b)))
        if k in seen:
            continue
        seen.add(k)
        impostor.append((a, b))
    with open(out / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_x", "file_y", "Decision"])
        w.writerows([(a, b, "Yes") for a, b in genuine] + [(a, b, "No") for a, b in impostor])

    info = {"source": str(yale), "credit": "The Yale Face Database (Belhumeur, Hespanha, "
                                             "Kriegman 1997)",
            "missing": missing, "dropped_identical_copies": dup_of,
            "landmark_fallback": {k: v for k, v in lm_source.items() if v != "dlib"},
            "gallery_images": n_gal, "all_images": len(imgs), "probes": len(rows),
            "genuine_pairs": len(genuine), "impostor_pairs": len(impostor),
            "mask_rgb": MASK_RGB, "small_face_px": SMALL_FACE_PX, "blur_sigma": BLUR_SIGMA,
            "jpeg_quality": JPEG_QUALITY, "pair_seed": PAIR_SEED}
    (out / "set_info.json").write_text(json.dumps(info, indent=1))

    contact_sheet(out, rows, out / "probes_sheet.png",
                  extra=sorted(k for k, v in lm_source.items() if v != "dlib"))

    n_m = sum(1 for r in rows if r["role"] == "mated")
    print(f"gallery: {n_gal} images of {len(ENROLLED)} persons; all/: {len(imgs)} images")
    print(f"probes: {len(rows)} ({n_m} mated, {len(rows) - n_m} nonmated) in "
          f"{len(CONDITIONS)} conditions")
    print(f"pairs: {len(genuine)} genuine + {len(impostor)} impostor")
    print(f"written under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
