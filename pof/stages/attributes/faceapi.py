"""face-api's age-gender and expression networks, in ONNX Runtime: perceived age group,
perceived gender, Smiling and Frowning.

The networks are Vincent Mühler's face-api.js models as shipped in the npm package
``@vladmandic/face-api`` 1.7.15 (MIT), converted once by ``tools/convert_faceapi_attributes.py``
into one ONNX file (about 3 MB; both networks read the same 112 x 112 input). The input is cut
as face-api cuts it: the box of the 68 landmarks grown by 20%, padded to a square with black,
resized to 112 x 112.

Age: the network regresses an age in years. It is turned into a score per age group as the
chance that the perceived age falls in the group if the estimate has a normal error of
AGE_SIGMA years (about the network's reported mean error), so neighbouring groups share the
score near a boundary. Gender: the softmax probability of "male". Smiling: "happy";
Frowning: "sad" + "angry" + "disgusted".
"""
from __future__ import annotations

from math import erf, sqrt

import cv2
import numpy as np

from pof.runtime.sessions import OnnxModel
from pof.runtime.weights import MODELS

MODEL = MODELS / "faceapi" / "faceapi_attributes.onnx"
# SHA-256 of MODEL as tools/convert_faceapi_attributes.py writes it; checked on load.
MODEL_SHA256 = "798a5d26e39d64c1a6ffe2de537edf702d3bbc2df7a61be713bc54c5b291a99c"
VERSION = f"face-api-1.7.15-age-gender-expression/sha256-{MODEL_SHA256[:12]}"
SIZE = 112
BOX_PADDING = 0.2                     # face-api's minBoxPadding: the landmark box grows by 20%
AGE_SIGMA = 6.0                       # years
AGE_GROUPS = (("Baby", 0.0, 3.0), ("Child", 3.0, 13.0), ("Youth", 13.0, 30.0),
              ("Middle Aged", 30.0, 60.0), ("Senior", 60.0, 200.0))


def face_input(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The network input (112, 112, 3) uint8 of one crop with its 68 points, cut as face-api
    does (landmark box + 20%, centred on a black square)."""
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    w, h = (x1 - x0) * (1 + BOX_PADDING), (y1 - y0) * (1 + BOX_PADDING)
    x0, y0 = x0 - (x1 - x0) * BOX_PADDING / 2, y0 - (y1 - y0) * BOX_PADDING / 2
    side = max(w, h, 1.0)
    s = SIZE / side
    ox, oy = (side - w) / 2, (side - h) / 2
    m = np.array([[s, 0, s * (ox - x0)], [0, s, s * (oy - y0)]], np.float64)
    out = cv2.warpAffine(crop, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a, b = int(round(s * ox)), int(round(s * (ox + w)))
    c, d = int(round(s * oy)), int(round(s * (oy + h)))
    out[:, :a] = 0
    out[:, b:] = 0
    out[:c] = 0
    out[d:] = 0
    return out


def age_groups(age: float) -> dict[str, float]:
    """Score per age group for an estimated age (years)."""
    cdf = lambda v: 0.5 * (1 + erf((v - age) / (AGE_SIGMA * sqrt(2))))  # noqa: E731
    raw = {name: cdf(hi) - cdf(lo) for name, lo, hi in AGE_GROUPS}
    raw["Baby"] += cdf(0.0)                       # ages below 0 belong to the youngest group
    return raw


class FaceApiEstimator(OnnxModel):
    """Perceived age group and gender, Smiling, Frowning; all faces of a batch in one run.

    device: "cpu" or "cuda"; threads: ONNX Runtime intra-op threads (1: pof parallelises over
    images).
    """

    name = "face-api"
    version = VERSION

    MODEL, MODEL_SHA256, CONVERTER = MODEL, MODEL_SHA256, "tools/convert_faceapi_attributes.py"

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(age (N,), gender (N, 2) male/female, expression (N, 7)) of inputs (N, 112, 112, 3)."""
        x = np.ascontiguousarray(np.asarray(inputs).transpose(0, 3, 1, 2), dtype=np.float32)
        age, gender, expr = self.session.run(["age", "gender", "expression"], {"face": x})
        return age[:, 0], gender, expr

    def estimate(self, views: list, demographics: bool = True) -> list[dict[str, float]]:
        if not views:
            return []
        age, gender, expr = self.run(np.stack([face_input(v.crop, v.points) for v in views]))
        out = []
        for a, g, e in zip(age, gender, expr):
            s = {"Smiling": float(e[1]), "Frowning": float(e[2] + e[3] + e[5])}
            if demographics:
                s.update(age_groups(float(a)))
                s["Male"] = float(g[0])
            out.append(s)
        return out
