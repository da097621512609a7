"""What a probe photo costs the server: the probe cache holds encoded bytes, not pixels, within
a byte budget; pixel budgets per user and across users; event uploads charged per file; one
pixel limit (the setting max_pixels); result images rendered once."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import threading

import numpy as np
import pytest
from PIL import Image

from pof.dataset.catalog import Catalog
from pof.stages.load import decode_image
from pof.web import imaging
from pof.web.state import Probe, WebConfig

from .conftest import YALE, noise_image
from .webkit import Session, TestClient, build_dataset, copy_dataset, token_for, two_face_photo, web_config

SCALE = 6          # the two-face photo (640 x 243) upscaled to 3840 x 1458, 5.6 MP


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("webprobes")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    small = two_face_photo(root / "two.jpg")
    img = Image.open(small)
    big = img.resize((img.width * SCALE, img.height * SCALE), Image.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    return {"ds": ds, "small": small.read_bytes(), "big": buf.getvalue(), "big_size": big.size,
            "tok": {n: {"Authorization": f"Bearer {token_for(ds, n)}"} for n in ("vera", "rita", "ada")}}


def _app(env, **settings):
    from pof.web.app import create_app
    cfg = web_config()
    for k, v in settings.items():
        setattr(cfg, k, v)
    app = create_app(env["ds"], cfg)
    return app, TestClient(app)


def _search(client, env, who="vera", data=None, name="two.jpg"):
    return client.post("/api/search", headers=env["tok"][who],
                       files={"image": (name, env["small"] if data is None else data, "image/jpeg")})


def _pixels(data: bytes) -> int:
    w, h = Image.open(io.BytesIO(data)).size
    return w * h


def test_probe_cache_holds_encoded_bytes_not_pixels(env):
    app, client = _app(env)
    r = _search(client, env, data=env["big"], name="big.jpg")
    assert r.status_code == 200, r.text
    assert [f["decision"] for f in r.json()["faces"]].count("match") >= 1
    state = app.state.web
    probe = state.probes.get(r.json()["probe"], "vera")
    for f in dataclasses.fields(Probe):
        assert not isinstance(getattr(probe, f.name), np.ndarray), f.name
    w, h = env["big_size"]
    assert probe.size == (w, h)
    assert probe.data == env["big"]
    # what is held: the upload, a 1600 px preview, crops and results; far below the pixels
    assert state.probes.nbytes == probe.nbytes < len(env["big"]) + 600_000
    assert state.probes.nbytes < w * h * 3 / 20
    shown = Image.open(io.BytesIO(probe.image))
    assert max(shown.size) == imaging.MAX_SIDE
    assert set(probe.crops) == {i for i, f in enumerate(probe.results) if f["decision"] == "match"}


def test_result_images_are_rendered_once(env, monkeypatch):
    app, client = _app(env)
    s = Session(app, env["ds"], "rita")
    r = s.post("/search", files={"image": ("big.jpg", env["big"], "image/jpeg")})
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    probe = app.state.web.probes.get(url.rsplit("/", 1)[1], "rita")
    matched = [i + 1 for i, f in enumerate(probe.results) if f["decision"] == "match"]
    other = [i + 1 for i, f in enumerate(probe.results) if f["decision"] != "match"]
    assert matched and other
    calls = {"shown": 0, "face_crop": 0}
    for name in calls:
        real = getattr(imaging, name)

        def counted(*args, _real=real, _name=name, **kw):
            calls[_name] += 1
            return _real(*args, **kw)
        monkeypatch.setattr(imaging, name, counted)
    page = s.get(url)
    assert page.status_code == 200 and f"{url}/image.jpg" in page.text
    first = s.get(f"{url}/image.jpg").content
    crop = s.get(f"{url}/faces/{matched[0]}.jpg").content
    for _ in range(3):
        assert s.get(f"{url}/image.jpg").content == first
        assert s.get(f"{url}/faces/{matched[0]}.jpg").content == crop
    assert calls == {"shown": 0, "face_crop": 0}
    assert Image.open(io.BytesIO(first)).format == "JPEG"
    assert s.get(f"{url}/faces/{other[0]}.jpg").status_code == 404
    # a reviewer marks the bystander as an officer: rendered again, once, and now shown
    assert s.post(f"{url}/faces/{other[0]}/officer").status_code == 303
    assert calls == {"shown": 1, "face_crop": len(matched) + 1}
    again = s.get(f"{url}/image.jpg").content
    assert again != first and s.get(f"{url}/image.jpg").content == again
    assert s.get(f"{url}/faces/{other[0]}.jpg").status_code == 200
    assert calls == {"shown": 1, "face_crop": len(matched) + 1}


def test_bystander_stays_blurred_in_the_shown_photo(env):
    """The bystander's face in the shown photo is smooth (blurred), the match's is not."""
    app, client = _app(env)
    r = _search(client, env, data=env["big"], name="big.jpg")
    probe = app.state.web.probes.get(r.json()["probe"], "vera")
    shown = np.asarray(Image.open(io.BytesIO(probe.image)).convert("L"), np.float32)
    scale = shown.shape[1] / env["big_size"][0]

    def detail(face):
        x, y, w, h = (int(v * scale) for v in face["box"])
        part = shown[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4]
        return float(np.abs(np.diff(part, axis=1)).mean())
    match = next(f for f in probe.results if f["decision"] == "match")
    bystander = next(f for f in probe.results if f["decision"] != "match")
    assert detail(bystander) < detail(match) / 2


def test_cache_evicts_oldest_by_bytes(env):
    app, client = _app(env)
    first = _search(client, env)
    one = app.state.web.probes.get(first.json()["probe"], "vera").nbytes
    app2, client2 = _app(env, probe_bytes=int(one * 2.5))
    tokens = [_search(client2, env).json()["probe"] for _ in range(3)]
    cache = app2.state.web.probes
    assert len(cache) == 2 and cache.nbytes <= int(one * 2.5)
    s = Session(app2, env["ds"], "vera")
    gone = s.get(f"/probes/{tokens[0]}")
    assert gone.status_code == 404 and "no longer held" in gone.text
    assert s.get(f"/probes/{tokens[1]}").status_code == 200
    assert s.get(f"/probes/{tokens[2]}").status_code == 200
    # a probe over the budget by itself is refused
    _, client3 = _app(env, probe_bytes=len(env["small"]))
    r = _search(client3, env)
    assert r.status_code == 413 and "MiB" in r.json()["error"]


def test_pixel_budget_per_user(env):
    px = _pixels(env["small"])
    _, client = _app(env, pixel_rate=(int(px * 1.5), 60.0))
    assert _search(client, env, "vera").status_code == 200
    r = _search(client, env, "vera")
    assert r.status_code == 429 and "wait" in r.json()["error"] and "MP" in r.json()["error"]
    assert _search(client, env, "rita").status_code == 200      # another user still searches


def test_pixels_in_flight_across_users(env):
    app, client = _app(env, busy_wait=0.3)
    budget = app.state.web.budget
    assert budget.total == 2 * app.state.web.max_pixels
    assert budget._take(budget.total)          # every pixel held, as by two large photos
    try:
        r = _search(client, env, "rita")
        assert r.status_code == 429 and "busy" in r.json()["error"]
    finally:
        budget.release(budget.total)
    assert _search(client, env, "rita").status_code == 200
    assert budget.used == 0
    # a photo whose header reads but whose data is cut short: its own error, the budget freed
    r = _search(client, env, "rita", data=env["big"][:3000], name="cut.jpg")
    assert r.status_code == 415 and "cut.jpg" in r.json()["error"], r.text
    assert budget.used == 0


def test_searcher_does_not_wait_for_the_models(env):
    app, client = _app(env)
    state = app.state.web
    assert _search(client, env).status_code == 200        # models loaded
    got = []
    with state._model_lock:                                 # a long analysis in progress
        t = threading.Thread(target=lambda: got.append(state.searcher({})))
        t.start()
        t.join(30)
    assert got, "the searcher waited for the analysis lock"


def test_event_loop_serves_while_a_photo_is_analysed(env):
    """A search waiting in its worker thread (the models busy) holds its pixels in the budget;
    meanwhile the app still answers other requests."""
    from pof.web.app import create_app
    app = create_app(env["ds"], web_config())
    state = app.state.web
    with TestClient(app) as client:                    # one event loop for every request
        assert _search(client, env).status_code == 200  # models loaded
        done = []
        with state._model_lock:                          # the models busy with another photo
            t = threading.Thread(target=lambda: done.append(_search(client, env, data=env["big"])))
            t.start()
            for _ in range(600):
                if state.budget.used:
                    break
                t.join(0.05)
            assert state.budget.used == _pixels(env["big"])
            assert client.get("/static/pof.css").status_code == 200
            assert client.get("/login").status_code == 200
            assert not done and state.budget.used
        t.join(60)
    assert done and done[0].status_code == 200 and state.budget.used == 0


def _upload(client, env, files, event="rally"):
    return client.post("/api/unknown/events", headers=env["tok"]["vera"], data={"event": event},
                       files=[("images", f) for f in files])


def _event_photos(env, event: int) -> list[str]:
    with Catalog(env["ds"]) as cat:
        return [r[0] for r in cat.db.execute("SELECT name FROM event_photos WHERE event_id = ?", (event,))]


def test_event_upload_charges_each_file_and_keeps_no_faceless_photo(env, tmp_path):
    noise = noise_image(tmp_path / "noise.png").read_bytes()
    files = [("a.jpg", env["small"], "image/jpeg"), ("noise.png", noise, "image/png"),
             ("b.jpg", env["small"], "image/jpeg")]
    _, client = _app(env)
    r = _upload(client, env, files)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["errors"] == [{"image": "noise.png", "reason": "no face found, not kept"}]
    assert sorted(_event_photos(env, body["event"])) == ["a.jpg", "b.jpg"]
    # one search counted per file: the third is over 2 a minute, the rest is kept
    _, client = _app(env, search_rate=(2, 60.0))
    body = _upload(client, env, [files[0], files[2], ("c.gif", (YALE / "subject02.happy").read_bytes(), "image/gif")]).json()
    assert [e["image"] for e in body["errors"]] == ["c.gif"] and "wait" in body["errors"][0]["reason"]
    assert sorted(_event_photos(env, body["event"])) == ["a.jpg", "b.jpg"]
    # each file charged its pixels
    px = _pixels(env["small"])
    _, client = _app(env, pixel_rate=(int(px * 2.5), 60.0))
    body = _upload(client, env, [files[0], files[2], ("c.jpg", env["small"], "image/jpeg")]).json()
    assert [e["image"] for e in body["errors"]] == ["c.jpg"] and "MP" in body["errors"][0]["reason"]
    assert body["photos"] == 2


def test_pixel_limit_is_the_setting_and_answers_413(env, monkeypatch):
    from pof.settings import defaults
    assert WebConfig().pixel_limit() == defaults()["max_pixels"] == 60_000_000
    monkeypatch.setenv("POF_MAX_PIXELS", "1000000")
    assert WebConfig().pixel_limit() == 1_000_000
    app, client = _app(env)
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1250)).save(buf, "PNG")          # 2.5 MP, all zero
    r = _search(client, env, data=buf.getvalue(), name="zero.png")
    assert r.status_code == 413
    assert "photo of 2.5 MP" in r.json()["error"] and "over the limit of 1 MP" in r.json()["error"]
    page = Session(app, env["ds"], "vera").post("/search", files={"image": ("zero.png", buf.getvalue(), "image/png")})
    assert page.status_code == 413 and "over the limit of 1 MP" in page.text
    assert _search(client, env).status_code == 200          # 0.16 MP passes
    files = [("zero.png", buf.getvalue(), "image/png"), ("a.jpg", env["small"], "image/jpeg")]
    body = _upload(client, env, files).json()
    assert body["photos"] == 1 and "over the limit of 1 MP" in body["errors"][0]["reason"]


def test_saved_case_photo_is_made_from_the_original_bytes(env):
    app, _ = _app(env)
    s = Session(app, env["ds"], "vera")
    r = s.post("/search", files={"image": ("big.jpg", env["big"], "image/jpeg")})
    url = r.headers["location"]
    r = s.post(f"{url}/save", {"title": "march"})
    assert r.status_code == 303, r.text
    with Catalog(env["ds"]) as cat:
        row = cat.db.execute("SELECT sha256, image FROM case_photos ORDER BY id DESC LIMIT 1").fetchone()
    assert row[0] == hashlib.sha256(env["big"]).hexdigest()
    # stored as before: the decoded upload, full size, re-encoded without metadata
    assert row[1] == imaging.encode_jpeg(decode_image(env["big"]).pixels, 95)
    assert Image.open(io.BytesIO(row[1])).size == env["big_size"]


def test_candidates_per_face_come_from_the_setting(env, monkeypatch):
    """The web app returns `top` candidates a face, read from the settings (POF_TOP), as the
    command line does; WebConfig.top overrides it."""
    _, client = _app(env, top=None)
    wide = max(len(f["candidates"]) for f in _search(client, env).json()["faces"])
    assert wide > 2
    monkeypatch.setenv("POF_TOP", "2")
    _, client = _app(env, top=None)
    assert max(len(f["candidates"]) for f in _search(client, env, who="rita").json()["faces"]) == 2
    _, client = _app(env, top=1)
    assert max(len(f["candidates"]) for f in _search(client, env, who="ada").json()["faces"]) == 1


def test_rate_limiter_forgets_keys_once_their_window_has_passed(monkeypatch):
    """One-off keys (each address or user name tried once) do not pile up for ever."""
    from pof.web import state
    clock = [1000.0]
    monkeypatch.setattr(state.time, "monotonic", lambda: clock[0])
    limiter = state.RateLimiter()
    for i in range(500):
        limiter.hit(f"login-ip:10.0.{i // 256}.{i % 256}", (10, 60.0), "tries")
    limiter.charge("pixels:vera", 5, (100, 60.0), "pixels")
    assert len(limiter) == 501
    clock[0] += 30                      # within the window: kept
    limiter.hit("login-ip:192.0.2.1", (10, 60.0), "tries")
    assert len(limiter) == 502
    clock[0] += 35                      # the first 501 are past every window: swept
    limiter.hit("login-ip:192.0.2.2", (10, 60.0), "tries")
    assert len(limiter) == 2
