"""Short clips in the web app: recognised by their bytes, measured before they are decoded,
searched one track at a time, never kept.

An upload whose first bytes name a video container (``pof.video.reader.sniff``) is a clip.
It is refused (413) over the settings ``max_video_bytes`` or ``max_video_seconds``, and
(415) when its container cannot be read or does not state its length and frame rate. Its
cost is known from the container before a frame is decoded: the frames the detector will
analyse (``pof.video.search.default_stride``) times a frame's pixels, charged to the user's
pixel rate (``WebState.run_clip``); one frame's pixels are held in the budget of pixels in
flight while it is searched. A clip that turns out longer than its container said is
stopped there.

The clip's bytes live in a private temporary file while it is read (PyAV reads files), which
is deleted as soon as the search ends; what is kept (``clip_probe``) is what the result page
shows: each track's decision and the small JPEGs of the faces its decision used.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from pof.web.errors import BadRequest, TooLarge, Unsupported

CROP_SIDE = 160           # px of the long side of a track's face JPEGs
SLACK_SECONDS = 2.0       # a clip may run this much past the length its container states


def limits() -> tuple[int, int]:
    """(longest clip in seconds, largest clip in bytes): the settings ``max_video_seconds``
    and ``max_video_bytes``."""
    from pof.settings import value
    return int(value("max_video_seconds")), int(value("max_video_bytes"))


def kind_of(data: bytes) -> str | None:
    """The video container the bytes start with, or None (then they may be a photo)."""
    from pof.video.reader import sniff
    return sniff(data[:16])


def check_size(data: bytes, name: str) -> None:
    """TooLarge when the clip is over ``max_video_bytes``."""
    most = limits()[1]
    if len(data) > most:
        raise TooLarge(f"{name}: clip of {len(data) / 2**20:.1f} MiB is over the limit of "
                       f"{most / 2**20:.0f} MiB; send a shorter clip")


def mmss(seconds: float) -> str:
    """A time in a clip as mm:ss (minutes go past 59)."""
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


@contextmanager
def clip_file(data: bytes) -> Iterator[Path]:
    """The clip's bytes in a private temporary file, deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix="pof-clip-") as tmp:
        path = Path(tmp) / "clip"
        path.write_bytes(data)
        yield path


@dataclass(frozen=True)
class Measure:
    """What the container says of a clip: length (s), frame rate, frame size (w, h) and the
    frames the detector will analyse."""

    duration: float
    fps: float
    size: tuple[int, int]
    analysed: int

    @property
    def frame_pixels(self) -> int:
        return self.size[0] * self.size[1]


def measure(path: Path, name: str, max_pixels: int) -> Measure:
    """Open the clip's container (no frame decoded) and check it against the limits:
    Unsupported if it cannot be read or does not state its length, frame rate or frame size,
    TooLarge over ``max_video_seconds`` or with frames over ``max_pixels`` (the app's limit
    for a photo)."""
    from pof.video.reader import Video, VideoError
    from pof.video.search import default_stride
    try:
        with Video(path) as video:
            duration, fps, size = video.duration, video.fps, video.size
    except VideoError as exc:
        raise Unsupported(str(exc).replace(str(path), name), title="Clip cannot be read") from None
    if duration <= 0 or fps <= 0 or not all(size):
        raise Unsupported(f"{name}: the clip's container does not state its length, frame rate "
                          "and frame size, so what it costs cannot be known before it is decoded; "
                          "send it as MP4 or WebM", title="Clip cannot be read")
    longest = limits()[0]
    if duration > longest:
        raise TooLarge(f"{name}: clip of {duration:.1f} s is over the limit of {longest} s; "
                       "cut it to the part with the faces")
    most = max_pixels
    if size[0] * size[1] > most:
        raise TooLarge(f"{name}: frames of {size[0]} x {size[1]} are over the limit of "
                       f"{most / 1e6:g} MP; send a smaller clip")
    frames = math.ceil(duration * fps)
    return Measure(duration, fps, size, max(1, math.ceil(frames / default_stride(fps))))


def search(state, path: Path, name: str, where: dict[str, str], m: Measure):
    """Search the clip (in a worker thread): its ``VideoResult`` named ``name``, each track
    with the JPEGs of the faces its decision used. Reading stops where the clip runs past the
    length its container stated (with an ``error`` saying so)."""
    from pof.video.reader import VideoError
    from pof.video.search import search_video
    searcher = state.searcher(where)          # before the models run: a bad filter fails fast
    most = math.ceil((m.duration + SLACK_SECONDS) * m.fps)

    def bounded(read: int, _estimate: int) -> None:
        if read > most:
            raise VideoError(f"{name}: the clip runs past the {m.duration:.1f} s its container "
                             f"states; it was read to {m.duration + SLACK_SECONDS:.0f} s only")
    result = search_video(str(path), state, searcher, state.config.candidates(),
                          progress=bounded, crop_side=CROP_SIDE)
    error = result.error.replace(str(path), name) if result.error else None
    return replace(result, video=name, error=error)


def clip_probe(owner: str, name: str, data: bytes, size: tuple[int, int], result,
               where: dict[str, str]):
    """The probe the result page reads: each track's JSON as ``results``, the clip's facts as
    ``video``, each track's face JPEGs as ``frames``; the clip's bytes are not kept."""
    from pof.web.state import Probe
    probe = Probe(owner, name, b"", hashlib.sha256(data).hexdigest(), size,
                  [t.to_json() for t in result.tracks], where=where,
                  video={"duration": result.duration, "fps": result.fps,
                         "frames_read": result.frames_read,
                         "frames_analysed": result.frames_analysed, "error": result.error},
                  frames={i: list(t.frames) for i, t in enumerate(result.tracks)})
    probe.crops = shown_crops(probe)
    return probe


def best_shot(probe, index: int) -> tuple[float, bytes, tuple] | None:
    """(time, face JPEG, box in it) of track ``index``'s best face (the frame its box and
    quality are from), or None if none was kept."""
    frames = probe.frames.get(index) or []
    if not frames:
        return None
    at = probe.results[index].get("best_frame_time")
    return min(frames, key=lambda f: abs(f[0] - at) if at is not None else 0)


def best_frame(probe, index: int) -> bytes | None:
    """The JPEG of track ``index``'s best face."""
    shot = best_shot(probe, index)
    return shot[1] if shot else None


@dataclass
class TrackPhoto:
    """A track of a clip as a case keeps it (``pof.casework.cases.SearchedPhoto``): its best
    face's JPEG as the photo, its one face the track's result with the box in that JPEG."""

    name: str
    sha256: str
    results: list
    officer: set
    data: bytes = b""
    pixels: int = 0


def track_photo(probe, index: int) -> tuple[TrackPhoto, bytes]:
    """(what a case keeps of track ``index`` of a clip's probe, its JPEG); BadRequest if no
    frame of it was kept."""
    from pof.casework.unknown import track_photo_name
    shot = best_shot(probe, index)
    if shot is None:
        raise BadRequest(f"no frame of track {index + 1} was kept")
    _, jpeg, box = shot
    track = probe.results[index]
    photo = TrackPhoto(track_photo_name(probe.name, track["start"], track["end"]), probe.sha256,
                       [dict(track, box=list(box))], {0} if index in probe.officer else set())
    return photo, jpeg


def frames_seen(probe, index: int) -> list[dict]:
    """What the track's frame strip showed: each frame's time and the SHA-256 of its JPEG."""
    return [{"time": t, "sha256": hashlib.sha256(jpeg).hexdigest()}
            for t, jpeg, _ in probe.frames.get(index, [])]


def shown_crops(probe) -> dict[int, bytes]:
    """{track index: its best face JPEG} for every track that may be shown unblurred."""
    from pof.web.imaging import visible
    out = {}
    for i, r in enumerate(probe.results):
        jpeg = best_frame(probe, i)
        if jpeg is not None and visible(r, i, probe.officer):
            out[i] = jpeg
    return out


def blurred(jpeg: bytes) -> bytes:
    """A face JPEG blurred all over (a bystander), as the app blurs faces in photos."""
    import numpy as np

    from pof.redact import obscure
    from pof.runtime.jpeg import decode_jpeg, encode_jpeg
    px = np.array(decode_jpeg(jpeg))
    h, w = px.shape[:2]
    obscure(px, (0, 0, w, h), "blur", 1.5)
    return encode_jpeg(px)


def no_clip(probe, what: str) -> None:
    """BadRequest for what a clip's probe cannot do (only photos can)."""
    if probe.video is not None:
        raise BadRequest(f"{probe.name}: {what} takes a photo; this search was a clip")
