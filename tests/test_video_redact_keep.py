"""pof redact --keep on a video: a track, as pof search lists it, stays visible; the other
person is covered and the check passes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pof.video.reader import Video
from pof.video.redact import KeptTrack

from .conftest import run_pof
from .test_video_redact import two_people
from .videokit import photo, write_clip
from .webkit import build_dataset


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    """The two-person clip and its tracks as pof search --json lists them."""
    d = tmp_path_factory.mktemp("keep")
    clip = write_clip(d / "march.mp4", two_people(30))
    r = run_pof("search", build_dataset(d / "ds"), clip, "--json")
    assert r.returncode == 0, r.stderr
    tracks = json.loads(r.stdout)["tracks"]
    assert len(tracks) == 2
    return clip, tracks


def faces_by_side(pipeline, path) -> tuple[int, int, int]:
    """(frames, frames with a face on the left half, frames with one on the right half)."""
    n = left = right = 0
    with Video(path) as video:
        for frame in video.frames():
            found = pipeline.analyze(frame.rgb(), with_crops=False)
            n += 1
            left += any(f.box[0] + f.box[2] / 2 < 240 for f in found)
            right += any(f.box[0] + f.box[2] / 2 >= 240 for f in found)
    return n, left, right


def test_a_kept_track_stays_visible_and_the_other_face_is_covered(listed, tmp_path, pipeline):
    clip, tracks = listed
    left = next(t for t in tracks if t["box"][0] < 200)          # subject01, on the left
    r = run_pof("redact", clip, "--keep", left["track"], "--out", tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"kept track(s) {left['track']}" in r.stdout and "WARNING" not in r.stderr
    assert "1 face(s) redacted" in r.stdout
    n, on_left, on_right = faces_by_side(pipeline, tmp_path / "out" / "march.redacted.mp4")
    assert n == 30 and on_right == 0                              # the other person: covered
    assert on_left >= 27                                          # the kept one: visible
    # the kept face is the person's own, not a blur pof still finds
    copy = next(Video(tmp_path / "out" / "march.redacted.mp4").frames()).rgb()
    face = max(pipeline.analyze(copy, with_crops=False), key=lambda f: f.box[2])
    ref = max(pipeline.analyze(photo("subject01.normal"), with_crops=False), key=lambda f: f.box[2])
    assert float(np.dot(face.descriptor, ref.descriptor)) > 0.9


def test_a_number_that_names_no_track_redacts_everything(listed, tmp_path, pipeline):
    clip, _ = listed
    r = run_pof("redact", clip, "--keep", "7", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no track 7 to keep" in r.stdout and "kept track" not in r.stdout
    n, on_left, on_right = faces_by_side(pipeline, tmp_path / "out" / "march.redacted.mp4")
    assert n == 30 and on_left == on_right == 0


def test_a_kept_box_is_interpolated_between_looks_and_carried_a_little():
    k = KeptTrack(1, [(0.0, (0.0, 0.0, 10.0, 10.0)), (0.5, (10.0, 0.0, 10.0, 10.0)),
                      (3.0, (100.0, 0.0, 10.0, 10.0))])
    assert k.box_at(0.25) == (5.0, 0.0, 10.0, 10.0)
    assert k.box_at(0.7) == (10.0, 0.0, 10.0, 10.0)              # 2.5 s gap: the nearest look
    assert k.box_at(1.5) is None and k.box_at(-0.6) is None and k.box_at(3.4) is not None
    assert k.holds(0.25, (6.0, 1.0, 10.0, 10.0)) and not k.holds(0.25, (40.0, 0.0, 10.0, 10.0))
