"""Attributes measured from the crop's pixels, in regions placed by the 68 landmarks.

Each measure is a plain statistic; the score is logistic around a threshold (constants below,
set by looking at the Yale glasses/noglasses and left/right/centre-light photos of subjects
01-05, and checked on the whole labelled set in bench/attributes.py).

- Blurry: pof's blur measure (1 - Laplacian variance / 150, see pof.stages.quality), as is.
- Color Photo: mean chroma (max - min of R, G, B) over the face; grayscale photos give 0,
  colour ones 40 or more. A sepia photo counts as colour.
- Harsh Lighting: side asymmetry |L_left - L_right| / (L_left + L_right) of the two cheeks
  (light from one side leaves the other in shadow).
- Soft Lighting: sides balanced (low asymmetry). It cannot tell diffuse light from a hard
  frontal flash, which also lights both sides: see its validation figure. Neither lighting
  score is given for a head turned more than MAX_YAW degrees (the pose, not the light, then
  makes the cheeks differ).
- Eyeglasses: a horizontal bar across the nose bridge between the eyes (see _bridge_bar).
- No Eyewear: 1 - Eyeglasses. (Sunglasses are not estimated: the darkness of the eye regions
  against the cheeks did not separate dark lenses from shaded eye sockets.)
- Teeth Not Visible: 1 - (share of bright pixels between the inner lips, when the lips are
  apart).
"""
from __future__ import annotations

import cv2
import numpy as np

from pof.stages.attributes.geometry import MeasuredEstimator, mouth_gap, sigmoid

VERSION = "pixels-1"
CHROMA_COLOUR = 10.0           # mean chroma at which Color Photo = 0.5
ASYM_HARSH = 0.25              # cheek asymmetry at which Harsh Lighting = 0.5
ASYM_SOFT = 0.15               # cheek asymmetry at which Soft Lighting = 0.5
GLASSES_BAR = 1.6              # bridge bar strength (see _bridge_bar) at which Eyeglasses = 0.5
TEETH_BRIGHT = 0.2             # share of bright inner-mouth pixels at which teeth show
MAX_YAW = 25.0                 # degrees of head turn beyond which lighting is not scored


def _box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    h, w = img.shape[:2]
    a, b = int(np.clip(min(x0, x1), 0, w - 1)), int(np.clip(max(x0, x1), 1, w))
    c, d = int(np.clip(min(y0, y1), 0, h - 1)), int(np.clip(max(y0, y1), 1, h))
    return img[c:max(d, c + 1), a:max(b, a + 1)]


def _bridge_bar(light: np.ndarray, p: np.ndarray, iod: float) -> float:
    """How strongly one row of the band between the eyes (inner corners, from 0.3 eye-distance
    above the eye line to 0.2 below) is a horizontal edge: the strongest row mean of the
    vertical gradient over the band's mean horizontal gradient. A glasses bridge is such a
    row; skin, brows and the nose are not."""
    cy = (p[36:42, 1].mean() + p[42:48, 1].mean()) / 2
    m = 3                                            # margin so the filters see real pixels
    band = _box(light, p[39, 0] + 0.05 * iod - m, cy - 0.3 * iod - m, p[42, 0] - 0.05 * iod + m,
                cy + 0.2 * iod + m)
    band = cv2.GaussianBlur(band, (3, 3), 0)
    gy = np.abs(cv2.Sobel(band, cv2.CV_32F, 0, 1, ksize=3))[m:-m, m:-m]
    gx = np.abs(cv2.Sobel(band, cv2.CV_32F, 1, 0, ksize=3))[m:-m, m:-m]
    if gy.size == 0:
        return 0.0
    return float(gy.mean(1).max() / (gx.mean() + 1.0))


def face_chroma(crop: np.ndarray, p: np.ndarray) -> float:
    """Mean chroma (max - min of R, G, B) over the face box of the 68 points: 0 grayscale."""
    face = _box(crop, p[0, 0], p[19, 1], p[16, 0], p[8, 1])[::2, ::2]
    return float(np.ptp(face, axis=2).mean())


def features(crop: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Raw measures of one crop (uint8 RGB) with its 68 points (crop pixels)."""
    light = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    chroma = face_chroma(crop, p)
    left = _box(light, p[2, 0], p[29, 1], p[31, 0], p[33, 1]).mean()
    right = _box(light, p[35, 0], p[29, 1], p[14, 0], p[33, 1]).mean()
    asym = float(abs(left - right) / max(left + right, 1.0))
    iod = float(np.linalg.norm(p[42:48].mean(0) - p[36:42].mean(0)))
    glasses = _bridge_bar(light, p, iod)
    inner = np.zeros(light.shape, np.uint8)
    cv2.fillPoly(inner, [np.round(p[60:68]).astype(np.int32)], 1)
    lips = np.zeros(light.shape, np.uint8)
    cv2.fillPoly(lips, [np.round(p[48:60]).astype(np.int32)], 1)
    lips &= 1 - inner
    teeth = 0.0
    if inner.sum() >= 4 and lips.sum() >= 4:
        teeth = float((light[inner > 0] > np.median(light[lips > 0]) * 1.3).mean())
    return {"chroma": chroma, "asym": asym, "glasses": glasses,
            "teeth": teeth, "gap": mouth_gap(p)}


def scores(f: dict[str, float], blur: float, yaw: float = 0.0) -> dict[str, float]:
    """0-1 scores from the raw measures of ``features``. On a head turned more than MAX_YAW
    the cheeks' asymmetry says more about the pose than the light: no lighting scores."""
    harsh = sigmoid((f["asym"] - ASYM_HARSH) / 0.04) if abs(yaw) <= MAX_YAW else np.nan
    soft = sigmoid((ASYM_SOFT - f["asym"]) / 0.03) if abs(yaw) <= MAX_YAW else np.nan
    glasses = float(sigmoid((f["glasses"] - GLASSES_BAR) / 0.15))
    teeth = sigmoid((f["teeth"] - TEETH_BRIGHT) / 0.07) * sigmoid((f["gap"] - 0.03) / 0.01)
    return {"Blurry": float(blur), "Color Photo": float(sigmoid((f["chroma"] - CHROMA_COLOUR) / 2.0)),
            "Harsh Lighting": float(harsh), "Soft Lighting": float(soft),
            "Eyeglasses": glasses, "No Eyewear": 1.0 - glasses,
            "Teeth Not Visible": float(1.0 - teeth)}


class PixelEstimator(MeasuredEstimator):
    """Blur, colour, lighting, glasses and teeth measured from the crop (no model)."""

    name = "pixels"
    version = VERSION

    def estimate(self, views: list, demographics: bool = True) -> list[dict[str, float]]:
        return [scores(features(v.crop, v.points), v.blur, v.yaw) for v in views]
