"""Build the core benchmark set from the Yale Face Database.

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

Run: python -m bench make_core_set [--yale DIR] [--out DIR]
"""
from __future__ import annotations

import hashlib
import itertools
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np

from bench.conditions import (
    BLUR_SIGMA,
    CONDITIONS,
    JPEG_QUALITY,
    MASK_RGB,
    SMALL_FACE_PX,
    contact_sheet,
    find_landmarks,
    load_rgb,
    save_condition,
    save_png,
)
from bench.harness import PEER_HINT, WORK, need, parser, require, write_csv

DEFAULT_YALE = Path("/work/shared/testdata/yalefaces")
DEFAULT_OUT = WORK / "core"

GALLERY_CONDS = ["normal", "centerlight", "noglasses", "happy"]
ALL_CONDS = ["centerlight", "glasses", "happy", "leftlight", "noglasses", "normal",
             "rightlight", "sad", "sleepy", "surprised", "wink"]
ENROLLED = [f"subject{i:02d}" for i in range(1, 11)]
NOT_ENROLLED = [f"subject{i:02d}" for i in range(11, 16)]
SUBJECTS = ENROLLED + NOT_ENROLLED
PAIR_SEED = 2


def load_images(yale: Path, out: Path, fr) -> tuple[dict, dict, dict, dict, list]:
    """Every Yale image (byte-identical pixel copies dropped: Yale has 9 such pairs, e.g.
    subject08.glasses == subject08.normal, subject04.sad == subject04.normal, which would leak
    gallery images into the probes and give trivial verification pairs), written to all/, and
    its landmarks. Returns (images, landmarks, conditions available per subject, dropped
    copies, missing files)."""
    avail = {s: [c for c in ALL_CONDS if (yale / f"{s}.{c}").is_file()] for s in SUBJECTS}
    missing = [f"{s}.{c}" for s in SUBJECTS for c in ALL_CONDS if c not in avail[s]]
    if missing:
        print(f"note: missing from the Yale folder: {', '.join(missing)}")
    imgs, lms, dup_of = {}, {}, {}
    for s in SUBJECTS:
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
    return imgs, lms, avail, dup_of, missing


def fill_landmarks(lms: dict, avail: dict) -> dict:
    """Where dlib found no face, the per-subject median of the landmarks found on that
    subject's other images (in place); returns where each image's landmarks came from."""
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
    return lm_source


def write_gallery(imgs: dict, avail: dict, out: Path) -> int:
    n_gal = 0
    for s in ENROLLED:
        for c in GALLERY_CONDS:
            if c in avail[s]:
                key = f"{s}.{c}"
                save_png(imgs[key], out / "gallery" / s / f"{key}.png")
                n_gal += 1
    return n_gal


def write_probes(imgs: dict, lms: dict, lm_source: dict, avail: dict, out: Path) -> list[dict]:
    """Every probe in every condition, probes.csv and landmarks.csv; returns probes.csv's rows."""
    rows, lm_rows = [], []
    for s in SUBJECTS:
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
    write_csv(out / "probes.csv", rows, ["path", "person", "role", "condition"])
    write_csv(out / "landmarks.csv", lm_rows, ["image", "landmarks"])
    return rows


def write_pairs(avail: dict, out: Path) -> tuple[list, list]:
    """Verification pairs over the plain images (all/) of all 15 subjects: every genuine pair
    and as many random impostor pairs (seed PAIR_SEED)."""
    files = {s: [f"all/{s}/{s}.{c}.png" for c in avail[s]] for s in SUBJECTS}
    genuine = [(a, b) for s in SUBJECTS for a, b in itertools.combinations(files[s], 2)]
    rng = random.Random(PAIR_SEED)
    impostor, seen = [], set()
    while len(impostor) < len(genuine):
        s1, s2 = rng.sample(SUBJECTS, 2)
        a, b = rng.choice(files[s1]), rng.choice(files[s2])
        k = tuple(sorted((a, b)))
        if k in seen:
            continue
        seen.add(k)
        impostor.append((a, b))
    write_csv(out / "pairs.csv", [{"file_x": a, "file_y": b, "Decision": "Yes"} for a, b in genuine]
              + [{"file_x": a, "file_y": b, "Decision": "No"} for a, b in impostor],
              ["file_x", "file_y", "Decision"])
    return genuine, impostor


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--yale", type=Path, default=DEFAULT_YALE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    yale, out = args.yale, args.out
    require([yale], "the Yale Face Database is needed (--yale DIR)")
    need("face_recognition", PEER_HINT)        # its landmarks place the masks and eye bands

    import face_recognition as fr  # the peer; also our landmark source

    for sub in ("gallery", "all", "probes", "dataset", "dataset_all"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    imgs, lms, avail, dup_of, missing = load_images(yale, out, fr)
    lm_source = fill_landmarks(lms, avail)
    n_gal = write_gallery(imgs, avail, out)
    rows = write_probes(imgs, lms, lm_source, avail, out)
    genuine, impostor = write_pairs(avail, out)

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
