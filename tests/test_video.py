"""pof search on videos: real clips made from the test photos, the real models, the CLI."""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import YALE, run_pof
from .videokit import empty, pan, photo, portrait_phone_clip, write_clip
from .webkit import build_dataset

TRACK_FIELDS = {"track", "start", "end", "frames_used", "best_frame_time", "box", "quality",
                "decision", "fpir", "threshold", "candidates"}
VIDEO_FIELDS = {"video", "duration", "fps", "frames_read", "frames_analysed", "error", "tracks"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("videods"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Clips at 10 fps, 480 x 270: subject01 is enrolled (the glasses photo is not in the
    gallery), subject04 is not."""
    d = tmp_path_factory.mktemp("clips")
    known, unknown = photo("subject01.glasses"), photo("subject04.normal")
    return {
        # subject01 panning for 2.5 s, a cut, subject04 zooming in for 5 s on another background
        "cut": write_clip(d / "cut.mp4", itertools.chain(
            pan(known, 25), pan(unknown, 50, background=200, dx=-1, scale=0.8, zoom=0.004))),
        # nothing for 1 s, subject01 for 2 s, nothing for 1 s (Matroska, named without suffix)
        "enter": write_clip(d / "enter", itertools.chain(empty(10), pan(known, 20), empty(10)),
                            fmt="matroska"),
        # subject01, a cut to subject04, a cut back to subject01: one person seen twice
        "back": write_clip(d / "back.webm", itertools.chain(
            pan(known, 15), pan(unknown, 15, background=200), pan(known, 15, background=40)),
            codec="libvpx"),
        "noface": write_clip(d / "noface.avi", empty(20), codec="mpeg4"),
    }


@pytest.fixture(scope="module")
def searched(dataset, clips) -> dict[str, dict]:
    """The JSON results of one search over every clip, by file name."""
    r = run_pof("search", dataset, *clips.values(), "--json")
    assert r.returncode == 3, r.stderr          # the faceless clip failed, the rest did not
    out = {}
    for line in r.stdout.splitlines():
        obj = json.loads(line)
        out[Path(obj["video"]).name] = obj
    return out


def test_json_fields_exactly(searched):
    for obj in searched.values():
        assert set(obj) == VIDEO_FIELDS
    cut = searched["cut.mp4"]
    assert cut["error"] is None and cut["fps"] == 10 and cut["frames_read"] == 75
    assert cut["duration"] == pytest.approx(7.5, abs=0.15)
    assert 0 < cut["frames_analysed"] <= cut["frames_read"]
    for t in cut["tracks"]:
        assert set(t) == TRACK_FIELDS
        assert len(t["box"]) == 4 and 0 < t["quality"] <= 1
        assert t["start"] <= t["best_frame_time"] <= t["end"]
        assert 0 < t["fpir"] < 0.05 and 0 < t["threshold"] < 1
        assert set(t["candidates"][0]) == {"person", "name", "score", "fmr", "fmr_upper_bound",
                                           "evidence"}


def test_a_cut_ends_a_track_and_each_track_has_one_decision(searched):
    tracks = searched["cut.mp4"]["tracks"]
    assert len(tracks) == 2
    first, second = tracks
    # the enrolled person is named, from at most 8 of the frames
    assert first["decision"] == "match" and first["candidates"][0]["person"] == "subject01"
    assert 2 <= first["frames_used"] <= 8
    assert first["start"] == pytest.approx(0, abs=0.15) and first["end"] == pytest.approx(2.4, abs=0.25)
    # the person who is not enrolled, over a 5 s track, is not matched to anyone
    assert second["decision"] == "no_match"
    assert second["frames_used"] == 8
    assert second["start"] == pytest.approx(2.5, abs=0.15) and second["end"] == pytest.approx(7.4, abs=0.25)


def test_a_face_entering_and_leaving_gives_its_times(searched):
    """The clip is Matroska without a suffix: recognised by its bytes."""
    tracks = searched["enter"]["tracks"]
    assert len(tracks) == 1
    assert tracks[0]["start"] == pytest.approx(1.0, abs=0.15)
    assert tracks[0]["end"] == pytest.approx(2.9, abs=0.25)
    assert tracks[0]["decision"] == "match" and tracks[0]["candidates"][0]["person"] == "subject01"


def test_one_person_seen_twice_is_one_track(searched):
    tracks = searched["back.webm"]["tracks"]
    assert len(tracks) == 2
    by_person = {t["candidates"][0]["person"]: t for t in tracks if t["decision"] == "match"}
    assert set(by_person) == {"subject01"}
    merged = by_person["subject01"]
    assert merged["start"] == pytest.approx(0, abs=0.15)
    assert merged["end"] == pytest.approx(4.4, abs=0.25)
    other = next(t for t in tracks if t is not merged)
    assert other["decision"] == "no_match" and other["start"] == pytest.approx(1.5, abs=0.15)


def test_a_video_without_faces_is_reported(searched):
    obj = searched["noface.avi"]
    assert obj["tracks"] == [] and obj["frames_read"] == 20
    assert "no face found" in obj["error"]


def test_broken_and_truncated_videos_get_one_line_and_the_run_goes_on(dataset, clips, tmp_path):
    good = clips["enter"]
    data = clips["cut"].read_bytes()
    corrupt = tmp_path / "corrupt.mov"
    corrupt.write_bytes(data[:32] + bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8)))
    cut_short = tmp_path / "short.mp4"             # its index (at the end of an MP4) is missing
    cut_short.write_bytes(data[: len(data) // 2])
    half = tmp_path / "half.mkv"                   # Matroska: the first second still decodes
    half.write_bytes(good.read_bytes()[:6000])
    r = run_pof("search", dataset, corrupt, cut_short, half, good)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for broken in (corrupt, cut_short):
        hits = [x for x in lines if x.startswith(f"{broken}: ")]
        assert len(hits) == 1 and "not a readable video" in hits[0], lines
    hits = [x for x in lines if x.startswith(f"{half}: ")]
    assert len(hits) == 1 and "truncated" in hits[0], lines
    assert any(x.startswith(f"{good}: 00:04, 10 fps") for x in lines), lines
    assert any("possible match" in x for x in lines)
    r = run_pof("search", dataset, corrupt, "--json")
    assert r.returncode == 4
    obj = json.loads(r.stdout)
    assert obj["tracks"] == [] and "not a readable video" in obj["error"]


def test_a_folder_mixing_a_photo_and_a_clip(dataset, clips, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(YALE / "subject02.glasses", folder / "a_photo.gif")
    shutil.copy(clips["enter"], folder / "b_clip.bin")
    r = run_pof("search", dataset, folder, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    image, video = map(json.loads, r.stdout.splitlines())
    assert image["image"].endswith("a_photo.gif") and image["faces"][0]["candidates"][0]["person"] == "subject02"
    assert video["video"].endswith("b_clip.bin") and len(video["tracks"]) == 1
    r = run_pof("search", dataset, folder)
    assert r.returncode == 0
    assert "track  start  end" in r.stdout and "00:01  00:02" in r.stdout


def test_container_sniffing():
    from pof.video.reader import sniff
    assert sniff(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00") == "mp4"
    assert sniff(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00") == "mp4"
    assert sniff(b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81") == "matroska"
    assert sniff(b"RIFF\x00\x10\x00\x00AVI LIST") == "avi"
    assert sniff(b"RIFF\x00\x10\x00\x00WEBPVP8 ") is None
    assert sniff(b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00") is None     # a HEIC photo
    assert sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") is None
    assert sniff((YALE / "subject01.normal").read_bytes()[:16]) is None


def test_a_track_keeps_a_bounded_pool_spread_over_time(yale_faces):
    """A long track holds at most 2 x keep faces; the query takes keep of them over its span."""
    from pof.video.track import Tracker, select
    face = yale_faces[0][2]
    tracker = Tracker(8, lambda f: None, link=0.5, same=0.9)
    for i in range(500):
        f = type(face)(**{**face.__dict__, "quality": 0.5 + 0.4 * ((i * 7) % 11) / 10})
        tracker.update(i / 10, [f])
        assert len(tracker.open[0].pool) <= 16
    (track,) = tracker.finish()
    assert track.start == 0 and track.end == pytest.approx(49.9) and track.seen == 500
    chosen = select(track.pool, 8)
    times = [e[0] for e in chosen]
    assert len(chosen) == 8 and times == sorted(times)
    assert times[0] < 7 and times[-1] > 43         # spread over the track, not bunched


def test_a_single_poor_detection_is_no_track(yale_faces):
    """One detection on one frame that fails the quality gates is left out; a poor face seen
    on several detector frames stays a track (and is answered quality_too_low)."""
    from pof.video.track import Tracker
    a, b = yale_faces[0][2], yale_faces[9][2]
    tracker = Tracker(8, lambda f: "too small" if f is b or f.extra.get("poor") else None,
                      link=0.5, same=0.99)
    tracker.update(0.0, [a, b])
    tracker.cut()
    poor = [type(b)(**{**b.__dict__, "extra": {"poor": True}}) for _ in range(3)]
    for i, f in enumerate(poor):
        tracker.update(1.0 + i / 10, [f])
    tracks = tracker.finish()
    assert [(t.number, t.start, t.seen) for t in tracks] == [(1, 0.0, 1), (2, 1.0, 3)]


def test_a_portrait_phone_clip_is_turned_upright(dataset, tmp_path):
    clip = portrait_phone_clip(tmp_path / "phone.mp4", photo("subject01.glasses"))
    r = run_pof("search", dataset, clip, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (track,) = json.loads(r.stdout)["tracks"]
    assert track["decision"] == "match" and track["candidates"][0]["person"] == "subject01"
    x, y, w, h = track["box"]
    assert x + w <= 270 and y + h <= 480 and h > 100     # in the upright picture's pixels


def test_a_carried_box_keeps_moving_with_the_face(yale_faces):
    """Between detector frames a track's box moves on at its last velocity, so a face that
    pans fast still overlaps its own track."""
    from pof.video.track import Tracker, iou
    face = yale_faces[0][2]
    x, y, w, h = face.box
    tracker = Tracker(8, lambda f: None, link=0.5, same=0.99)
    tracker.update(0.0, [type(face)(**{**face.__dict__, "box": (x, y, w, h)})])
    tracker.update(0.1, [type(face)(**{**face.__dict__, "box": (x + 0.5 * w, y, w, h)})])
    (track,) = tracker.open
    assert track.velocity == pytest.approx((5 * w, 0))
    ahead = (x + 1.0 * w, y, w, h)                  # where the pan puts it at 0.2 s
    assert iou(track.box, ahead) < 0.34 < iou(track.predicted(0.2), ahead)
