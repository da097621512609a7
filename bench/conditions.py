"""The synthetic probe conditions of the benchmark sets, drawn from a face's 68 landmarks:
a light-blue surgical mask (``masked``), a black band over the eyes (``eyeband``), the photo
shrunk until the face is 28 px wide (``small``), and blur then heavy JPEG (``jpeg_blur``); the
landmarks themselves (dlib HOG + 68 points, as face_recognition finds them), and a contact
sheet of probes for a visual check. Used by the core (Yale) and public (LFW) set builders.
"""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CONDITIONS = ["plain", "masked", "eyeband", "small", "jpeg_blur"]
MASK_RGB = (140, 190, 214)       # light blue surgical mask
MASK_EDGE_RGB = (100, 150, 178)
SMALL_FACE_PX = 28                # face width (jaw 0..16) after downscaling
BLUR_SIGMA = 2.0
JPEG_QUALITY = 8


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
