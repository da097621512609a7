"""The load stage: read an image file safely into a uint8 RGB array.

The format is sniffed from the bytes (never the file name); EXIF orientation is applied;
grayscale, palette, CMYK, 16-bit and alpha images become 8-bit RGB (alpha over white); an
image over ``max_pixels`` (default: the setting of that name, pof.settings) is refused before
it is decoded.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pof.errors import ImageError
from pof.settings import value

MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class LoadedImage:
    """An image read from a file.

    pixels: uint8 array of shape (H, W, 3), RGB, EXIF orientation applied.
    sha256: hex SHA-256 of the file's bytes.
    format: the format Pillow sniffed ("JPEG", "PNG", "GIF", ...).
    """

    pixels: np.ndarray
    sha256: str
    format: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.pixels.shape[1], self.pixels.shape[0]


def read_bytes(path: str | Path) -> bytes:
    """Read a file's bytes; raise ImageError if it is missing, a folder or too large."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such file (check the path)")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ImageError(f"{p}: file larger than {MAX_FILE_BYTES // 2**20} MiB, not read")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p}: cannot be read ({exc.strerror or exc})") from None


def load_image(path: str | Path, max_pixels: int | None = None) -> LoadedImage:
    """Read ``path`` as an RGB image. Raises ImageError with the reason on any failure."""
    return decode_image(read_bytes(path), str(path), max_pixels)


def decode_image(data: bytes, name: str = "image", max_pixels: int | None = None) -> LoadedImage:
    """Decode image bytes (any format Pillow reads) into a LoadedImage; ``name`` is for messages.
    ``max_pixels`` None: the setting ``max_pixels`` (environment POF_MAX_PIXELS, else pof's)."""
    if max_pixels is None:
        max_pixels = value("max_pixels")
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (format not recognised from its bytes)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: pixel count over the limit (decompression bomb refused)") from None
    except Exception as exc:  # Pillow raises many types on hostile input
        raise ImageError(f"{name}: not a readable image ({exc})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageError(
            f"{name}: {w} x {h} pixels is over the limit of {max_pixels:,}; "
            "downscale it or raise max_pixels")
    if w < 8 or h < 8:
        raise ImageError(f"{name}: {w} x {h} pixels is too small to hold a face")
    fmt = img.format or "unknown"
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = to_rgb(img)
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: pixel count over the limit (decompression bomb refused)") from None
    except Exception as exc:
        raise ImageError(f"{name}: broken or truncated image data ({exc})") from None
    return LoadedImage(pixels=rgb, sha256=hashlib.sha256(data).hexdigest(), format=fmt)


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to a contiguous uint8 RGB array (alpha composited over white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
