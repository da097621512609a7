"""pof cluster with videos: each face track of a clip is one face, grouped with the photos."""
from __future__ import annotations

import itertools
import json
import shutil

import numpy as np

from pof.video.cluster import clip_time, overlap_keys, track_name
from pof.video.track import Track

from .conftest import YALE, run_pof
from .test_video_redact import two_people
from .videokit import pan, photo, write_clip


def test_cluster_groups_video_tracks_with_photos_and_reports_a_broken_clip(tmp_path):
    src = tmp_path / "event"
    (src / "clips").mkdir(parents=True)
    for name in ("subject01.normal", "subject01.happy", "subject04.normal", "subject04.sad"):
        shutil.copy(YALE / name, src / name)
    # subject01 for 2.5 s, a cut, subject04 for 5 s; named without a suffix: known by its bytes
    clip = write_clip(src / "clips" / "street", itertools.chain(
        pan(photo("subject01.glasses"), 25),
        pan(photo("subject04.normal"), 50, background=200, dx=-1, scale=0.8, zoom=0.004)),
        fmt="mp4")
    broken = src / "clips" / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[:32] + bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8)))
    r = run_pof("cluster", src, "--out", tmp_path / "out", "--json")
    assert r.returncode == 3, r.stderr                     # the broken clip failed, the rest did not
    assert "Traceback" not in r.stdout + r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0] and "not a readable video" in errors[0]
    summary = json.loads(r.stdout)
    assert summary["faces"] == 6 and summary["images"] == 6
    tracks = summary["tracks"]
    assert [t["track"] for t in tracks] == [1, 2] and {t["video"] for t in tracks} == {str(clip)}
    first, second = tracks
    assert first["start"] < 0.5 and 2.0 <= first["end"] < 2.5 <= second["start"] and second["end"] > 7
    assert first["name"] == "street 00:00-00:02" and second["name"].startswith("street 00:02-00:0")
    doc = json.loads((tmp_path / "out" / "clusters.json").read_text())
    group = {f["image"].rsplit("/", 1)[1] + str(f.get("track", "")): f["group"] for f in doc["faces"]}
    assert group["street1"] == group["subject01.normal"] == group["subject01.happy"]
    assert group["street2"] == group["subject04.normal"] == group["subject04.sad"] != group["street1"]
    rows = [f for f in doc["faces"] if "track" in f]
    assert [(f["start"], f["end"]) for f in rows] == [(t["start"], t["end"]) for t in tracks]
    assert all((tmp_path / "out" / f["crop"]).stat().st_size > 1000 for f in doc["faces"])
    assert [e["image"] for e in doc["errors"]] == [str(broken)]
    csv = (tmp_path / "out" / "clusters.csv").read_text().splitlines()
    assert csv[0].endswith(",start,end") and len(csv) == 7
    text = run_pof("cluster", src / "clips", "--out", tmp_path / "out2", "--quiet")
    assert text.returncode == 3 and "Traceback" not in text.stderr
    assert "  street 00:00-00:02: group " in text.stdout


def test_two_people_on_screen_at_once_are_two_groups(tmp_path):
    clip = write_clip(tmp_path / "march.mp4", two_people(30))
    r = run_pof("cluster", clip, YALE / "subject02.normal", "--out", tmp_path / "out", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert len(summary["tracks"]) == 2 and summary["groups"] == 2
    doc = json.loads((tmp_path / "out" / "clusters.json").read_text())
    by = {f.get("track", f["image"].rsplit("/", 1)[1]): f["group"] for f in doc["faces"]}
    assert by[1] != by[2] and by["subject02.normal"] in (by[1], by[2])


def test_overlapping_tracks_share_a_key_and_the_rest_do_not():
    def track(n, start, end):
        return Track(n, start, end, (0, 0, 1, 1), np.zeros(4))
    tracks = [track(1, 0.0, 3.0), track(2, 1.0, 2.0), track(3, 2.5, 5.0), track(4, 6.0, 7.0)]
    keys = overlap_keys("v", tracks)
    share = {(i + 1, j + 1) for i in range(4) for j in range(i + 1, 4) if keys[i] & keys[j]}
    assert share == {(1, 2), (1, 3)}


def test_track_names():
    assert clip_time(12.9) == "00:12" and clip_time(3725) == "1:02:05" and clip_time(-1) == "00:00"
    assert track_name("/x/clip.mp4", 12.3, 19.6) == "clip.mp4 00:12-00:19"
