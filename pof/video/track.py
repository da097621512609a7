"""Face tracks: the faces of one person followed through a clip.

The detector runs on a subset of frames. Each detector frame's faces join the open tracks by
box overlap (IoU with the track's last box, which is carried over frames where the detector
missed the face, moved on at the box's last velocity) and descriptor similarity to the track's template; a face that joins none
starts a track. A track ends at a cut (``is_cut``), or when its face is missing from
``MAX_MISSES`` detector frames in a row (the face left). At the end, two tracks of one clip
whose templates agree at a strict false-match rate (and which never overlap in time) are
merged: the same person seen again after a cut or after leaving the frame.

Per-track state is bounded: a running sum of descriptors, and a pool of at most
``2 * keep`` faces spread over the track's time (two neighbours are reduced to the better one
when the pool is full), from which ``select`` takes the best ``keep``. Ended tracks are merged
as soon as every track that started before them has ended too (the order the merge takes
them in), so what a clip holds grows with the persons it shows, not with its length or its
cuts; a single poor detection is dropped when its track ends. A tracker made with
``crop_side`` also keeps, for each pooled face, a small JPEG of it (encoded as the face joins
the pool, so at most ``2 * keep`` a track): what the web app shows of the frames a decision
used (``Track.frames``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pof.record import Face

MAX_MISSES = 2          # detector frames a track survives without its face
CROP_MARGIN = 0.25      # a face's kept JPEG: its box widened by this much of its size each side
MIN_IOU = 0.3           # overlap with the carried box that makes a face a candidate to continue
CUT_DISTANCE = 0.4      # histogram distance (0 same .. 1 disjoint) between frames that is a cut


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / (aw * ah + bw * bh - inter))


def histogram(small: np.ndarray) -> np.ndarray:
    """A normalised 32-bin grey histogram of a small frame."""
    h = np.bincount((small.ravel() >> 3).astype(np.int64), minlength=32).astype(np.float32)
    return h / max(h.sum(), 1.0)


def is_cut(before: np.ndarray | None, after: np.ndarray) -> bool:
    """Whether two successive frames' histograms (``histogram``) differ as at a scene change
    (total variation distance over CUT_DISTANCE)."""
    return before is not None and 0.5 * float(np.abs(before - after).sum()) > CUT_DISTANCE


@dataclass
class Track:
    """One face followed through consecutive detector frames."""

    number: int
    start: float
    end: float
    box: tuple
    total: np.ndarray                       # sum of the unit descriptors seen
    pool: list = field(default_factory=list)   # (time, rank, face, shot or None) in time order
    seen: int = 1                           # detector frames with this face
    misses: int = 0
    velocity: tuple = (0.0, 0.0)            # px per second of the box, from its last two
    best: tuple | None = None               # (rank, time, JPEG of the whole frame, box) if kept
    trail: list | None = None               # (time, box) of every detector frame, if kept

    @property
    def template(self) -> np.ndarray:
        return self.total / max(float(np.linalg.norm(self.total)), 1e-9)

    def predicted(self, time: float) -> tuple:
        """The box carried to ``time``: moved on at its last velocity (a pan keeps going)."""
        x, y, w, h = self.box
        dt = time - self.end
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)

    def frames(self, keep: int) -> list[tuple[float, bytes, tuple]]:
        """(time, JPEG of the face, the face's box in that JPEG) of the pooled faces ``select``
        takes for the track's query, in time order; empty when the tracker kept no crops."""
        return [(e[0], *e[3]) for e in select(self.pool, keep) if e[3] is not None]


class Tracker:
    """Builds tracks from detector frames. ``keep``: faces a track's query uses at most;
    ``gate(face)``: why a face is too poor to search, or None (pof.matching.search.Searcher.gate);
    ``link``: descriptor similarity at which a face continues a track it overlaps;
    ``same``: similarity at which a face continues a track wherever it is, and at which two
    tracks are merged (a strict false-match rate); ``crop_side``: keep a JPEG of each pooled
    face, at most that many px on its long side (0: keep none); ``best_frame``: keep a JPEG of
    the whole frame of each track's best face (``Track.best``; encoded when a better face
    comes, so one a track); ``trail``: keep each track's box on every detector frame that saw
    it (``Track.trail``, for ``pof redact --keep``: the one record that grows with a track's
    length, so off unless asked for)."""

    def __init__(self, keep: int, gate: Callable[[Face], str | None], link: float,
                 same: float, crop_side: int = 0, best_frame: bool = False,
                 trail: bool = False) -> None:
        self.keep, self.gate, self.link, self.same = keep, gate, link, same
        self.trail = trail
        self.crop_side = crop_side              # px of a kept face JPEG's long side; 0: none
        self.best_frame = best_frame
        self.open: list[Track] = []
        self._boxes: list[tuple] = []           # the boxes of the frame being added
        self.closed: list[Track] = []           # ended, waiting for the earlier ones to end
        self.merged: list[Track] = []           # ended tracks, one person seen again merged
        self._count = 0

    def cut(self) -> None:
        """A scene change: every open track ends."""
        self._close(self.open)
        self.open = []

    def _close(self, tracks: list[Track]) -> None:
        """Tracks ended: kept unless one poor detection (see ``finish``), and merged into
        ``merged`` in order of start as far as no open track started before them (a track
        made later starts later, or at the same time with a higher number)."""
        self.closed += [t for t in tracks if t.seen > 1 or any(e[1][0] for e in t.pool)]
        ended = {id(t) for t in tracks}
        first = min(((t.start, t.number) for t in self.open if id(t) not in ended), default=None)
        self.closed.sort(key=lambda t: (t.start, t.number))
        done = 0
        for t in self.closed:
            if first is not None and (t.start, t.number) > first:
                break
            self._merge(t)
            done += 1
        del self.closed[:done]

    def _merge(self, t: Track) -> None:
        """One ended track into ``merged``: into the first earlier track that ended before it
        began and whose template agrees at ``same``, or as a track of its own."""
        into = next((m for m in self.merged if m.end < t.start
                     and float(np.dot(m.template, t.template)) >= self.same), None)
        if into is None:
            self.merged.append(t)
            return
        into.end = max(into.end, t.end)
        into.total = into.total + t.total
        into.seen += t.seen
        if t.best is not None and (into.best is None or t.best[0] > into.best[0]):
            into.best = t.best
        into.pool = sorted(into.pool + t.pool, key=lambda e: e[0])
        while len(into.pool) > 2 * self.keep:
            into.pool = thin(into.pool)
        if into.trail is not None and t.trail is not None:
            into.trail = sorted(into.trail + t.trail, key=lambda e: e[0])

    def update(self, time: float, faces: list[Face], pixels: np.ndarray | None = None) -> None:
        """Add one detector frame's faces (with descriptors) seen at ``time`` seconds;
        ``pixels``: the frame (RGB), from which pooled faces are cropped if ``crop_side``
        (every other face of the frame obscured in a face's crop and best frame)."""
        self._boxes = [tuple(f.box) for f in faces]
        pairs = []
        for ti, t in enumerate(self.open):
            tmpl = t.template
            for fi, f in enumerate(faces):
                overlap = iou(t.predicted(time), f.box)
                sim = float(np.dot(tmpl, f.descriptor))
                if (overlap >= MIN_IOU and sim >= self.link) or sim >= self.same:
                    pairs.append((overlap + sim, ti, fi))
        used_t, used_f = set(), set()
        for _, ti, fi in sorted(pairs, reverse=True):
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            self._extend(self.open[ti], time, faces[fi], pixels)
        still, ended = [], []
        for ti, t in enumerate(self.open):
            if ti not in used_t:
                t.misses += 1
                if t.misses > MAX_MISSES:
                    ended.append(t)
                    continue
            still.append(t)
        if ended:
            self._close(ended)
        self.open = still
        for fi, f in enumerate(faces):
            if fi not in used_f:
                self._count += 1
                t = Track(self._count, time, time, f.box, np.array(f.descriptor, np.float64))
                self._add(t, time, f, pixels)
                self.open.append(t)

    def _extend(self, t: Track, time: float, f: Face, pixels: np.ndarray | None) -> None:
        dt = time - t.end
        if dt > 0:
            t.velocity = ((f.box[0] - t.box[0]) / dt, (f.box[1] - t.box[1]) / dt)
        t.end, t.box, t.misses = time, f.box, 0
        t.seen += 1
        t.total += f.descriptor
        self._add(t, time, f, pixels)

    def _add(self, t: Track, time: float, f: Face, pixels: np.ndarray | None = None) -> None:
        f.crop = f.landmarks68 = None          # what a search needs stays; pixels do not
        others = [b for b in self._boxes if b != tuple(f.box)] if pixels is not None else []
        shot = face_jpeg(pixels, f.box, self.crop_side, others) \
            if self.crop_side and pixels is not None else None
        rank = (self.gate(f) is None, f.quality)
        if self.trail:
            t.trail = [] if t.trail is None else t.trail
            t.trail.append((time, tuple(float(v) for v in f.box)))
        t.pool.append((time, rank, f, shot))
        if self.best_frame and pixels is not None and (t.best is None or rank > t.best[0]):
            from pof.runtime.jpeg import encode_jpeg
            frame = np.array(pixels)
            hide(frame, (0, 0), others, pixels.shape, "blur")
            t.best = (rank, time, encode_jpeg(frame, 90), tuple(f.box))
        if len(t.pool) > 2 * self.keep:
            t.pool = thin(t.pool)

    def finish(self) -> list[Track]:
        """All tracks, merged where one person was tracked twice, in order of start, numbered
        from 1. A track seen on one detector frame only whose face fails the quality gates is
        left out: most often it is no face at all (a pattern the detector took for a tiny,
        blurred face)."""
        self.cut()
        merged, self.merged = self.merged, []
        for i, t in enumerate(merged, 1):
            t.number = i
        return merged


def hide(part: np.ndarray, origin: tuple[int, int], boxes, shape, method: str) -> None:
    """Obscure, in place in ``part`` (the region of a frame of ``shape`` whose top left corner
    is ``origin``), each face of ``boxes`` (frame coordinates) with pof.redact's
    ``method`` at strength 1.5, over its box widened by ``CROP_MARGIN``."""
    from pof.redact import obscure, region
    ox, oy = origin
    for b in boxes:
        x0, y0, x1, y1 = region(tuple(b), CROP_MARGIN, shape)
        x0, y0 = max(0, x0 - ox), max(0, y0 - oy)
        x1, y1 = min(part.shape[1], x1 - ox), min(part.shape[0], y1 - oy)
        if x1 > x0 and y1 > y0:
            obscure(part, (x0, y0, x1, y1), method, 1.5)


def face_jpeg(pixels: np.ndarray, box, side: int, others=()) -> tuple[bytes, tuple]:
    """(a JPEG of the face at ``box`` (x, y, w, h) of an RGB frame, its box widened by
    ``CROP_MARGIN`` and at most ``side`` px on its long side; the face's box in that JPEG).
    Any of the ``others`` (boxes of the frame's other faces) reaching into it is filled with
    its mean colour: a crop shows one person."""
    import cv2
    from pof.runtime.jpeg import encode_jpeg
    x, y, w, h = (float(v) for v in box)
    H, W = pixels.shape[:2]
    x0 = min(max(0, int(x - CROP_MARGIN * w)), W - 1)
    y0 = min(max(0, int(y - CROP_MARGIN * h)), H - 1)
    x1 = max(min(W, int(np.ceil(x + w * (1 + CROP_MARGIN)))), x0 + 1)
    y1 = max(min(H, int(np.ceil(y + h * (1 + CROP_MARGIN)))), y0 + 1)
    part = pixels[y0:y1, x0:x1]
    if others:
        part = np.array(part)
        hide(part, (x0, y0), others, pixels.shape, "fill")
    scale = min(1.0, side / max(part.shape[:2]))
    if scale < 1.0:
        part = cv2.resize(part, (max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    inside = tuple(round(v, 1) for v in ((x - x0) * scale, (y - y0) * scale, w * scale, h * scale))
    return encode_jpeg(np.ascontiguousarray(part), quality=85), inside


def thin(pool: list) -> list:
    """Halve a time-ordered pool: of each two neighbours the better face stays."""
    out = [max(pool[i:i + 2], key=lambda e: e[1]) for i in range(0, len(pool), 2)]
    return out


def select(pool: list, keep: int) -> list:
    """At most ``keep`` entries of a time-ordered pool, spread over its time: the pool in
    ``keep`` consecutive runs, the best face of each (faces passing the quality gates first;
    only those when any do)."""
    usable = [e for e in pool if e[1][0]] or pool
    if len(usable) <= keep:
        return usable
    runs = np.array_split(np.arange(len(usable)), keep)
    return [max((usable[i] for i in run), key=lambda e: e[1]) for run in runs]
