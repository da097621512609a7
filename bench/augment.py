"""Synthetic occlusions of enrolled faces, drawn from their 68 landmarks.

Officers at protests wear masks and sunglasses; a descriptor of a covered face is far from the
descriptor of the same face uncovered, but closer to one of that face under a similar cover.
``occlude`` draws such covers on a gallery photo so the gallery can hold, beside each real
face, descriptors of the face masked and in sunglasses. ``python -m bench occlusion`` measures what that
does: on LFW it makes things worse (BENCHMARKS.md), so pof does not do it; this stays here as
the experiment's code. The covers are drawn plainly (a cloth mask, dark lenses) and unlike
the benchmark's probe covers (bench/conditions.py: a blue surgical mask, a black band), so
the benchmark does not reward a copy of its own occluders.

Landmarks are iBUG 68 points (x, y) in image pixels.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("mask", "sunglasses")
MASK_RGB = (228, 228, 222)        # an off-white cloth mask
LENS_RGB = (22, 22, 26)           # dark lenses


def mask_outline(lm: np.ndarray) -> list[tuple[float, float]]:
    """From the nose bridge's lower third down round the jaw (points 2..14) and a little under
    the chin: a cloth mask pulled up over the nose."""
    nose_top, nose_tip = lm[27], lm[30]
    top_y = nose_top[1] + 0.6 * (nose_tip[1] - nose_top[1])
    face_h = float(np.linalg.norm(lm[8] - lm[27]))
    jaw = lm[2:15].astype(float).copy()
    centre_x = (lm[0, 0] + lm[16, 0]) / 2.0
    jaw[:, 0] += np.where(jaw[:, 0] < centre_x, -0.03, 0.03) * face_h
    jaw[:, 1] += 0.05 * face_h * np.clip((jaw[:, 1] - top_y) / max(lm[8, 1] - top_y, 1.0), 0, 1)
    return [(float(jaw[0, 0]), float(top_y))] + [tuple(map(float, p)) for p in jaw] + \
        [(float(jaw[-1, 0]), float(top_y))]


def lens_ellipses(lm: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Bounding boxes (x0, y0, x1, y1) of two dark lenses over the eyes (points 36..47)."""
    out = []
    for eye in (lm[36:42], lm[42:48]):
        c = eye.mean(axis=0)
        w = float(np.ptp(eye[:, 0]))
        rx, ry = 0.85 * w, 0.6 * w
        out.append((float(c[0] - rx), float(c[1] - ry), float(c[0] + rx), float(c[1] + ry)))
    return out


def occlude(pixels: np.ndarray, lm: np.ndarray, kind: str) -> np.ndarray:
    """A copy of ``pixels`` (uint8 RGB (H, W, 3)) with the face whose 68 landmarks are ``lm``
    covered: ``kind`` "mask" or "sunglasses"."""
    if kind not in KINDS:
        raise ValueError(f"unknown occlusion {kind!r}; choose one of {', '.join(KINDS)}")
    im = Image.fromarray(np.ascontiguousarray(pixels))
    d = ImageDraw.Draw(im)
    if kind == "mask":
        d.polygon(mask_outline(lm), fill=MASK_RGB)
    else:
        lenses = lens_ellipses(lm)
        for box in lenses:
            d.ellipse(box, fill=LENS_RGB)
        (_, ay0, ax1, ay1), (bx0, by0, _, by1) = lenses
        mid = ((ay0 + ay1) / 2 + (by0 + by1) / 2) / 2
        d.line([(ax1, mid), (bx0, mid)], fill=LENS_RGB, width=max(2, int((ay1 - ay0) / 8)))
    return np.asarray(im)
