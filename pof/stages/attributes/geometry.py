"""Attributes measured from the 68 landmarks (iBUG numbering), in crop pixels.

- Eyes Open: the eye aspect ratio (Soukupová and Čech 2016), mean of both eyes:
  EAR = (|p38 - p42| + |p39 - p41|) / (2 |p37 - p40|) (1-based iBUG points; 0-based below).
  Open eyes give about 0.25-0.35, closed ones under 0.15.
- Mouth Closed / Slightly Open / Wide Open: the inner-lip gap (mean distance of the three
  pairs of inner-lip points) over the mouth width (outer corners). Closed under about 0.05,
  wide open over about 0.35. The three scores sum to 1.

Scores are logistic in the measure around the named thresholds; the widths say how soft the
boundary is. dlib's fit of nearly closed eyes and lips is itself noisy, which the widths allow
for.
"""
from __future__ import annotations

import numpy as np

VERSION = "landmarks-1"
EAR_OPEN = 0.18          # eye aspect ratio at which Eyes Open = 0.5
EAR_WIDTH = 0.025
GAP_CLOSED = 0.06        # inner-lip gap / mouth width at which Mouth Closed = 0.5
GAP_CLOSED_WIDTH = 0.015
GAP_WIDE = 0.35          # ... at which Mouth Wide Open = 0.5
GAP_WIDE_WIDTH = 0.05


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def eye_aspect_ratio(points: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes from 68 points (N.B. independent of scale)."""
    def ear(e: np.ndarray) -> float:
        v = np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])
        return float(v / (2.0 * max(np.linalg.norm(e[0] - e[3]), 1e-6)))
    return (ear(points[36:42]) + ear(points[42:48])) / 2.0


def mouth_gap(points: np.ndarray) -> float:
    """Inner-lip gap over mouth width from 68 points."""
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    return float(gap / max(np.linalg.norm(points[54] - points[48]), 1e-6))


def mouth_scores(gap: float) -> dict[str, float]:
    closed = float(sigmoid((GAP_CLOSED - gap) / GAP_CLOSED_WIDTH))
    wide = float(sigmoid((gap - GAP_WIDE) / GAP_WIDE_WIDTH))
    slight = max(0.0, 1.0 - closed - wide)
    total = closed + slight + wide
    return {"Mouth Closed": closed / total, "Mouth Slightly Open": slight / total,
            "Mouth Wide Open": wide / total}


class MeasuredEstimator:
    """Base of the attribute estimators that measure and load no model (landmarks, pixels,
    regions): ``device`` and ``threads`` are accepted, as every estimator takes them, and not
    needed."""

    def __init__(self, device: str = "cpu", threads: int = 1) -> None:
        self.device = device


class LandmarkEstimator(MeasuredEstimator):
    """Eyes Open and the three mouth states from 68 landmarks (no model)."""

    name = "landmarks"
    version = VERSION

    def estimate(self, views: list, demographics: bool = True) -> list[dict[str, float]]:
        out = []
        for v in views:
            s = {"Eyes Open": float(sigmoid((eye_aspect_ratio(v.points) - EAR_OPEN) / EAR_WIDTH))}
            s.update(mouth_scores(mouth_gap(v.points)))
            out.append(s)
        return out
