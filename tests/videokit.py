"""Small test clips made from the real photos (Yale faces, demo gallery), written with PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).parent / "data" / "yale"


def photo(name: str) -> np.ndarray:
    """A Yale photo (tests/data/yale) or any image path as RGB pixels."""
    p = Path(name) if "/" in str(name) else DATA / name
    return np.asarray(Image.open(p).convert("RGB"))


def frame(size: tuple[int, int], background: int, face: np.ndarray | None = None,
          x: int = 0, y: int = 0, scale: float = 1.0) -> np.ndarray:
    """A (H, W, 3) frame of one grey level with ``face`` pasted at (x, y), scaled."""
    w, h = size
    out = np.full((h, w, 3), background, np.uint8)
    if face is None:
        return out
    if scale != 1.0:
        face = np.asarray(Image.fromarray(face).resize(
            (max(1, round(face.shape[1] * scale)), max(1, round(face.shape[0] * scale)))))
    fh, fw = face.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + fw, w), min(y + fh, h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def write_clip(path: Path, frames, fps: int = 10, codec: str = "libx264", size=(480, 270),
               fmt: str | None = None, metadata: dict | None = None,
               sine_hz: float | None = None) -> Path:
    """Encode frames (an iterable of RGB arrays of ``size``) into ``path`` (container
    ``fmt``, or from the file's suffix), with container ``metadata`` and, if ``sine_hz``, a
    sine of that pitch (AAC, mono) as long as the frames."""
    import av
    frames = list(frames)
    with av.open(str(path), "w", format=fmt) as out:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        audio = None
        if sine_hz:
            audio = out.add_stream("aac", rate=44100)
            audio.layout = "mono"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            total = int(44100 * len(frames) / fps)
            pcm = (0.3 * np.sin(2 * np.pi * sine_hz * np.arange(total) / 44100)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = av.AudioFrame.from_ndarray(pcm[None, start:start + 1024], format="flt",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 44100, start, Fraction(1, 44100)
                for packet in audio.encode(chunk):
                    out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)
    return path


def pan(face: np.ndarray, n: int, size=(480, 270), background: int = 90, dx: int = 3,
        scale: float = 0.9, zoom: float = 0.0):
    """``n`` frames of ``face`` moving right by ``dx`` px a frame while zooming by ``zoom`` a frame."""
    for i in range(n):
        s = scale + zoom * i
        yield frame(size, background, face, 40 + dx * i, 20, s)


def empty(n: int, size=(480, 270), background: int = 90):
    for _ in range(n):
        yield frame(size, background)


def portrait_phone_clip(path: Path, face: np.ndarray, n: int = 15, fps: int = 10) -> Path:
    """An MP4 as a phone writes a portrait clip: frames stored on their side (the upright
    270 x 480 picture turned 90 degrees counterclockwise), with a track matrix saying to
    turn them clockwise for display."""
    import struct
    upright = (frame((270, 480), 90, face, 20, 100, 0.7) for _ in range(n))
    write_clip(path, (np.ascontiguousarray(np.rot90(f, 1)) for f in upright), fps=fps,
               size=(480, 270))
    data = bytearray(path.read_bytes())
    matrix = data.index(b"tkhd") + 4 + 40      # version 0 track header: the matrix follows 40 bytes
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path
