"""JPEG in and out of memory, without metadata: how the web app and the casework store the
photos people upload (re-encoded, so no EXIF or GPS survives) and how they read them back."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_jpeg(pixels: np.ndarray, quality: int = 88) -> bytes:
    """RGB uint8 -> JPEG bytes, no metadata."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes written by encode_jpeg -> RGB uint8."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def decode_jpeg_for(data: bytes, side: int) -> tuple[np.ndarray, float]:
    """JPEG bytes -> (RGB uint8 at least ``side`` px on its long side where the photo is that
    large, its scale to the stored photo). The JPEG decoder downscales as it decodes, so a
    large photo shown small costs a fraction of its full decode."""
    img = Image.open(io.BytesIO(data))
    full = img.size
    img.draft("RGB", (max(1, full[0] * side // max(full)), max(1, full[1] * side // max(full))))
    px = np.asarray(img.convert("RGB"))
    return px, px.shape[1] / full[0]
