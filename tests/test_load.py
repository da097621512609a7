"""The load stage on odd and bad inputs: every one is RGB uint8 or a clear ImageError."""
from __future__ import annotations

import io
import zlib
import struct

import numpy as np
import pytest
from PIL import Image

from pof.errors import ImageError
from pof.stages.load import decode_image, load_image

from .conftest import YALE, yale_rgb


def test_gif_without_extension_is_sniffed():
    img = load_image(YALE / "subject01.normal")
    assert img.format == "GIF"
    assert img.pixels.shape == (243, 320, 3) and img.pixels.dtype == np.uint8
    assert len(img.sha256) == 64


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "1"])
def test_modes_become_rgb(tmp_path, mode):
    src = yale_rgb("subject02.normal")
    if mode == "I;16":
        g = np.asarray(src.convert("L"), np.uint16) * 257
        img = Image.fromarray(g)   # 16-bit grayscale
        assert img.mode in ("I;16", "I")
    else:
        img = src.convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    path = tmp_path / f"x_{mode.replace(';', '')}"
    img.save(path, fmt)
    out = load_image(path)
    assert out.pixels.shape == (243, 320, 3) and out.pixels.dtype == np.uint8
    # the content survives: mean brightness near the original's
    assert abs(float(out.pixels.mean()) - float(np.asarray(src).mean())) < 40


def test_alpha_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    p = tmp_path / "clear.png"
    rgba.save(p)
    assert load_image(p).pixels.min() == 255


def test_exif_orientation_applied(tmp_path):
    src = yale_rgb("subject01.normal")
    exif = Image.Exif()
    exif[0x0112] = 6   # rotate 90 degrees clockwise on display
    p = tmp_path / "rot.jpg"
    src.save(p, "JPEG", exif=exif.tobytes())
    assert load_image(p).pixels.shape == (320, 243, 3)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    yale_rgb("subject01.normal").save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated|broken"):
        load_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture")
    with pytest.raises(ImageError, match="not an image"):
        load_image(p)


def test_empty_and_missing(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(p)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (its data is never decoded)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_pixel_bomb_refused_before_decoding():
    with pytest.raises(ImageError, match="over the limit"):
        decode_image(_png_header_only(50_000, 50_000), "bomb.png")


def test_max_pixels_is_a_setting():
    data = io.BytesIO()
    yale_rgb("subject01.normal").save(data, "PNG")
    with pytest.raises(ImageError, match="over the limit"):
        decode_image(data.getvalue(), "small-limit", max_pixels=1000)
