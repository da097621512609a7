"""Clips in the web app: the search page and API take a short clip (by its bytes), within
the limits of the settings max_video_seconds and max_video_bytes, charged as the frames it
will analyse; the result shows one row per track with the frames its decision used, blurred
unless it is a match or a reviewer marks it as an officer. Real clips from the test photos,
the real models."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from pof.dataset.catalog import Catalog
from pof.runtime.jpeg import decode_jpeg

from .videokit import empty, pan, photo, write_clip
from .webkit import Session, TestClient, build_dataset, copy_dataset, token_for, web_config

TRACK_FIELDS = {"track", "start", "end", "frames_used", "best_frame_time", "box", "quality",
                "decision", "fpir", "threshold", "candidates"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("webvideo")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    known, unknown = photo("subject01.glasses"), photo("subject04.normal")
    clips = {
        # subject01 (enrolled) panning for 2.5 s, a cut, subject04 (not enrolled) for 2.5 s
        "two": write_clip(root / "two.mp4", itertools.chain(
            pan(known, 25), pan(unknown, 25, background=200, dx=-1, scale=0.8))).read_bytes(),
        "noface": write_clip(root / "noface.webm", empty(15), codec="libvpx").read_bytes(),
        # 7 s of nothing but a grey frame: over a limit of 5 s
        "long": write_clip(root / "long.mp4", empty(70)).read_bytes(),
    }
    from pof.web.app import create_app
    app = create_app(ds, web_config())
    tok = {n: {"Authorization": f"Bearer {token_for(ds, n)}"} for n in ("vera", "rita")}
    return {"ds": ds, "app": app, "api": TestClient(app), "clips": clips, "tok": tok}


def _search(env, clip: str | bytes, who: str = "vera", name: str = "clip.mp4", client=None):
    data = env["clips"][clip] if isinstance(clip, str) else clip
    return (client or env["api"]).post("/api/search", headers=env["tok"][who],
                                       files={"image": (name, data, "application/octet-stream")})


@pytest.fixture(scope="module")
def searched(env) -> dict:
    r = _search(env, "two", name="march 3.mp4")
    assert r.status_code == 200, r.text
    return r.json()


def test_api_answers_the_video_json_with_a_probe(searched):
    assert list(searched)[:7] == ["video", "duration", "fps", "frames_read", "frames_analysed",
                                  "error", "tracks"]
    assert searched["video"] == "march 3.mp4" and searched["error"] is None
    assert searched["frames_read"] == 50 and searched["probe"]
    first, second = searched["tracks"]
    assert set(first) == TRACK_FIELDS
    assert first["decision"] == "match" and first["candidates"][0]["person"] == "subject01"
    assert second["decision"] == "no_match" and second["start"] >= 2.4


def test_the_search_is_audited_and_the_clip_is_not_kept(env, searched):
    import hashlib
    with Catalog(env["ds"]) as cat:
        rows = cat.db.execute("SELECT detail FROM audit WHERE action = 'search' ORDER BY seq").fetchall()
    detail = json.loads(rows[-1][0])
    assert detail["image_sha256"] == hashlib.sha256(env["clips"]["two"]).hexdigest()
    assert detail["tracks"] == 2
    assert [t["decision"] for t in detail["results"]] == ["match", "no_match"]
    probe = env["app"].state.web.probes.get(searched["probe"], "vera")
    assert probe.data == b"" and probe.video is not None
    assert probe.nbytes > sum(len(e[1]) for f in probe.frames.values() for e in f) > 0


def test_frames_of_a_match_are_shown_and_a_bystander_blurred(env, searched):
    s = Session(env["app"], env["ds"], "vera")
    token = searched["probe"]
    page = s.get(f"/probes/{token}")
    assert page.status_code == 200
    assert "Track 1" in page.text and "Track 2" in page.text
    assert "00:00–00:02" in page.text and "00:02–00:04" in page.text
    probe = env["app"].state.web.probes.get(token, "vera")
    for n in (1, 2):
        k = len(probe.frames[n - 1])
        assert 1 <= k <= 8 and f"/probes/{token}/tracks/{n}/frames/{k}.jpg" in page.text
    match = s.get(f"/probes/{token}/tracks/1/frames/1.jpg")
    assert match.status_code == 200 and match.content == probe.frames[0][0][1]
    shown = s.get(f"/probes/{token}/tracks/2/frames/1.jpg")
    kept = decode_jpeg(probe.frames[1][0][1]).astype(float)
    sent = decode_jpeg(shown.content).astype(float)
    assert shown.status_code == 200 and sent.shape == kept.shape
    # blurred: the fine detail of the face is gone
    assert np.abs(np.diff(sent, axis=1)).mean() < 0.5 * np.abs(np.diff(kept, axis=1)).mean()
    assert s.get(f"/probes/{token}/faces/1.jpg").status_code == 200
    assert s.get(f"/probes/{token}/faces/2.jpg").status_code == 404
    assert s.get(f"/probes/{token}/tracks/2/frames/99.jpg").status_code == 404
    assert s.get(f"/probes/{token}/tracks/3/frames/1.jpg").status_code == 404
    # another user does not see it
    assert Session(env["app"], env["ds"], "rita").get(f"/probes/{token}/tracks/1/frames/1.jpg").status_code == 404


def test_a_viewer_cannot_unblur_a_track_a_reviewer_can(env):
    s_vera = Session(env["app"], env["ds"], "vera")
    r = s_vera.post("/search", files={"image": ("two.mp4", env["clips"]["two"], "video/mp4")})
    assert r.status_code == 303
    url = r.headers["location"]
    assert "Mark track" not in s_vera.get(url).text
    assert s_vera.post(f"{url}/faces/2/officer").status_code == 403
    # a reviewer's own search
    rita = Session(env["app"], env["ds"], "rita")
    r = rita.post("/search", files={"image": ("two.mp4", env["clips"]["two"], "video/mp4")})
    url = r.headers["location"]
    token = url.rsplit("/", 1)[1]
    assert "Mark track 2 as an officer" in rita.get(url).text
    assert rita.get(f"/probes/{token}/faces/2.jpg").status_code == 404
    assert rita.post(f"{url}/faces/2/officer").status_code == 303
    probe = env["app"].state.web.probes.get(token, "rita")
    assert rita.get(f"/probes/{token}/faces/2.jpg").status_code == 200
    assert rita.get(f"/probes/{token}/tracks/2/frames/1.jpg").content == probe.frames[1][0][1]


def test_a_clip_with_no_face_says_so(env):
    r = _search(env, "noface", name="empty.webm")
    assert r.status_code == 200
    body = r.json()
    assert body["tracks"] == [] and "no face found" in body["error"] and "empty.webm" in body["error"]
    assert "/tmp" not in body["error"]
    s = Session(env["app"], env["ds"], "vera")
    r = s.post("/search", files={"image": ("empty.webm", env["clips"]["noface"], "video/webm")})
    assert "No face found in this clip" in s.get(r.headers["location"]).text


def test_a_broken_clip_gets_a_clear_415(env):
    broken = env["clips"]["two"][:600]           # the container's start only
    r = _search(env, broken, name="cut short.mp4")
    assert r.status_code == 415 and "cut short.mp4" in r.json()["error"]
    assert "/tmp" not in r.json()["error"] and "Traceback" not in r.text
    s = Session(env["app"], env["ds"], "vera")
    page = s.post("/search", files={"image": ("cut short.mp4", broken, "video/mp4")})
    assert page.status_code == 415 and "Clip cannot be read" in page.text
    assert "the clip was not searched" in page.text


def test_a_clip_over_the_length_limit_gets_413(env, monkeypatch):
    monkeypatch.setenv("POF_MAX_VIDEO_SECONDS", "5")
    r = _search(env, "long", name="long.mp4")
    assert r.status_code == 413 and "over the limit of 5 s" in r.json()["error"]
    s = Session(env["app"], env["ds"], "vera")
    page = s.post("/search", files={"image": ("long.mp4", env["clips"]["long"], "video/mp4")})
    assert page.status_code == 413 and "over the limit of 5 s" in page.text and "the clip was not searched" in page.text


def test_a_clip_over_the_size_limit_gets_413(env, monkeypatch):
    monkeypatch.setenv("POF_MAX_VIDEO_BYTES", str(len(env["clips"]["two"]) - 1))
    r = _search(env, "two")
    assert r.status_code == 413 and "MiB" in r.json()["error"]
    # the guard gives an upload room for a clip of max_video_bytes (over a photo's 15 MiB)
    from pof.web.guard import Transport, body_limit
    monkeypatch.setenv("POF_MAX_VIDEO_BYTES", str(50 * 2**20))
    cfg = web_config()
    assert body_limit("/api/search", cfg, Transport()) == 50 * 2**20 + Transport().multipart_bytes
    photos = cfg.max_files * (cfg.max_upload_bytes + Transport().multipart_bytes)
    assert body_limit("/api/unknown/events", cfg, Transport()) == min(photos + 50 * 2**20,
                                                                      cfg.max_request_bytes)


def test_a_clip_with_frames_over_the_pixel_limit_gets_413(env):
    from pof.web.app import create_app
    cfg = web_config()
    cfg.max_pixels = 100_000                    # the clip's frames are 480 x 270
    r = _search(env, "two", client=TestClient(create_app(env["ds"], cfg)))
    assert r.status_code == 413 and "frames of 480 x 270" in r.json()["error"]


def test_a_clip_is_charged_the_frames_it_will_analyse(env):
    from pof.web.app import create_app
    cfg = web_config()
    # 50 frames at 10 fps, each analysed, of 480 x 270: 6.5 MP
    cfg.pixel_rate = (6_000_000, 60.0)
    client = TestClient(create_app(env["ds"], cfg))
    r = _search(env, "two", client=client)
    assert r.status_code == 413 and "50 frames" in r.json()["error"]
    cfg.pixel_rate = (10_000_000, 60.0)
    client = TestClient(create_app(env["ds"], cfg))
    assert _search(env, "two", client=client).status_code == 200
    r = _search(env, "two", client=client)             # the second does not fit the minute
    assert r.status_code == 429 and "wait" in r.json()["error"]


def test_a_clip_probe_cannot_be_saved_as_a_photo(env, searched):
    s = Session(env["app"], env["ds"], "vera")
    r = s.post(f"/probes/{searched['probe']}/save", {"case_id": "", "title": "x"})
    assert r.status_code == 400 and "clip" in r.text


def test_a_name_proposed_for_a_track_saves_its_best_frame(env):
    r = _search(env, "two", name="pier.mp4")
    token = r.json()["probe"]
    probe = env["app"].state.web.probes.get(token, "vera")
    hdr = env["tok"]["vera"]
    r = env["api"].post("/api/identifications", headers=hdr, json={
        "probe": token, "face": 1, "person": "subject01", "note": "same glasses and hairline",
        "case_title": "pier"})
    assert r.status_code == 201, r.text
    ident = r.json()
    assert ident["search_decision"] == "match" and ident["face_index"] == 0
    with Catalog(env["ds"]) as cat:
        photo = cat.db.execute("SELECT name, sha256, image, faces FROM case_photos WHERE id = ?",
                               (ident["photo_id"],)).fetchone()
        rows = cat.db.execute("SELECT action, detail FROM audit ORDER BY seq DESC LIMIT 2").fetchall()
    assert photo["name"] == "pier.mp4 00:00-00:02"
    assert photo["image"] == probe.frames[0][[abs(f[0] - probe.results[0]["best_frame_time"])
                                              for f in probe.frames[0]].index(0.0)][1]
    face = json.loads(photo["faces"])[0]
    assert face["track"] == 1 and face["decision"] == "match"
    x, y, w, h = face["box"]
    crop = decode_jpeg(photo["image"])
    assert 0 <= x < x + w <= crop.shape[1] + 1 and 0 <= y < y + h <= crop.shape[0] + 1
    detail = {a: json.loads(d) for a, d in rows}
    import hashlib
    seen = detail["propose"]["frames_seen"]
    assert detail["propose"]["track"] == 1 and len(seen) == len(probe.frames[0])
    assert seen[0]["sha256"] == hashlib.sha256(probe.frames[0][0][1]).hexdigest()
    # a second name for the same track goes to the same case photo
    r = env["api"].post("/api/identifications", headers=hdr, json={
        "probe": token, "face": 1, "person": "subject02", "note": "or him"})
    assert r.status_code == 201 and r.json()["photo_id"] == ident["photo_id"]
    assert env["api"].post("/api/identifications", headers=hdr, json={
        "probe": token, "face": 3, "person": "subject02", "note": "x"}).status_code == 404
    # the page offers it
    s = Session(env["app"], env["ds"], "vera")
    page = s.get(f"/probes/{token}").text
    assert 'name="probe" value="' + token + '"' in page and "Propose subject01" in page


def test_an_event_clip_gives_one_unknown_face_per_track(env):
    from .conftest import YALE
    hdr = env["tok"]["vera"]
    r = env["api"].post("/api/unknown/events", headers=hdr, data={"event": "march 3, pier"}, files=[
        ("images", ("pier.mp4", env["clips"]["two"], "video/mp4")),
        ("images", ("sad.gif", (YALE / "subject04.sad").read_bytes(), "image/gif")),
        ("images", ("cut.mp4", env["clips"]["two"][:600], "video/mp4")),
        ("images", ("empty.webm", env["clips"]["noface"], "video/webm"))])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["photos"] == 3 and body["faces"] == 3       # two tracks and one photo face
    errors = {e["image"]: e["reason"] for e in body["errors"]}
    assert set(errors) == {"cut.mp4", "empty.webm"} and "no face found" in errors["empty.webm"]
    assert "/tmp" not in " ".join(errors.values())
    with Catalog(env["ds"]) as cat:
        rows = cat.db.execute(
            "SELECT f.id, f.group_id, f.track_start, f.track_end, f.descriptor, f.box, p.name, p.image"
            " FROM unknown_faces f JOIN event_photos p ON p.id = f.photo_id JOIN events e"
            " ON e.id = p.event_id WHERE e.name = 'march 3, pier' ORDER BY f.id").fetchall()
    clip_rows = [r for r in rows if r["track_start"] is not None]
    assert [r["name"] for r in clip_rows] == ["pier.mp4 00:00-00:02", "pier.mp4 00:02-00:04"]
    assert clip_rows[0]["track_end"] < clip_rows[1]["track_start"]
    for r in clip_rows:
        d = np.frombuffer(r["descriptor"], np.float32)
        assert abs(float(np.linalg.norm(d)) - 1.0) < 1e-3          # the track's template
        frame = decode_jpeg(r["image"])                              # its best frame, whole
        assert frame.shape == (270, 480, 3)
        x, y, w, h = json.loads(r["box"])
        assert 0 <= x and x + w <= 480 + 1 and 0 <= y and y + h <= 270 + 1
    photo_row = next(r for r in rows if r["track_start"] is None)
    # subject04's photo and subject04's track are one unknown person
    assert photo_row["group_id"] == clip_rows[1]["group_id"] != clip_rows[0]["group_id"]
    s = Session(env["app"], env["ds"], "vera")
    page = s.get(f"/unknown/groups/{clip_rows[1]['group_id']}")
    assert "clip pier.mp4, <span class=\"track-span\">seen 00:02–00:04</span>" in page.text and "photo sad.gif" in page.text
    assert s.get(f"/unknown/faces/{clip_rows[1]['id']}.jpg").status_code == 200
    assert s.get(f"/unknown/faces/{clip_rows[1]['id']}/photo.jpg").status_code == 200


def test_an_older_catalog_gains_the_track_columns(tmp_path):
    import sqlite3

    from pof.dataset import schema
    from pof.dataset.catalog import CATALOG_NAME
    db = sqlite3.connect(tmp_path / CATALOG_NAME)
    db.executescript(schema.TABLES["catalog"])
    db.executescript(schema.TABLES["unknown"])             # as version 2 created it
    db.execute("INSERT INTO meta VALUES ('schema', '2')")
    db.commit()
    assert "track_start" not in {r[1] for r in db.execute("PRAGMA table_info(unknown_faces)")}
    db.close()
    with Catalog(tmp_path) as cat:
        columns = {r[1] for r in cat.db.execute("PRAGMA table_info(unknown_faces)")}
        assert {"track_start", "track_end"} <= columns
        assert cat.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "3"


def test_a_track_frame_shows_one_person(env):
    """Another face of the frame is filled in a face's crop and blurred in its best frame."""
    from pof.video.track import Tracker, face_jpeg
    from .videokit import frame
    web = env["app"].state.web
    a, b = photo("subject01.glasses"), photo("subject04.normal")
    px = np.concatenate([frame((320, 243), 90, a), frame((320, 243), 90, b)], axis=1)
    faces = sorted(web.analyze(px), key=lambda f: f.box[0])
    assert len(faces) == 2
    # a neighbour reaching into the crop: filled with one colour
    x, y, w, h = faces[0].box
    near = (x + 0.9 * w, y, w, h)
    jpeg, inside = face_jpeg(px, faces[0].box, 1000, [near])
    crop = decode_jpeg(jpeg).astype(float)
    left = int(inside[0] + 0.9 * w - 0.25 * w) + 3                  # where the neighbour starts
    assert crop[:, left:].std(axis=(0, 1)).max() < 3
    plain = decode_jpeg(face_jpeg(px, faces[0].box, 1000)[0]).astype(float)
    assert plain[:, left:].std(axis=(0, 1)).max() > 10
    # the best frame kept for an event: the other face blurred, this one as it was
    tracker = Tracker(8, lambda f: None, link=0.5, same=0.99, crop_side=160, best_frame=True)
    tracker.update(0.0, faces, px)
    tracks = sorted(tracker.finish(), key=lambda t: t.best[3][0])
    best = decode_jpeg(tracks[0].best[2]).astype(float)

    def detail(img, box):
        x, y, w, h = (int(v) for v in box)
        return np.abs(np.diff(img[y:y + h, x:x + w], axis=1)).mean()
    assert detail(best, faces[1].box) < 0.4 * detail(px.astype(float), faces[1].box)
    assert detail(best, faces[0].box) > 0.8 * detail(px.astype(float), faces[0].box)


def test_marking_a_saved_track_as_an_officer_marks_its_case_photo(env):
    rita = Session(env["app"], env["ds"], "rita")
    r = rita.post("/search", files={"image": ("dock.mp4", env["clips"]["two"], "video/mp4")})
    url = r.headers["location"]
    token = url.rsplit("/", 1)[1]
    r = rita.post("/identifications", {"probe": token, "face": "2", "person": "subject02",
                                       "note": "badge 22 in the frames", "case_title": "dock"})
    assert r.status_code == 303, r.text
    ident = int(r.headers["location"].rsplit("/", 1)[1])
    with Catalog(env["ds"]) as cat:
        pid, name, officer = cat.db.execute(
            "SELECT p.id, p.name, p.officer FROM identifications i JOIN case_photos p"
            " ON p.id = i.photo_id WHERE i.id = ?", (ident,)).fetchone()
    assert name == "dock.mp4 00:02-00:04" and json.loads(officer) == []
    assert rita.post(f"{url}/faces/2/officer").status_code == 303
    with Catalog(env["ds"]) as cat:
        officer = cat.db.execute("SELECT officer FROM case_photos WHERE id = ?", (pid,)).fetchone()[0]
    assert json.loads(officer) == [0]
