"""What the app shows of a photo: bystanders blurred, faces boxed and numbered, no metadata.

A face stays visible only when it is a candidate above the threshold (decision "match") or a
reviewer marked it as an officer; every other face is blurred (pof.redact) before the photo
leaves the server. Output is JPEG without EXIF, at most ``MAX_SIDE`` px on its long side.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from ..redact import obscure, region

MAX_SIDE = 1600
MARGIN = 0.25
COLOURS = {"match": (20, 140, 60), "no_match": (90, 90, 90), "quality_too_low": (200, 120, 0)}


def visible(result: dict, index: int, officer: set[int] | list[int]) -> bool:
    """True if face ``index`` may be shown unblurred."""
    return result.get("decision") == "match" or index in set(officer)


def encode_jpeg(pixels: np.ndarray, quality: int = 88) -> bytes:
    """RGB uint8 -> JPEG bytes, no metadata."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes written by encode_jpeg -> RGB uint8."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def blurred(pixels: np.ndarray, results: list[dict], officer: set[int] | list[int]) -> np.ndarray:
    """A copy of the photo with every face that may not be shown blurred."""
    out = pixels.copy()
    for i, r in enumerate(results):
        if not visible(r, i, officer):
            obscure(out, region(tuple(r["box"]), MARGIN, out.shape), "blur", 1.5)
    return out


def shown(pixels: np.ndarray, results: list[dict], officer: set[int] | list[int]) -> bytes:
    """The photo as the app shows it: bystanders blurred, every face boxed with its number."""
    out = blurred(pixels, results, officer)
    scale = min(1.0, MAX_SIDE / max(out.shape[:2]))
    if scale < 1.0:
        out = cv2.resize(out, (int(out.shape[1] * scale), int(out.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    thick = max(2, int(round(max(out.shape[:2]) / 400)))
    for i, r in enumerate(results):
        x, y, w, h = (int(round(v * scale)) for v in r["box"])
        colour = COLOURS.get(r.get("decision", ""), (90, 90, 90))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick)
        label = str(i + 1)
        size = max(0.6, w / 90)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, size, thick)
        top = max(0, y - th - 2 * thick)
        cv2.rectangle(out, (x, top), (x + tw + 2 * thick, top + th + 2 * thick), colour, -1)
        cv2.putText(out, label, (x + thick, top + th + thick // 2), cv2.FONT_HERSHEY_SIMPLEX, size,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return encode_jpeg(out)


def face_crop(pixels: np.ndarray, results: list[dict], officer: set[int] | list[int], index: int,
              margin: float = 0.3) -> bytes:
    """A JPEG of face ``index`` (0-based; only for a face that is ``visible``), its box widened
    by ``margin``, cut from the blurred photo so a bystander next to it stays blurred."""
    x0, y0, x1, y1 = region(tuple(results[index]["box"]), margin, pixels.shape)
    return encode_jpeg(np.ascontiguousarray(blurred(pixels, results, officer)[y0:y1, x0:x1]))
