"""Grouping the faces of photos and videos together (``pof cluster``).

A video is read as ``pof search`` reads it (``scan_video``): each face track is one face to
group, its template the mean of its descriptors, normalised (``Track.template``). Two tracks
of one clip that overlap in time are two persons, so they are never put in one group (as two
faces of one photo are not); tracks that do not overlap may join (one person seen again).
"""
from __future__ import annotations

from pathlib import Path

from pof.matching.cluster import ClusterResult, group_faces, link_threshold, photo_faces
from pof.matching.verify import DEFAULT_FMR

CROP_SIDE = 160          # px of the long side of a track's face JPEG in its group's folder


def clip_time(seconds: float) -> str:
    """mm:ss (h:mm:ss from an hour) of a time in a clip, in whole seconds."""
    s = max(0, int(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m:02d}:{s % 60:02d}"


def track_name(path: str, start: float, end: float) -> str:
    """How a track is named to people: "clip.mp4 00:12-00:19"."""
    return f"{Path(path).name} {clip_time(start)}-{clip_time(end)}"


def overlap_keys(path: str, tracks: list) -> list[frozenset]:
    """For each track, a key for each moment it shares with another track of the clip: the
    start of every track that begins while it is on screen (itself included). Two tracks
    overlapping in time share the key of the later one's start."""
    return [frozenset((path, u.number) for u in tracks if t.start <= u.start <= t.end)
            for t in tracks]


def video_faces(result: ClusterResult, path: str, pipeline, limits: tuple[float, float],
                stride: int = 0) -> tuple[list, list]:
    """Each track of the video ``path`` added to ``result.faces`` (``image``: the video,
    ``track``, ``name``, ``start``, ``end``, the box and quality of its best face, a JPEG of
    that face as ``crop``): their templates and photo keys, for ``group_faces``. A video that
    cannot be read, breaks part-way or shows no face adds one problem (the tracks found before
    a break are kept)."""
    from pof.video.search import scan_video, settings_gate
    from pof.video.track import select
    scan = scan_video(path, pipeline, settings_gate(), limits, stride, crop_side=CROP_SIDE)
    if scan.error:
        reason = scan.error
        result.problems.append((path, reason[len(path) + 2:] if reason.startswith(f"{path}: ") else reason))
    descs, keys = [], overlap_keys(path, scan.tracks)
    for t in scan.tracks:
        best = max(select(t.pool, len(t.pool)), key=lambda e: e[1])
        face = best[2]
        result.faces.append({"image": path, "track": t.number, "name": track_name(path, t.start, t.end),
                             "start": round(t.start, 3), "end": round(t.end, 3),
                             "crop": best[3][0] if best[3] is not None else None,
                             "box": [round(float(v), 1) for v in face.box],
                             "quality": round(float(face.quality), 3)})
        descs.append(t.template)
    return descs, keys


def cluster_media(paths: list[str], fmr: float = DEFAULT_FMR, workers: int = 1,
                  progress: bool = False, stride: int = 0) -> ClusterResult:
    """``pof.matching.cluster.cluster_files`` over photos and videos (recognised by their
    bytes): the faces of the photos and the tracks of the videos grouped together."""
    from pof.video.search import default_limits, is_video
    result = ClusterResult(threshold=link_threshold(fmr))
    kinds = [is_video(p) for p in paths]
    descs, photos = photo_faces(result, [p for p, v in zip(paths, kinds) if not v], workers, progress)
    videos = [p for p, v in zip(paths, kinds) if v]
    if videos:
        from pof.pipeline import Pipeline
        pipeline = Pipeline(attributes="off")
        limits = default_limits()
        for path in videos:
            d, keys = video_faces(result, path, pipeline, limits, stride)
            descs += d
            photos += keys
    group_faces(result, descs, photos, progress)
    return result
