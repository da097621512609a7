"""Pages a person reads: faces numbered in reading order (page, API), error pages that lead
back to the form, the audit log as text, the search form's two photo inputs, and the admin
page's account of how many reviewers a confirmation needs."""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pof.dataset.catalog import Catalog

from .conftest import YALE
from .webkit import Session, TestClient, build_dataset, copy_dataset, token_for, web_config

# Four real faces pasted on a grey canvas, each tinted so that a crop tells which one it is:
# (image, top-left corner, tint). Listed in reading order: top row (the right face a little
# higher than the left one), then bottom row. The detector finds them in another order.
FOUR = [("subject02.glasses", (20, 40), (1.0, 0.5, 0.5)),     # red, top left
        ("subject01.glasses", (580, 20), (0.5, 1.0, 0.5)),    # green, top right
        ("subject04.normal", (10, 300), (0.5, 0.5, 1.0)),     # blue, bottom left
        ("subject03.glasses", (300, 290), (1.0, 1.0, 0.4))]   # yellow, bottom right
YALE_SIZE = (320, 243)


def four_face_photo(path: Path) -> Path:
    canvas = np.full((560, 900, 3), 200, np.float32)
    for name, (x, y), tint in FOUR:
        grey = np.asarray(Image.open(YALE / name).convert("L"), np.float32)
        h, w = grey.shape
        canvas[y:y + h, x:x + w] = grey[..., None] * np.array(tint, np.float32)
    Image.fromarray(canvas.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=95)
    return path


def pasted_at(box) -> int:
    """Which of FOUR a face box (x, y, w, h) lies in (by its centre)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    inside = [i for i, (_, (x, y), _) in enumerate(FOUR)
              if x <= cx < x + YALE_SIZE[0] and y <= cy < y + YALE_SIZE[1]]
    assert len(inside) == 1, (box, inside)
    return inside[0]


def tint_of(jpeg: bytes) -> int:
    """Which of FOUR's tints a face crop has (nearest mean colour, brightness aside)."""
    mean = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32).reshape(-1, 3).mean(0)
    shade = mean / mean.max()
    return int(np.argmin([np.abs(shade - np.array(t) / max(t)).sum() for _, _, t in FOUR]))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from pof.web.app import create_app
    root = tmp_path_factory.mktemp("webpages")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    app = create_app(ds, web_config())
    return {"ds": ds, "app": app, "root": root, "photo": four_face_photo(root / "four.jpg"),
            "vera": {"Authorization": f"Bearer {token_for(ds, 'vera')}"}}


def _app(env, **settings):
    from pof.web.app import create_app
    cfg = web_config()
    for k, v in settings.items():
        setattr(cfg, k, v)
    return create_app(env["ds"], cfg)


def _png(size) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, "PNG")
    return buf.getvalue()


# ---- faces in reading order ----------------------------------------------------------------

def test_detector_finds_the_four_faces_out_of_reading_order(env, pipeline):
    faces = pipeline.analyze(np.asarray(Image.open(env["photo"]).convert("RGB")), with_crops=False)
    found = [pasted_at(f.box) for f in faces]
    assert sorted(found) == [0, 1, 2, 3]
    assert found != [0, 1, 2, 3]          # else the tests below could not tell the orders apart


def test_api_lists_faces_in_reading_order(env):
    api = TestClient(env["app"])
    r = api.post("/api/search", headers=env["vera"],
                 files={"image": ("four.jpg", env["photo"].read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert [pasted_at(f["box"]) for f in r.json()["faces"]] == [0, 1, 2, 3]


def test_page_numbers_faces_in_reading_order(env):
    rita = Session(env["app"], env["ds"], "rita")
    r = rita.post("/search", files={"image": ("four.jpg", env["photo"].read_bytes(), "image/jpeg")})
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = rita.get(url).text
    assert [int(n) for n in re.findall(r'id="face-(\d)"', page)] == [1, 2, 3, 4]
    for n in (1, 2, 3, 4):            # unblur each face, then see whose crop face n is
        assert rita.post(f"{url}/faces/{n}/officer").status_code == 303
    crops = [rita.get(f"{url}/faces/{n}.jpg") for n in (1, 2, 3, 4)]
    assert all(c.status_code == 200 for c in crops)
    assert [tint_of(c.content) for c in crops] == [0, 1, 2, 3]


# ---- error pages lead back ---------------------------------------------------------------

def _back(html: str) -> str | None:
    m = re.search(r'<a href="([^"]*)" id="back">', html)
    return m.group(1) if m else None


def test_confirm_without_evidence_links_back_to_the_identification(env):
    api = TestClient(env["app"])
    found = api.post("/api/search", headers=env["vera"],
                     files={"image": ("four.jpg", env["photo"].read_bytes(), "image/jpeg")}).json()
    r = api.post("/api/identifications", headers=env["vera"], json={
        "probe": found["probe"], "face": 1, "person": "subject02", "note": "same glasses",
        "case_title": "pages"})
    assert r.status_code == 201, r.text
    ident = r.json()["id"]
    page = Session(env["app"], env["ds"], "rita").post(f"/identifications/{ident}/confirm",
                                                       {"note": "looks the same"})
    assert page.status_code == 400
    assert "tick the images you compared" in page.text
    assert _back(page.text) == f"/identifications/{ident}"
    assert "Back to the identification" in page.text


def test_photo_over_the_pixel_limit_puts_the_user_back_on_the_form(env):
    app = _app(env, max_pixels=1_000_000)
    page = Session(app, env["ds"], "vera").post(
        "/search", {"agency": ""}, files={"image": ("big.png", _png((2000, 1250)), "image/png")})
    assert page.status_code == 413
    assert 'action="/search"' in page.text and 'id="error"' in page.text
    assert "photo of 2.5 MP" in page.text and "over the limit of 1 MP" in page.text
    assert "Downscale the photo" in page.text
    assert "Photos up to 1 megapixels" in page.text


def test_too_many_searches_puts_the_user_back_on_the_form(env):
    app = _app(env, search_rate=(1, 60.0))
    vera = Session(app, env["ds"], "vera")
    photo = env["photo"].read_bytes()
    assert vera.post("/search", files={"image": ("a.jpg", photo, "image/jpeg")}).status_code == 303
    page = vera.post("/search", files={"image": ("a.jpg", photo, "image/jpeg")})
    assert page.status_code == 429
    assert 'action="/search"' in page.text and "too many searches" in page.text
    assert "search again" in page.text


def test_not_an_image_only_for_files_that_are_not_images(env):
    vera = Session(env["app"], env["ds"], "vera")
    text = vera.post("/search", files={"image": ("notes.jpg", b"plain words, no pixels", "image/jpeg")})
    assert text.status_code == 415 and "not an image" in text.text and 'action="/search"' in text.text
    broken = _png((400, 300))[:200]              # a PNG header, its pixel data cut off
    page = vera.post("/search", files={"image": ("cut.png", broken, "image/png")})
    assert page.status_code == 415 and "not an image" not in page.text.lower()
    assert "broken or truncated" in page.text
    tiny = vera.post("/search", files={"image": ("tiny.png", _png((4, 4)), "image/png")})
    assert tiny.status_code == 400 and "too small to hold a face" in tiny.text
    assert "not an image" not in tiny.text.lower()


def test_camera_input_is_the_one_used_when_no_file_is_chosen(env):
    vera = Session(env["app"], env["ds"], "vera")
    r = vera.post("/search", files=[("image", ("", b"", "application/octet-stream")),
                                    ("camera", ("cam.jpg", env["photo"].read_bytes(), "image/jpeg"))])
    assert r.status_code == 303 and r.headers["location"].startswith("/probes/")
    none = vera.post("/search", files=[("image", ("", b"", "application/octet-stream"))])
    assert none.status_code == 400 and "choose a photo" in none.text and 'action="/search"' in none.text


def test_form_errors_elsewhere_link_back_to_their_page(env):
    ada = Session(env["app"], env["ds"], "ada")
    page = ada.post("/admin/settings", {"required_confirmations": "0"})
    assert page.status_code == 400 and _back(page.text) == "/admin#review-settings"
    lift = ada.post("/admin/exclusions/999/lift", {"reason": "r"})
    assert lift.status_code >= 400 and _back(lift.text) == "/admin#exclusions"
    probe = ada.post("/probes/no-such-token/faces/1/officer")
    assert probe.status_code == 404 and _back(probe.text) == "/probes/no-such-token"


def test_back_link_from_the_referer_stays_on_this_site(env):
    vera = Session(env["app"], env["ds"], "vera")
    bad = {"person": "", "note": "n", "probe": "gone"}          # a proposal with no probe held

    def back(referer: str | None) -> str | None:
        headers = {"Referer": referer} if referer is not None else {}
        r = vera.post("/identifications", bad, headers=headers)
        assert r.status_code >= 400
        return _back(r.text)

    assert back("http://testserver/probes/abc_DEF-1") == "/probes/abc_DEF-1"
    assert back("http://testserver/cases/3?x=1#f") == "/cases/3"
    for hostile in ("http://evil.example/probes/x", "https://testserver.evil.example/cases/1",
                    "http://testserver//evil.example/", "http://testserver/\\evil.example",
                    "javascript:alert(1)", "", None):
        assert back(hostile) == "/search", hostile
    assert _back(vera.get("/probes/no-such-token").text) is None       # a page, not a form


# ---- audit log, search form, admin page ----------------------------------------------------

def test_audit_page_shows_details_as_text(env):
    ada = Session(env["app"], env["ds"], "ada")
    assert ada.post("/admin/exclusions", {"person": "Joseph_Biden",
                                          "reason": "<b>order</b> {7}"}).status_code == 303
    TestClient(env["app"]).post("/api/search", headers=env["vera"],
                                files={"image": ("four.jpg", env["photo"].read_bytes(), "image/jpeg")})
    page = ada.get("/admin/audit").text
    cells = re.findall(r'<td class="detail">(.*?)</td>', page, re.S)
    assert cells
    for cell in cells:
        assert '{"' not in cell and "{&#34;" not in cell and '":' not in cell
    assert "reason:</span> <span>&lt;b&gt;order&lt;/b&gt; {7}" in page
    assert "<b>order</b>" not in page
    search = next(c for c in cells if "image_sha256:" in c)
    assert "faces:</span> <span class=\"mono\">4<" in search and "decision: " in search
    stamps = re.findall(r'<td data-label="When" class="nowrap"><small>(.*?)</small>', page)
    assert stamps and all(" " not in s and re.fullmatch(r"\d{4}-\d\d-\d\d\xa0\d\d:\d\d:\d\d", s)
                          for s in stamps)
    assert ada.post("/admin/exclusions/1/lift", {"reason": "lifted"}).status_code == 303


def test_search_page_offers_a_saved_photo_and_the_camera(env):
    page = Session(env["app"], env["ds"], "vera").get("/search").text
    inputs = re.findall(r"<input type=\"file\"[^>]*>", page)
    assert any('name="image"' in i and "capture" not in i for i in inputs)
    assert any("capture=" in i and 'name="image"' not in i for i in inputs)
    assert "Take a photo" in page


def test_admin_page_states_reviewers_needed_and_the_team_check(env, tmp_path):
    from pof.casework import review
    from pof.casework.accounts import Accounts, fast_hasher
    from pof.web.app import create_app
    ada = Session(env["app"], env["ds"], "ada")
    page = ada.get("/admin").text
    assert "Reviewers needed besides the proposer (at least 1; with 1, each confirmation is " \
           "marked 'confirmed by a single reviewer')" in page
    assert 'id="team-check"' not in page             # rita, rob and ada: enough for 2
    small = tmp_path / "small"
    shutil.copytree(env["ds"], small)
    with Catalog(small) as cat:
        Accounts(cat.db, fast_hasher()).disable("rob")          # rita and ada are left
        warning = review.team_check(cat.db)
    assert warning
    page = Session(create_app(small, web_config()), small, "ada").get("/admin").text
    shown = re.search(r'<p class="alert" id="team-check">(.*?)</p>', page, re.S)
    assert shown and "cannot be confirmed" in shown.group(1)


def test_back_link_of_each_form_path():
    from starlette.requests import Request

    from pof.web.errors import back_link

    def back(method, path):
        return back_link(Request({"type": "http", "method": method, "path": path, "headers": [],
                                  "query_string": b"", "scheme": "http", "server": ("testserver", 80)}))

    assert back("POST", "/login") == ("/login", "Back to the sign-in page")
    assert back("POST", "/search")[0] == "/search"
    assert back("POST", "/identifications/12/correct")[0] == "/identifications/12"
    assert back("POST", "/cases/4/title")[0] == "/cases/4"
    assert back("POST", "/unknown/upload")[0] == "/unknown"
    assert back("POST", "/admin/tokens/abc/revoke")[0] == "/admin#tokens"
    assert back("POST", "/probes/a.b/faces/1/officer")[0] == "/search"      # not a token
    assert back("GET", "/search") is None
