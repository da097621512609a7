"""Writing a video: a copy of a clip's frames, re-encoded, with its sound copied as it is.

The copy keeps the source's container where PyAV can write H.264 into it (MP4 and QuickTime,
Matroska and WebM as Matroska), and is MP4 otherwise. Frames are encoded with H.264 at the
source's frame rate, each at its own time stamp, so frame count and duration are kept. The
audio stream's packets are copied without decoding (remuxed). Nothing of the source's
metadata is copied (no creation time, location or device tags); frames are written upright,
so no rotation is needed either.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

CONTAINERS = {"mp4": (".mp4", "mp4"), "matroska": (".mkv", "matroska")}
FALLBACK = (".mp4", "mp4")
CODEC = "libx264"


def target(kind: str | None) -> tuple[str, str]:
    """(file suffix, PyAV format) of the copy of a video whose container is ``kind``."""
    return CONTAINERS.get(kind or "", FALLBACK)


class VideoWriter:
    """Encodes RGB frames into ``path``. ``rate``: frames a second (a Fraction keeps 30000/1001
    exact); ``audio``: an input audio stream to copy, or None."""

    def __init__(self, path: str | Path, fmt: str, size: tuple[int, int], rate, audio=None,
                 time_base=None) -> None:
        import av
        self.path = str(path)
        self._out = av.open(self.path, "w", format=fmt)
        rate = Fraction(rate).limit_denominator(100000) if rate else Fraction(25)
        self._video = self._out.add_stream(CODEC, rate=rate)
        self._video.width, self._video.height = size[0] - size[0] % 2, size[1] - size[1] % 2
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": "18", "preset": "veryfast"}
        self._time_base = time_base
        if time_base is not None:
            self._video.codec_context.time_base = time_base
        self._audio_in = audio
        self._audio = self._out.add_stream_from_template(audio) if audio is not None else None
        self.frames = 0

    def write(self, pixels: np.ndarray, pts: int | None = None) -> None:
        """Encode one (H, W, 3) RGB frame, at ``pts`` (in the time base given) when known."""
        import av
        w, h = self._video.width, self._video.height
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:h, :w]), format="rgb24")
        if pts is not None and self._time_base is not None:
            frame.pts, frame.time_base = pts, self._time_base
        else:
            frame.pts = self.frames
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def copy_audio(self, packets) -> None:
        """Mux the input audio packets (from ``demux`` of the source's audio stream)."""
        for packet in packets:
            if packet.dts is None:
                continue
            packet.stream = self._audio
            self._out.mux(packet)

    def close(self) -> None:
        for packet in self._video.encode():
            self._out.mux(packet)
        self._out.close()
