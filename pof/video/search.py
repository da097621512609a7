"""Searching a video: one calibrated decision per face track.

The best frames of a track (pof's quality score, at most ``KEEP``, spread over its time) are
one query, judged by the multi-probe rule calibrated for that many images
(``Searcher.search_same_person``, the rule of ``pof search --same-person``): the stated FPIR
holds per track, not per frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pof.errors import PofError
from pof.matching.results import TrackResult, VideoResult, box_of
from pof.video.reader import Video, VideoError
from pof.video.track import Tracker, histogram, is_cut, select

KEEP = 8                 # frames a track's query uses at most
ANALYSED_PER_SECOND = 8  # the default stride aims at this many detector frames a second
LINK_FMR = 0.05          # similarity (as a false-match rate) that continues an overlapping track
SAME_FMR = 1e-4          # strict: a face continues a distant track, or two tracks merge


def default_stride(fps: float) -> int:
    """Detector frames every how many frames: every 3rd at 25 fps, 4th at 30, each at 8 or less."""
    return max(1, round(fps / ANALYSED_PER_SECOND)) if fps > 0 else 1


def thresholds(descriptors) -> tuple[float, float]:
    """(link, same) similarity thresholds for the gallery's descriptor model, from pof's
    reference impostor pairs (pof.matching.verify)."""
    from pof.matching.calibrate import embedder_of
    from pof.matching.verify import Verifier
    emb = embedder_of(descriptors)
    return Verifier(LINK_FMR, emb).threshold, Verifier(SAME_FMR, emb).threshold


@dataclass
class Scan:
    """What reading a video gave: its tracks (``Tracker.finish``), frame rate, duration,
    frames read and analysed, and an ``error`` (None if it was read to the end)."""

    tracks: list = field(default_factory=list)
    fps: float = 0.0
    duration: float = 0.0
    read: int = 0
    analysed: int = 0
    error: str | None = None
    opened: bool = False          # the container opened (the tracks found so far are valid)


def scan_video(path: str, pipeline, gate, limits: tuple[float, float], stride: int = 0,
               progress: Callable[[int, int], None] | None = None, crop_side: int = 0,
               best_frame: bool = False, trail: bool = False) -> Scan:
    """Read a video and follow its faces: ``Scan``. ``gate``: ``Searcher.gate``; ``limits``:
    (link, same) similarities (``thresholds``); ``crop_side``, ``best_frame``, ``trail``: keep a
    JPEG of each pooled face, of each track's best frame, each track's boxes (``Tracker``). ``pipeline``: a ``pof.pipeline.Analyzer``; one whose ``batch_size`` is over 1 (the
    GPU engine) is given the frames to analyse that many at a time, the tracker then taking
    them in their order (a cut only ends tracks when the frames before it are in). A file that cannot be decoded, or breaks part-way, gives ``error`` (with the
    tracks found before the break)."""
    out = Scan()
    link, same = limits
    tracker = Tracker(KEEP, gate, link, same, crop_side, best_frame, trail)
    keep_pixels = bool(crop_side or best_frame)
    batch: list[tuple[bool, float, object]] = []     # (cut before it, time, pixels) to analyse
    size = max(1, int(getattr(pipeline, "batch_size", 1)))

    def analyse() -> None:
        """The frames waiting, analysed together, then given to the tracker in their order."""
        found = pipeline.analyze_batch([px for _, _, px in batch], with_crops=False)
        for (cut, time, pixels), faces in zip(batch, found, strict=True):
            if cut:
                tracker.cut()
            tracker.update(time, faces, pixels if keep_pixels else None)
        batch.clear()

    last_time = 0.0
    try:
        with Video(path) as video:
            out.opened = True
            out.fps = round(video.fps, 3)
            step = stride or default_stride(video.fps)
            before, last = None, None
            try:
                for frame in video.frames():
                    out.read += 1
                    last_time = frame.time
                    hist = histogram(frame.small)
                    cut = is_cut(before, hist)
                    before = hist
                    analysed = cut or last is None or frame.number - last >= step
                    if size > 1:            # a batched analyzer (the GPU engine)
                        if analysed:
                            last = frame.number
                            out.analysed += 1
                            batch.append((cut, frame.time, frame.rgb()))
                            if len(batch) >= size:
                                analyse()
                    else:
                        if cut:
                            tracker.cut()
                        if analysed:
                            last = frame.number
                            out.analysed += 1
                            pixels = frame.rgb()
                            faces = pipeline.analyze(pixels, with_crops=False)
                            tracker.update(frame.time, faces, pixels if keep_pixels else None)
                    if progress:
                        progress(out.read, video.frames_estimate)
            except VideoError as exc:
                out.error = str(exc)
            if batch:
                analyse()
            out.duration = round(max(video.duration, last_time), 3)
    except VideoError as exc:
        out.opened, out.error = False, str(exc)
        return out
    except PofError as exc:
        out.opened, out.error = False, f"{path}: {exc}"
        return out
    out.tracks = tracker.finish()
    if not out.tracks and out.error is None:
        out.error = f"{path}: no face found in {out.analysed} frames analysed of {out.read}"
    return out


def settings_gate():
    """The quality gates of ``Searcher.gate`` at the settings' values (min_interocular,
    max_blur), for following faces without a dataset: why a face is too poor, or None."""
    from pof.settings import value
    min_iod, max_blur = value("min_interocular"), value("max_blur")

    def gate(face) -> str | None:
        if face.interocular < min_iod:
            return "eyes too close"
        if face.blur > max_blur:
            return "too blurred"
        return None
    return gate


def default_limits() -> tuple[float, float]:
    """(link, same) similarities for the default descriptor model (``thresholds``)."""
    from pof.matching.verify import Verifier
    return Verifier(LINK_FMR).threshold, Verifier(SAME_FMR).threshold


def search_video(path: str, pipeline, searcher, top: int | None = None, stride: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 limits: tuple[float, float] | None = None, crop_side: int = 0) -> VideoResult:
    """One video searched (``to_json()``: its ``pof search --json`` object): its tracks, each
    with one decision. ``stride``: detector frames every how many frames (0:
    ``default_stride``); after a cut the next frame is always analysed.
    ``progress(frames_read, frames_estimate)`` is called as frames are read. A file that
    cannot be decoded, or breaks part-way, gives ``error`` (with the tracks found before the
    break). ``crop_side``: each track's ``frames`` hold (time, JPEG, the face's box in it) of
    the faces its decision used, at most that many px on their long side (0: none kept)."""
    scan = scan_video(path, pipeline, searcher.gate, limits or thresholds(searcher.gallery.descriptors),
                      stride, progress, crop_side)
    if not scan.opened:
        return VideoResult(path, 0.0, scan.fps, scan.read, scan.analysed, scan.error)
    tracks = tuple(track_result(t, searcher, top) for t in scan.tracks)
    return VideoResult(path, scan.duration, scan.fps, scan.read, scan.analysed, scan.error, tracks)


def track_result(track, searcher, top: int | None) -> TrackResult:
    """One track's entry of ``tracks``: the decision on its best frames."""
    chosen = select(track.pool, KEEP)
    best = max(chosen, key=lambda e: e[1])
    result = searcher.search_same_person([e[2] for e in chosen], top)
    face = best[2]
    return TrackResult(track=track.number, start=round(track.start, 3), end=round(track.end, 3),
                       frames_used=result.probes_used or 0, best_frame_time=round(best[0], 3),
                       box=box_of(face.box), quality=round(face.quality, 3),
                       decision=result.decision, fpir=result.fpir, threshold=result.threshold,
                       candidates=result.candidates, reason=result.reason,
                       frames=tuple((round(t, 3), jpeg, box) for t, jpeg, box in track.frames(KEEP)))


def is_video(path: str) -> bool:
    """Whether ``path`` holds a video container (by its bytes, not its name)."""
    from pof.video.reader import video_kind
    return video_kind(path) is not None
