"""Reading videos: recognising a container from its bytes and streaming its frames.

Frames are decoded with PyAV (FFmpeg's libraries, shipped in its wheels). On clips made from
the test photos (bench/video_speed.py, 2 shared CPU cores, H.264, every frame to RGB) PyAV
decoded 1500-1900 frames a second at 640 x 360 against OpenCV VideoCapture's 1900-2200, and
540-860 at 1280 x 720 against 460-610: the same order, and 50 to 100 times what the face
pipeline analyses, so decoding does not set the speed. PyAV was chosen for what OpenCV
hides: each frame's own time stamp (variable frame rate phone clips), the container's
rotation (portrait phone clips), the stream's duration (a truncated file is recognised),
and FFmpeg's reason for a broken file where VideoCapture only stops returning frames; it
also scales a frame down inside FFmpeg, which the cut detector does for every frame.

Only one decoded frame is held at a time: memory does not grow with the clip's length.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pof.errors import ImageError


class VideoError(ImageError):
    """A video could not be read (broken, truncated, unsupported codec)."""


# ISO base media "brands" of still images (HEIC, AVIF), not videos
STILL_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif"}


def sniff(head: bytes) -> str | None:
    """The container named by a file's first bytes ("mp4" for MP4 and QuickTime, "matroska"
    for MKV and WebM, "avi"), or None when they name no video container."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        if head[4:8] == b"ftyp" and head[8:12] in STILL_BRANDS:
            return None      # HEIF and AVIF photos share the box layout: left to the image reader
        return "mp4"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def video_kind(path: str | Path) -> str | None:
    """``sniff`` of a file's first bytes; None for an unreadable or missing file (it is then
    reported by the image reader with its reason)."""
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16))
    except OSError:
        return None


@dataclass
class Frame:
    """One decoded frame: its number in the stream, its time in seconds and a small grey copy
    for the cut detector; ``rgb()`` converts it to full RGB pixels (only the frames the
    detector looks at are converted)."""

    number: int
    time: float
    small: np.ndarray
    _frame: object

    def rgb(self) -> np.ndarray:
        """uint8 (H, W, 3) RGB pixels, turned upright as a player shows them: phones store
        portrait clips on their side with a rotation in the container (FFmpeg's display
        matrix, counterclockwise degrees)."""
        pixels = self._frame.to_ndarray(format="rgb24")
        turns = round(getattr(self._frame, "rotation", 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(pixels, turns) if turns else pixels)


class Video:
    """A video file opened for streaming. ``fps``, ``duration`` (seconds, 0 when the
    container does not say), ``frames_estimate`` and ``size`` (width, height of a frame as
    stored) are known before decoding."""

    SMALL = (64, 36)

    def __init__(self, path: str | Path) -> None:
        import av
        self.path = str(path)
        try:
            self._container = av.open(self.path)
        except Exception as exc:  # noqa: BLE001 - FFmpeg raises many kinds on broken files
            raise VideoError(f"{path}: not a readable video ({_reason(exc)}: broken, truncated "
                             "or an unsupported format)") from None
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise VideoError(f"{path}: the file holds no video stream")
        self._stream = streams[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        dur = 0.0
        if self._stream.duration and self._stream.time_base:
            dur = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:
            dur = self._container.duration / 1_000_000
        self.duration = dur
        self.frames_estimate = int(self._stream.frames or round(dur * self.fps))
        ctx = self._stream.codec_context
        self.size = (int(ctx.width or 0), int(ctx.height or 0))    # as stored (before rotation)

    def frames(self) -> Iterator[Frame]:
        """Every frame in order. Raises VideoError when decoding fails part-way (the frames
        before it were yielded) or when no frame decodes at all."""
        number, last = 0, 0.0
        try:
            for frame in self._container.decode(self._stream):
                t = float(frame.time) if frame.time is not None else (
                    number / self.fps if self.fps else 0.0)
                small = frame.reformat(width=self.SMALL[0], height=self.SMALL[1],
                                       format="gray").to_ndarray()
                last = t
                yield Frame(number, t, small, frame)
                number += 1
        except Exception as exc:  # noqa: BLE001
            raise VideoError(f"{self.path}: broken video data after {number} frames "
                             f"({_reason(exc)})") from None
        if number == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (broken or truncated video)")
        end = self.duration - max(3 / self.fps if self.fps else 0.0, 0.5)
        if self.duration and last < end:
            raise VideoError(f"{self.path}: truncated: the frames stop at {last:.1f} s of the "
                             f"{self.duration:.1f} s the file announces")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(exc: Exception) -> str:
    """FFmpeg's reason in words: without its error number and the file name (the caller
    names the file already)."""
    text = str(exc).strip() or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text).split(": '", 1)[0].strip()
    return text[:1].lower() + text[1:]
