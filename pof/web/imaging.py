"""What the app shows of a photo: bystanders blurred, faces boxed and numbered, no metadata.

A face stays visible only when it is a candidate above the threshold (decision "match") or a
reviewer marked it as an officer; every other face is blurred (a Gaussian as pof.redact's) before
the photo leaves the server. Output is JPEG without EXIF, at most ``MAX_SIDE`` px on its long side
(a face crop ``MAX_CROP``).
"""
from __future__ import annotations


import cv2
import numpy as np

from pof.redact import region
from pof.runtime.jpeg import decode_jpeg, decode_jpeg_for, encode_jpeg  # noqa: F401  (used by the routes)

MAX_SIDE = 1600
MAX_CROP = 640
MARGIN = 0.25
COLOURS = {"match": (20, 140, 60), "no_match": (90, 90, 90), "quality_too_low": (200, 120, 0)}


def visible(result: dict, index: int, officer: set[int] | list[int]) -> bool:
    """True if face ``index`` may be shown unblurred."""
    return result.get("decision") == "match" or index in set(officer)


def _scaled_view(pixels: np.ndarray, rect: tuple[int, int, int, int], scale: float) -> np.ndarray:
    """A copy of ``rect`` (x0, y0, x1, y1) of ``pixels``, resized by ``scale`` (<= 1)."""
    x0, y0, x1, y1 = rect
    part = pixels[y0:y1, x0:x1]
    if scale < 1.0:
        size = (max(1, int(round((x1 - x0) * scale))), max(1, int(round((y1 - y0) * scale))))
        return cv2.resize(part, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(part).copy()


def _blur_bystanders(out: np.ndarray, results: list[dict], officer: set[int] | list[int],
                     origin: tuple[int, int], scale: float, shape: tuple[int, ...]) -> None:
    """Blur, in ``out`` (a part of the photo starting at ``origin``, resized by ``scale``),
    every face that may not be shown; the blur's strength is that of the whole face region
    (as ``pof.redact.obscure`` with strength 1.5), even where only part of it is in ``out``."""
    ox, oy = origin
    for i, r in enumerate(results):
        if visible(r, i, officer):
            continue
        x0, y0, x1, y1 = region(tuple(r["box"]), MARGIN, shape)
        sigma = max(2.0, 0.15 * (x1 - x0) * scale * 1.5)
        # the region in ``out``, widened by the blur's reach so that its edge blurs as a whole
        reach = int(3 * sigma)
        a0 = max(0, int(np.floor((x0 - ox) * scale)))
        b0 = max(0, int(np.floor((y0 - oy) * scale)))
        a1 = min(out.shape[1], int(np.ceil((x1 - ox) * scale)))
        b1 = min(out.shape[0], int(np.ceil((y1 - oy) * scale)))
        if a1 <= a0 or b1 <= b0:
            continue
        c0, d0 = max(0, a0 - reach), max(0, b0 - reach)
        c1, d1 = min(out.shape[1], a1 + reach), min(out.shape[0], b1 + reach)
        soft = _gaussian(out[d0:d1, c0:c1], sigma)
        out[b0:b1, a0:a1] = soft[b0 - d0:b1 - d0, a0 - c0:a1 - c0]


def _gaussian(patch: np.ndarray, sigma: float) -> np.ndarray:
    """``patch`` blurred twice by a Gaussian of ``sigma``; a wide blur is made at a lower
    resolution (the result is as smooth, at a fraction of the cost)."""
    f = max(1.0, sigma / 4.0)
    if f == 1.0:
        return cv2.GaussianBlur(cv2.GaussianBlur(patch, (0, 0), sigma), (0, 0), sigma)
    h, w = patch.shape[:2]
    small = cv2.resize(patch, (max(1, int(round(w / f))), max(1, int(round(h / f)))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(cv2.GaussianBlur(small, (0, 0), sigma / f), (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def shown(pixels: np.ndarray, results: list[dict], officer: set[int] | list[int]) -> bytes:
    """The photo as the app shows it: at most ``MAX_SIDE`` px on its long side, bystanders
    blurred, every face boxed with its number. The photo is downscaled before the blur, so a
    large photo costs little more than a small one."""
    h, w = pixels.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    out = _scaled_view(pixels, (0, 0, w, h), scale)
    _blur_bystanders(out, results, officer, (0, 0), scale, pixels.shape)
    thick = max(2, int(round(max(out.shape[:2]) / 400)))
    for i, r in enumerate(results):
        x, y, bw, bh = (int(round(v * scale)) for v in r["box"])
        colour = COLOURS.get(r.get("decision", ""), (90, 90, 90))
        cv2.rectangle(out, (x, y), (x + bw, y + bh), colour, thick)
        label = str(i + 1)
        size = max(0.6, bw / 90)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, size, thick)
        top = max(0, y - th - 2 * thick)
        cv2.rectangle(out, (x, top), (x + tw + 2 * thick, top + th + 2 * thick), colour, -1)
        cv2.putText(out, label, (x + thick, top + th + thick // 2), cv2.FONT_HERSHEY_SIMPLEX, size,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return encode_jpeg(out)


def face_crop(pixels: np.ndarray, results: list[dict], officer: set[int] | list[int], index: int,
              margin: float = 0.3) -> bytes:
    """A JPEG of face ``index`` (0-based; only for a face that is ``visible``), its box widened
    by ``margin``, at most ``MAX_CROP`` px on its long side; a bystander next to it stays
    blurred."""
    rect = region(tuple(results[index]["box"]), margin, pixels.shape)
    x0, y0, x1, y1 = rect
    scale = min(1.0, MAX_CROP / max(1, x1 - x0, y1 - y0))
    out = _scaled_view(pixels, rect, scale)
    _blur_bystanders(out, results, officer, (x0, y0), scale, pixels.shape)
    return encode_jpeg(out)


def render(pixels: np.ndarray, results: list[dict], officer: set[int] | list[int]) -> tuple[bytes, dict[int, bytes]]:
    """What a result page shows of a photo: (``shown``, {index: ``face_crop``} for every face
    that may be shown)."""
    crops = {i: face_crop(pixels, results, officer, i)
             for i, r in enumerate(results) if visible(r, i, officer)}
    return shown(pixels, results, officer), crops


CONTEXT_SIDE = 960
CONTEXT_COLOUR = (230, 150, 0)


def in_context(pixels: np.ndarray, boxes: list, index: int, show_face: bool,
               max_side: int = CONTEXT_SIDE) -> bytes:
    """Where a face was seen: the photo at most ``max_side`` px on its long side, face
    ``index`` of ``boxes`` (x, y, w, h in the photo's pixels) boxed, every other face blurred,
    and face ``index`` itself blurred too unless ``show_face``. The photo is downscaled before
    the blur, so the cost hardly depends on its size."""
    h, w = pixels.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    out = _scaled_view(pixels, (0, 0, w, h), scale)
    faces = [{"box": b, "decision": "match" if i == index and show_face else ""} for i, b in enumerate(boxes)]
    _blur_bystanders(out, faces, (), (0, 0), scale, pixels.shape)
    x, y, bw, bh = (int(round(v * scale)) for v in boxes[index])
    thick = max(2, int(round(max(out.shape[:2]) / 300)))
    pad = 2 * thick
    cv2.rectangle(out, (max(0, x - pad), max(0, y - pad)),
                  (min(out.shape[1] - 1, x + bw + pad), min(out.shape[0] - 1, y + bh + pad)),
                  CONTEXT_COLOUR, thick)
    return encode_jpeg(out)
