"""Hair, baldness, facial hair and forehead, measured in regions of the colour crop placed by
the 68 landmarks, each compared with the same face's own skin.

The reference is the face's own skin just under the eyes (two boxes below the lower lids,
where hair, beards and fringes rarely reach). A pixel is "skin-like" when its CIELAB colour is
within SKIN_Z robust spreads (interquartile ranges, with floors) of the reference's median;
lightness counts half as much as the colour axes, since shading changes lightness more than
hue. No fixed skin colour is ever used, and no skin colour is ever reported (docs/attributes.md).

- Bald: the share of skin-like pixels in the crown box (0.85 to 1.2 eye-distances above the
  brow peaks, between the outer brow points). A bare scalp matches the face's skin; hair does
  not. A very high forehead (receding hairline) and a skin-coloured background above a short
  head also read as bald.
- Black / Brown / Blond / Gray Hair: the hairline is found by walking up the strip between
  the brow peaks until three rows in a row are mostly not skin-like; the hair colour is the
  median CIELAB colour of the non-skin pixels in the quarter eye-distance above it. Dark (L* <
  HAIR_DARK) is black, mid lightness is brown, light hair is blond if its chroma is at least
  HAIR_CHROMA and gray (white, silver) if not. Lighting, hair dye, highlights and a dark hat
  all move these figures; no hairline (bald, or the strip runs off the crop) gives no scores.
- Mustache: chroma loss of the upper lip (between nose base and lip) against the reference:
  hair over skin is less saturated than skin, whatever the hair's or the skin's colour.
- No Beard: 1 - beard, the same chroma loss on the chin below the lower lip.
- Fully Visible / Partially Visible / Obstructed Forehead: the share of skin-like pixels on
  the forehead (0.1 to 0.6 eye-distances above the brow peaks); hair, a fringe, a hat or a hand
  all make it drop. The three scores sum to 1.

Every measure here compares colours, so none is given for a photo that is not in colour (the
crop's chroma under pixels.CHROMA_COLOUR): grayscale faces get no score, never a guess. A head
turned more than MAX_YAW degrees gets none either (the boxes then miss their regions).
Thresholds were set on the first half (by name) of the LFW set in bench/attributes/ and are
checked on the other half (bench/attributes.py --set lfw).
"""
from __future__ import annotations

import cv2
import numpy as np

from pof.stages.attributes.geometry import MeasuredEstimator, sigmoid
from pof.stages.attributes.pixels import CHROMA_COLOUR, face_chroma

VERSION = "regions-1"
SKIN_Z = 3.0              # robust distances from the reference beyond which a pixel is not skin
SPREAD_FLOOR = (6.0, 2.0, 2.0)   # floors on the reference's IQR of L*, a*, b*
BALD_SKIN = 0.6           # crown's skin-like share at which Bald = 0.5 (most of it skin)
HAIR_DARK = 22.0          # hair L* under which hair is black
HAIR_LIGHT = 40.0         # hair L* over which hair is blond or gray
HAIR_CHROMA = 18.0        # light hair's chroma (C*ab) at or over which it is blond
MUSTACHE_DC = 5.5         # upper lip's chroma loss against the reference at which Mustache = 0.5
BEARD_DC = 5.0            # chin's chroma loss at which No Beard = 0.5
FOREHEAD_FULL = 0.9       # forehead's skin-like share over which it is fully visible
FOREHEAD_COVERED = 0.75   # ... under which it is obstructed
MAX_YAW = 45.0           # pof.stages.quality yaw (degrees) beyond which nothing is scored

NAMES = ("Bald", "Black Hair", "Brown Hair", "Blond Hair", "Gray Hair", "Mustache", "No Beard",
         "Fully Visible Forehead", "Partially Visible Forehead", "Obstructed Forehead")


def _box(a: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Pixels of a box (x0, y0)-(x1, y1), clipped to the image, as rows of channels."""
    h, w = a.shape[:2]
    xa, xb = int(np.clip(round(min(x0, x1)), 0, w - 1)), int(np.clip(round(max(x0, x1)), 1, w))
    ya, yb = int(np.clip(round(min(y0, y1)), 0, h - 1)), int(np.clip(round(max(y0, y1)), 1, h))
    return a[ya:max(yb, ya + 1), xa:max(xb, xa + 1)].reshape(-1, a.shape[2])


class _Skin:
    """The face's own skin (under the eyes) and a robust distance of any pixel to it."""

    def __init__(self, ref: np.ndarray) -> None:
        self.median = np.median(ref, 0)
        iqr = np.percentile(ref, 75, 0) - np.percentile(ref, 25, 0)
        self.spread = np.maximum(iqr, SPREAD_FLOOR) * (2.0, 1.0, 1.0)   # L* counts half

    def distance(self, px: np.ndarray) -> np.ndarray:
        return np.sqrt((((px - self.median) / self.spread) ** 2).sum(-1))

    def like(self, px: np.ndarray) -> np.ndarray:
        return self.distance(px) < SKIN_Z

    def chroma(self) -> float:
        return float(np.hypot(self.median[1], self.median[2]))


def _chroma_loss(skin: _Skin, px: np.ndarray) -> float:
    """How much less saturated (C*ab) a region's median colour is than the reference."""
    m = np.median(px, 0)
    return skin.chroma() - float(np.hypot(m[1], m[2]))


def _hair_colour(lab: np.ndarray, skin: _Skin, p: np.ndarray, brow: float,
                 iod: float) -> tuple[float, float] | None:
    """(L*, C*ab) of the hair just above the hairline in the strip between the brow peaks,
    or None when no hairline is found below the top of the crop."""
    x0, x1 = round(float(p[19, 0])), round(float(p[24, 0]))
    if x1 - x0 < 4:
        return None
    run = 0
    for y in range(int(brow - 0.1 * iod), -1, -1):
        run = run + 1 if skin.like(lab[y, x0:x1]).mean() < 0.5 else 0
        if run == 3:
            line = y + 2
            break
    else:
        return None
    band = lab[max(0, int(line - 0.25 * iod)):line, x0:x1].reshape(-1, 3)
    if len(band) < 10:
        return None
    hair = band[~skin.like(band)]
    m = np.median(hair if len(hair) >= 10 else band, 0)
    return float(m[0]), float(np.hypot(m[1], m[2]))


def features(crop: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Raw measures of one crop (uint8 RGB, 280 x 200) with its 68 points (crop pixels, x, y).
    Hair colour measures are NaN where no hairline was found."""
    lab = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)   # L* 0-100
    iod = float(np.linalg.norm(p[42:48].mean(0) - p[36:42].mean(0)))
    brow = float(min(p[19, 1], p[24, 1]))                 # the brow peaks (y grows downward)
    lid = float(max(p[41, 1], p[46, 1]))                  # the lower lids
    skin = _Skin(np.vstack([_box(lab, p[36, 0], lid + 0.15 * iod, p[39, 0], lid + 0.45 * iod),
                            _box(lab, p[42, 0], lid + 0.15 * iod, p[45, 0], lid + 0.45 * iod)]))
    crown = _box(lab, p[18, 0], brow - 1.2 * iod, p[25, 0], brow - 0.85 * iod)
    forehead = _box(lab, p[19, 0], brow - 0.6 * iod, p[24, 0], brow - 0.1 * iod)
    lip = _box(lab, p[49, 0], 0.7 * p[33, 1] + 0.3 * p[51, 1], p[53, 0], 0.2 * p[33, 1] + 0.8 * p[51, 1])
    chin_h = p[8, 1] - p[57, 1]
    chin = _box(lab, p[58, 0], p[57, 1] + 0.25 * chin_h, p[56, 0], p[8, 1] - 0.15 * chin_h)
    hair = _hair_colour(lab, skin, p, brow, iod)
    return {"crown_skin": float(skin.like(crown).mean()),
            "forehead_skin": float(skin.like(forehead).mean()),
            "lip_chroma_loss": _chroma_loss(skin, lip), "chin_chroma_loss": _chroma_loss(skin, chin),
            "hair_L": hair[0] if hair else np.nan, "hair_C": hair[1] if hair else np.nan,
            "chroma": face_chroma(crop, p)}


def scores(f: dict[str, float], yaw: float = 0.0) -> dict[str, float]:
    """0-1 scores from ``features``; {} for a grayscale photo or a turned head, and no hair
    colour where no hairline was found."""
    if f["chroma"] < CHROMA_COLOUR or abs(yaw) > MAX_YAW:
        return {}
    s = {"Bald": float(sigmoid((f["crown_skin"] - BALD_SKIN) / 0.08)),
         "Mustache": float(sigmoid((f["lip_chroma_loss"] - MUSTACHE_DC) / 1.5)),
         "No Beard": float(sigmoid((BEARD_DC - f["chin_chroma_loss"]) / 1.5))}
    full = float(sigmoid((f["forehead_skin"] - FOREHEAD_FULL) / 0.03))
    covered = float(sigmoid((FOREHEAD_COVERED - f["forehead_skin"]) / 0.05))
    partial = max(0.0, 1.0 - full - covered)
    total = full + partial + covered
    s.update({"Fully Visible Forehead": full / total, "Partially Visible Forehead": partial / total,
              "Obstructed Forehead": covered / total})
    if np.isfinite(f["hair_L"]):
        dark = float(sigmoid((HAIR_DARK - f["hair_L"]) / 3.0))
        light = float(sigmoid((f["hair_L"] - HAIR_LIGHT) / 3.0))
        vivid = float(sigmoid((f["hair_C"] - HAIR_CHROMA) / 2.0))
        s.update({"Black Hair": dark, "Brown Hair": max(0.0, 1.0 - dark - light),
                  "Blond Hair": light * vivid, "Gray Hair": light * (1.0 - vivid)})
    return s


class RegionEstimator(MeasuredEstimator):
    """Hair, baldness, facial hair and forehead from landmark-placed regions (no model)."""

    name = "regions"
    version = VERSION

    def estimate(self, views: list, demographics: bool = True) -> list[dict[str, float]]:
        out = []
        for v in views:
            # nothing is scored on a grayscale photo or a turned head: skip the measuring too
            if abs(v.yaw) > MAX_YAW or face_chroma(v.crop, v.points) < CHROMA_COLOUR:
                out.append({})
            else:
                out.append(scores(features(v.crop, v.points), v.yaw))
        return out
