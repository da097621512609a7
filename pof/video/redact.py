"""``pof redact`` on a video: every face in every frame covered, then checked.

Pass one finds faces: the detector on every ``stride``-th frame (and the frame after each cut,
``pof.video.track.is_cut``), linked into box tracks by overlap with the box carried on at its
last velocity (``pof.video.track.iou``, as the search's tracks). Each frame then gets each
track's box: interpolated between the detector frames that saw it, and carried on (forward and
back, not across a cut) for ``CARRY`` detector frames where the detector missed the face. A box
is widened by the margin asked for plus one that grows with the box's speed (for a face seen
once, an assumed ``UNKNOWN_SPEED``) and the frames since it was seen, so a face moving between
two looks stays covered.

Pass two decodes the clip again and writes the copy (``pof.video.writer``). The check then
decodes the copy and runs the check's detector (``pof.redact.Checker``: lower cut-offs than a
search) on every ``CHECK_EVERY``-th frame, the frames halfway between two detector frames
(where a carried box is least sure), the frames at each track's start and end, and, from
the second round, every frame within ``CHECK_EVERY`` of a face found in an earlier one. A face
found inside a track's box escalates that track a step (``pof.redact.LADDER``), and gets a box
of its own over the frames around it unless it has one already (which is escalated instead). The copy is written again until the
check finds nothing, or a face survives a solid fill (the copy then fails). As for photos, the
check also describes each face of the source's frame again at its landmarks on the copy's
frame: one the recogniser still matches counts as found.

A track can be left visible (``keep``: its number as ``pof search`` lists the clip's tracks,
an officer's face): the clip is read once more as the search reads it, and that track's box
on each of its detector frames (``KeptTrack``) spares every box that overlaps it at that time,
in the copy and in the check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pof.errors import PofError
from pof.redact import LADDER, MAX_ROUNDS, Checker, Redaction, describe_step, obscure_box, output_path
from pof.video.reader import Video, VideoError, video_kind
from pof.video.search import default_stride
from pof.video.track import MIN_IOU, histogram, iou, is_cut
from pof.video.writer import target

CARRY = 2          # detector frames a box is carried where its face was not found
CHECK_EVERY = 10   # the check looks at every 10th frame of the copy (and each track's ends)
SPEED_MARGIN = 1.0 # extra margin per box width the box moves in the frames since it was seen
UNKNOWN_SPEED = 0.1  # box widths a frame assumed for a face seen on one detector frame only
KEPT_GAP = 1.0     # seconds between two looks at a kept track over which its box is interpolated
KEPT_REACH = 0.5   # seconds a kept track's box is carried past its first and last looks


@dataclass
class KeptTrack:
    """A search track left visible: its number and its (time, box) on each detector frame
    that saw it (``Track.trail``)."""

    number: int
    trail: list

    def box_at(self, time: float) -> tuple | None:
        """The track's box at ``time`` seconds: interpolated between two looks at most
        ``KEPT_GAP`` apart, else the nearest look within ``KEPT_REACH``; None elsewhere."""
        import bisect
        times = [t for t, _ in self.trail]
        i = bisect.bisect_left(times, time)
        if i < len(times) and times[i] == time:
            return self.trail[i][1]
        before = self.trail[i - 1] if i > 0 else None
        after = self.trail[i] if i < len(times) else None
        if before and after and after[0] - before[0] <= KEPT_GAP:
            k = (time - before[0]) / (after[0] - before[0])
            return tuple(a + (b - a) * k for a, b in zip(before[1], after[1]))
        near = min((e for e in (before, after) if e), key=lambda e: abs(e[0] - time), default=None)
        return near[1] if near and abs(near[0] - time) <= KEPT_REACH else None

    def holds(self, time: float, box: tuple) -> bool:
        """Whether ``box`` at ``time`` is this track's face (overlaps its box by ``MIN_IOU``)."""
        at = self.box_at(time)
        return at is not None and iou(at, box) >= MIN_IOU


def kept_tracks(pipeline, path: str, numbers) -> tuple[list[KeptTrack], list[int]]:
    """The tracks ``numbers`` of the video (as ``pof search`` lists them), and the numbers
    that name no track."""
    from pof.video.search import default_limits, scan_video, settings_gate
    scan = scan_video(path, pipeline, settings_gate(), default_limits(), trail=True)
    if not scan.opened:
        raise VideoError(scan.error)
    by = {t.number: t for t in scan.tracks}
    return ([KeptTrack(n, by[n].trail) for n in dict.fromkeys(numbers) if n in by],
            [n for n in dict.fromkeys(numbers) if n not in by])


def spared(kept, time: float, box: tuple) -> bool:
    """Whether ``box`` at ``time`` is the face of one of the ``kept`` tracks."""
    return any(k.holds(time, box) for k in kept)


@dataclass
class BoxTrack:
    """One face's boxes on the detector frames that saw it: frame number -> (x, y, w, h)."""

    seen: dict = field(default_factory=dict)
    first_frame: int = 0       # the first frame it may cover (after the last cut before it)
    last_frame: int = 0        # the last frame it may cover (before the next cut)
    misses: int = 0
    level: int = 0

    def predicted(self, number: int) -> tuple:
        frames = sorted(self.seen)
        box = self.seen[frames[-1]]
        if len(frames) < 2:
            return box
        a, b = frames[-2], frames[-1]
        pa = self.seen[a]
        k = (number - b) / (b - a)
        return (box[0] + (box[0] - pa[0]) * k, box[1] + (box[1] - pa[1]) * k, box[2], box[3])

    def box_at(self, number: int, stride: int, margin: float) -> tuple[tuple, float] | None:
        """(box, margin) covering the face at frame ``number``, or None outside the track."""
        frames = sorted(self.seen)
        reach = CARRY * stride
        if number < max(self.first_frame, frames[0] - reach) or number > min(self.last_frame, frames[-1] + reach):
            return None
        before = [f for f in frames if f <= number]
        after = [f for f in frames if f >= number]
        if before and after:
            a, b = before[-1], after[0]
            pa, pb = self.seen[a], self.seen[b]
            t = 0.0 if a == b else (number - a) / (b - a)
            box = tuple(pa[i] + (pb[i] - pa[i]) * t for i in range(4))
            gap = min(number - a, b - number)
            speed = _speed(pa, pb, b - a)
        else:
            ref = before[-1] if before else after[0]
            gap = abs(number - ref)
            i = frames.index(ref)
            pair = frames[max(0, i - 1):i + 1] if before else frames[i:i + 2]
            speed = _speed(self.seen[pair[0]], self.seen[pair[-1]], pair[-1] - pair[0])
            vx, vy = speed[1]
            sign = 1 if before else -1
            bx = self.seen[ref]
            box = (bx[0] + sign * vx * gap, bx[1] + sign * vy * gap, bx[2], bx[3])
        if len(frames) < 2:     # seen once: its speed is not known, assume a brisk one
            speed = (UNKNOWN_SPEED * box[2], speed[1])
        pixels_moved = (speed[0] * max(gap, stride / 2)) if gap or stride > 1 else 0.0
        return box, margin + min(1.0, SPEED_MARGIN * pixels_moved / max(box[2], 1.0))


def _speed(a, b, frames: int) -> tuple[float, tuple[float, float]]:
    """(px a frame, (vx, vy)) of a box moving from ``a`` to ``b`` in ``frames``."""
    if frames <= 0:
        return 0.0, (0.0, 0.0)
    vx, vy = (b[0] - a[0]) / frames, (b[1] - a[1]) / frames
    return float((vx * vx + vy * vy) ** 0.5), (vx, vy)


@dataclass
class Patch:
    """A box the check found outside every track, covered over a few frames."""

    box: tuple
    start: int
    end: int
    level: int = 0


def link(carried: tuple, box: tuple) -> tuple | None:
    """How well a detected ``box`` continues a track whose box was carried to ``carried``:
    (1, overlap) where they overlap by ``MIN_IOU``; else (0, -distance) where the centres are
    less than a box width apart and the sizes agree within 1.5 times (a fast face, or a track
    seen once, whose speed is not known yet); None where it does not."""
    overlap = iou(carried, box)
    if overlap >= MIN_IOU:
        return 1, overlap
    w = max(carried[2], box[2], 1.0)
    if not 1 / 1.5 <= box[2] / max(carried[2], 1.0) <= 1.5:
        return None
    dist = ((carried[0] + carried[2] / 2 - box[0] - box[2] / 2) ** 2
            + (carried[1] + carried[3] / 2 - box[1] - box[3] / 2) ** 2) ** 0.5 / w
    return (0, -dist) if dist < 1.0 else None


def find_faces(pipeline, path: str, stride: int, times: dict | None = None
               ) -> tuple[list[BoxTrack], int, float, object]:
    """Pass one: (tracks, frames read, frames a second, the first frame's size). ``times``:
    filled with the time (seconds) of each detector frame, by number."""
    tracks: list[BoxTrack] = []
    open_: list[BoxTrack] = []
    n, size = 0, None
    with Video(path) as video:
        fps = video.fps
        before, last, cut_at = None, None, 0
        for frame in video.frames():
            n += 1
            hist = histogram(frame.small)
            cut = is_cut(before, hist)
            before = hist
            if cut:
                for t in open_:
                    t.last_frame = frame.number - 1
                tracks += open_
                open_, cut_at = [], frame.number
            if not (cut or last is None or frame.number - last >= stride):
                continue
            last = frame.number
            if times is not None:
                times[frame.number] = frame.time
            pixels = frame.rgb()
            size = size or (pixels.shape[1], pixels.shape[0])
            boxes = [tuple(float(v) for v in d.box) for d in pipeline.detect(pixels)[0]]
            pairs = [(link(t.predicted(frame.number), b), ti, bi)
                     for ti, t in enumerate(open_) for bi, b in enumerate(boxes)]
            used_t, used_b = set(), set()
            for score, ti, bi in sorted((p for p in pairs if p[0] is not None), reverse=True):
                if ti in used_t or bi in used_b:
                    continue
                used_t.add(ti)
                used_b.add(bi)
                open_[ti].seen[frame.number] = boxes[bi]
                open_[ti].misses = 0
            still = []
            for ti, t in enumerate(open_):
                if ti not in used_t:
                    t.misses += 1
                    if t.misses > CARRY:
                        t.last_frame = 1 << 40
                        tracks.append(t)
                        continue
                still.append(t)
            open_ = still
            for bi, b in enumerate(boxes):
                if bi not in used_b:
                    open_.append(BoxTrack({frame.number: b}, cut_at, 1 << 40))
    tracks += open_
    return sorted(tracks, key=lambda t: min(t.seen)), n, fps, size


def boxes_in(number: int, tracks: list[BoxTrack], patches: list[Patch], stride: int,
             margin: float) -> list[tuple[object, tuple, float, int]]:
    """(owner, box, margin, level) of everything covered in frame ``number``."""
    out = []
    for t in tracks:
        at = t.box_at(number, stride, margin)
        if at:
            out.append((t, at[0], at[1], t.level))
    for p in patches:
        if p.start <= number <= p.end:
            out.append((p, p.box, margin + 0.25, p.level))
    return out


def render(path: str, dest: Path, fmt: str, tracks, patches, stride: int, method: str,
           strength: float, margin: float, audio: bool, kept=()) -> int:
    """Pass two: write the covered copy into ``dest``. Returns the frames written."""
    import av

    from pof.video.writer import VideoWriter
    writer = None
    with Video(path) as video:
        stream = video._stream
        source = av.open(path) if audio else None
        try:
            sound = source.streams.audio[0] if source is not None and source.streams.audio else None
            for frame in video.frames():
                pixels = frame.rgb()
                if writer is None:
                    rate = stream.average_rate or stream.guessed_rate
                    writer = VideoWriter(dest, fmt, (pixels.shape[1], pixels.shape[0]), rate, sound,
                                         stream.time_base)
                for _, box, m, level in boxes_in(frame.number, tracks, patches, stride, margin):
                    if not spared(kept, frame.time, box):
                        obscure_box(pixels, box, level, method, strength, m)
                writer.write(pixels, frame._frame.pts)   # each frame at its own time
            if sound is not None:
                writer.copy_audio(source.demux(sound))
        finally:
            if writer is not None:
                writer.close()
            if source is not None:
                source.close()
    return writer.frames if writer else 0


def check_copy(source: str, dest: Path, checker: Checker, tracks, patches, stride: int,
               margin: float, frames: int, also: set[int] = frozenset(),
               described: dict | None = None, kept=()) -> list[tuple[int, tuple, list]]:
    """Faces the check finds in the copy: (frame number, box, owners whose box holds it): the
    check's detector on the copy's frame, and the recogniser at each face of the source's frame
    (``Checker.recognised``). ``also``: more frames to look at (around faces found in an
    earlier round); ``described``: the source frames' analysed faces, kept between rounds;
    ``kept``: tracks left visible (a face on one of them is not counted)."""
    from pof.redact import centre_inside, overlaps, region
    sample = {0, frames - 1} | set(range(0, frames, CHECK_EVERY)) | set(also)
    sample |= set(range(stride // 2, frames, stride)) if stride > 2 else set()   # halfway between looks
    for t in tracks:
        for end in (max(t.first_frame, min(t.seen) - CARRY * stride), min(t.seen), max(t.seen),
                    min(t.last_frame, max(t.seen) + CARRY * stride)):
            sample |= {end - 1, end, end + 1}
    described = {} if described is None else described
    found = []
    with Video(source) as original, Video(dest) as video:
        for before, frame in zip(original.frames(), video.frames()):
            if frame.number not in sample:
                continue
            pixels = frame.rgb()
            if frame.number not in described:
                described[frame.number] = checker.pipeline.analyze(before.rgb(), with_crops=False)
            faces = described[frame.number]
            covered = boxes_in(frame.number, tracks, patches, stride, margin)
            rects = [(o, region(box, m, pixels.shape), level) for o, box, m, level in covered]
            seen = checker.faces(pixels, equalise=False)
            # a solid fill holds nothing of the face: the recogniser's view of it is noise
            seen += [f.box for f, same in zip(faces, checker.recognised(faces, pixels)) if same
                     and not any(LADDER[level].fill and centre_inside(f.box, r) for _, r, level in rects)]
            for b in seen:
                b = tuple(float(v) for v in b)
                if spared(kept, before.time, b):
                    continue
                owners = [o for o, r, _ in rects if overlaps(b, _rect_box(r))]
                found.append((frame.number, b, owners))
    return found


def _rect_box(rect) -> tuple:
    return rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]


def redact_video(pipeline, source: Path, out_dir: Path, taken: set[str], method: str = "pixelate",
                 strength: float = 1.0, margin: float = 0.25, check: bool = True,
                 audio: bool = True, checker: Checker | None = None,
                 stride: int = 0, keep: tuple[int, ...] = ()) -> Redaction:
    """Redact one video into ``out_dir``; errors are returned in the Redaction, not raised.
    ``keep``: numbers of tracks (as ``pof search`` lists them) left visible."""
    import av
    path = str(source)
    rec = Redaction(path)
    suffix, fmt = target(video_kind(path))
    dest = output_path(out_dir, source, taken, suffix)
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        with Video(path) as video:
            step = stride or max(1, default_stride(video.fps) // 2)
        kept, unknown = kept_tracks(pipeline, path, keep) if keep else ([], [])
        times: dict[int, float] = {}
        tracks, frames, _, _ = find_faces(pipeline, path, step, times)
        if kept:       # a face on a kept track at every look is neither covered nor listed
            tracks = [t for t in tracks if not all(spared(kept, times[n], b) for n, b in t.seen.items())]
        patches: list[Patch] = []
        out_dir.mkdir(parents=True, exist_ok=True)
        checker = checker or Checker(pipeline)
        dense: set[int] = set()
        described: dict = {}
        while True:
            written = render(path, tmp, fmt, tracks, patches, step, method, strength, margin, audio,
                             kept)
            rec.rounds += 1
            if not check:
                break
            found = check_copy(path, tmp, checker, tracks, patches, step, margin, written, dense,
                               described, kept)
            for number, _, _ in found:   # a face between two samples: look at every frame there
                dense |= set(range(number - CHECK_EVERY, number + CHECK_EVERY + 1))
            bump = set()
            for number, box, owners in found:
                for o in owners:            # the box it was in: coarser, wider, then filled
                    if o.level < len(LADDER) - 1:
                        bump.add(id(o))
                        o._bump = True
                if not any(isinstance(o, Patch) for o in owners):
                    # and a box of its own where it was found (it may stick out of the track's)
                    patches.append(Patch(box, max(0, number - step), number + step))
                    bump.add(id(patches[-1]))
            if not found or rec.rounds >= MAX_ROUNDS or not bump:
                rec.still_found = len({(n, b) for n, b, _ in found})
                break
            for o in tracks + patches:
                if getattr(o, "_bump", False):
                    o.level += 1
                    o._bump = False
    except VideoError as exc:
        tmp.unlink(missing_ok=True)
        rec.error = str(exc)
        return rec
    except PofError as exc:
        tmp.unlink(missing_ok=True)
        rec.error = f"{path}: {exc}"
        return rec
    except av.FFmpegError as exc:     # FFmpeg's encoder or muxer refusing the copy
        tmp.unlink(missing_ok=True)
        rec.error = f"{path}: the copy could not be written ({type(exc).__name__}: {exc})"
        return rec
    tmp.replace(dest)
    rec.output = str(dest)
    rec.faces = [t.seen[min(t.seen)] for t in tracks] + [p.box for p in patches]
    rec.added = len(patches)
    rec.kept = [k.number for k in kept]
    rec.steps = [describe_step(min(o.level, len(LADDER) - 1), method, strength, margin)
                 for o in tracks + patches]
    rec.note = (f"{'MP4' if fmt == 'mp4' else 'Matroska'}, H.264, {written} frames"
                + (", sound kept" if audio and _has_audio(path) else ", no sound")
                + "".join(f"; no track {n} to keep, nothing left visible for it" for n in unknown))
    return rec


def _has_audio(path: str) -> bool:
    import av
    try:
        with av.open(path) as c:
            return bool(c.streams.audio)
    except Exception:  # noqa: BLE001
        return False
