"""What following faces through a clip holds does not grow with the clip's length: the tracker
keeps a bounded pool a track, merges ended tracks of one person as it goes, and drops lone
poor detections when they end (counted in objects, on real descriptors)."""
from __future__ import annotations

import numpy as np


def held(tracker) -> tuple[int, int]:
    """(tracks, pooled faces) the tracker holds, open, waiting and merged."""
    tracks = tracker.open + tracker.closed + tracker.merged
    return len(tracks), sum(len(t.pool) for t in tracks)


def interview(tracker, face_a, face_b, noise, scenes: int, per_scene: int = 12) -> list[tuple]:
    """Two persons in turn, a cut between scenes, a lone poor detection (a pattern taken for
    a face) in each scene; returns what the tracker held after each scene."""
    def like(face, **changes):
        return type(face)(**{**face.__dict__, **changes})
    sizes, time = [], 0.0
    for s in range(scenes):
        tracker.cut()
        face = face_a if s % 2 == 0 else face_b
        for i in range(per_scene):
            faces = [like(face, quality=0.5 + 0.04 * (i % 10))]
            if i == per_scene // 2:                   # a blurred speck far from the face
                faces.append(like(noise, box=(400.0 + i, 10.0, 12.0, 12.0), extra={"poor": True}))
            tracker.update(time, faces)
            time += 0.125
        sizes.append(held(tracker))
    return sizes


def test_what_the_tracker_holds_is_the_same_for_a_clip_ten_times_longer(yale_faces):
    from pof.video.track import Tracker
    a, b, noise = yale_faces[0][2], yale_faces[9][2], yale_faces[11][2]
    assert float(np.dot(a.descriptor, b.descriptor)) < 0.85       # two persons, under same=0.9

    def run(scenes):
        tracker = Tracker(8, lambda f: "too blurred" if f.extra.get("poor") else None,
                          link=0.5, same=0.9)
        sizes = interview(tracker, a, b, noise, scenes)
        return sizes, tracker.finish()

    short, tracks_short = run(20)
    long, tracks_long = run(200)
    assert long[:20] == short
    most = max(long)
    assert most == max(short) and most[0] <= 4 and most[1] <= 3 * 16 + 1
    assert long[-1] == long[19]                              # flat from the 20th scene on
    # the two persons, each seen again after every cut, are one track each
    assert [(t.number, t.start) for t in tracks_long] == [(1, 0.0), (2, 1.5)]
    assert [t.seen for t in tracks_long] == [100 * 12, 100 * 12]
    assert tracks_long[1].end == 200 * 12 * 0.125 - 0.125
    assert all(len(t.pool) <= 16 for t in tracks_short + tracks_long)


def test_merging_as_tracks_end_waits_for_tracks_that_started_earlier(yale_faces):
    """A track that started earlier and is still open is merged first, as the order of start
    asks: here person A stays on screen while B leaves and comes back."""
    from pof.video.track import Tracker
    a, b = yale_faces[0][2], yale_faces[9][2]
    x, y, w, h = b.box
    tracker = Tracker(8, lambda f: None, link=0.5, same=0.9)
    for i in range(40):
        faces = [a]
        if i < 10 or i >= 20:                           # B leaves for ten detector frames
            faces.append(type(b)(**{**b.__dict__, "box": (x + 300, y, w, h)}))
        tracker.update(i / 8, faces)
    assert len(tracker.merged) == 0 and len(tracker.closed) == 1   # B's first track waits for A's
    tracks = tracker.finish()
    assert [(t.number, t.start, t.seen) for t in tracks] == [(1, 0.0, 40), (2, 0.0, 30)]
