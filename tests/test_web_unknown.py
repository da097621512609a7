"""Unknown faces: event uploads grouped and linked across events, merge and split, names
proposed and confirmed, and a confirmed group enrolled with its provenance."""
from __future__ import annotations

import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from pof.web import imaging

from .conftest import YALE
from .webkit import Session, TestClient, build_dataset, copy_dataset, token_for, two_face_photo, web_config


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from pof.web.app import create_app
    root = tmp_path_factory.mktemp("webunknown")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    app = create_app(ds, web_config())
    return {"ds": ds, "app": app, "api": TestClient(app), "photo": two_face_photo(root / "two.jpg"),
            "tok": {n: {"Authorization": f"Bearer {token_for(ds, n)}"} for n in ("vera", "rita", "rob", "ada")}}


def _upload(env, event, files):
    return env["api"].post("/api/unknown/events", headers=env["tok"]["vera"], data={"event": event},
                           files=[("images", f) for f in files])


def test_unknown_faces_flow(env):
    a = _upload(env, "march 1", [("two.jpg", env["photo"].read_bytes(), "image/jpeg")]).json()
    assert a["faces"] == 2 and a["new_groups"] == 2
    b = _upload(env, "march 8", [("sad.gif", (YALE / "subject04.sad").read_bytes(), "image/gif"),
                                 ("junk.jpg", b"junk", "image/jpeg")]).json()
    assert b["faces"] == 1 and b["new_groups"] == 0 and len(b["linked_groups"]) == 1
    assert b["errors"][0]["image"] == "junk.jpg"
    gid = b["linked_groups"][0]
    g = env["api"].get(f"/api/unknown/groups/{gid}", headers=env["tok"]["vera"]).json()
    assert g["events"] == ["march 1", "march 8"] and len(g["faces"]) == 2

    rita = Session(env["app"], env["ds"], "rita")
    vera = Session(env["app"], env["ds"], "vera")
    blurred = vera.get(f"/unknown/faces/{g['faces'][0]['id']}.jpg").content
    r = rita.post(f"/unknown/groups/{gid}/split", {"faces": str(g["faces"][1]["id"])})
    assert r.status_code == 303
    new = int(r.headers["location"].rsplit("/", 1)[1])
    assert rita.post(f"/unknown/groups/{new}/merge", {"into": str(gid)}).headers["location"] == f"/unknown/groups/{gid}"
    assert vera.get(f"/unknown/groups/{new}").headers["location"] == f"/unknown/groups/{gid}"
    assert rita.post(f"/unknown/groups/{gid}/officer").status_code == 303
    assert vera.get(f"/unknown/faces/{g['faces'][0]['id']}.jpg").content != blurred

    r = vera.post(f"/unknown/groups/{gid}/propose", {"person": "Officer Four", "note": "badge 4 seen"})
    ident = int(r.headers["location"].rsplit("/", 1)[1])
    admin = Session(env["app"], env["ds"], "ada")
    assert admin.post(f"/unknown/groups/{gid}/enrol").status_code == 409      # not confirmed yet
    for who in ("rita", "rob"):
        s = Session(env["app"], env["ds"], who)
        assert s.post(f"/identifications/{ident}/confirm", {"note": "same face", "evidence_seen": "group",
                                                            "other_evidence": "badge 4 seen in both photos"}).status_code == 303
    r = admin.post(f"/unknown/groups/{gid}/enrol", {"label": "Officer_Four"})
    assert r.status_code == 303 and r.headers["location"] == "/persons/Officer_Four"
    person = env["api"].get("/api/persons/Officer_Four", headers=env["tok"]["vera"]).json()
    assert len(person["images"]) == 2 and "march" in person["images"][0]["provenance"]["document"]
    assert "confirmed by rita, rob" in person["images"][0]["provenance"]["notes"]
    found = env["api"].post("/api/search", headers=env["tok"]["vera"], files={
        "image": ("n.gif", (YALE / "subject04.normal").read_bytes(), "image/gif")}).json()
    assert found["faces"][0]["candidates"][0]["person"] == "Officer_Four"
    assert admin.post(f"/unknown/groups/{gid}/enrol").status_code == 409      # only once


def _text(html: str) -> str:
    """A page's words, tags dropped and spaces folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


@pytest.fixture
def fresh(tmp_path, env):
    """A dataset of its own with one unknown person (subject04) seen at two events: beside
    subject01 in "march 1", alone in "march 8"."""
    from pof.web.app import create_app
    ds = copy_dataset(build_dataset(tmp_path / "build"), tmp_path / "ds")
    app = create_app(ds, web_config())
    x = {"ds": ds, "app": app, "api": TestClient(app), "photo": env["photo"],
         "tok": {n: {"Authorization": f"Bearer {token_for(ds, n)}"} for n in ("vera", "rita", "rob", "ada")}}
    assert _upload(x, "march 1", [("two.jpg", env["photo"].read_bytes(), "image/jpeg")]).status_code == 201
    b = _upload(x, "march 8", [("sad.gif", (YALE / "subject04.sad").read_bytes(), "image/gif")]).json()
    x["gid"] = b["linked_groups"][0]
    x["group"] = x["api"].get(f"/api/unknown/groups/{x['gid']}", headers=x["tok"]["vera"]).json()
    x["groups"] = x["api"].get("/api/unknown/groups", headers=x["tok"]["vera"]).json()
    return x


def _face_in(group: dict, photo: str) -> dict:
    return next(f for f in group["faces"] if f["photo"] == photo)


def _sharpness(px: np.ndarray, box) -> float:
    """Variance of the Laplacian inside a face box: high for a face, low once blurred."""
    x, y, w, h = (int(round(v)) for v in box)
    grey = cv2.cvtColor(np.ascontiguousarray(px[y:y + h, x:x + w]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_event_names_are_separated(fresh):
    g = next(g for g in fresh["groups"] if g["id"] == fresh["gid"])
    assert g["event_names"] == "march 1; march 8"
    page = _text(Session(fresh["app"], fresh["ds"], "vera").get("/unknown").text)
    assert "march 1; march 8" in page and "march 1,march 8" not in page


def test_the_event_photo_shows_where_a_face_was_seen(fresh):
    """The face boxed, the other face of the photo blurred; the face itself blurred too
    until its group is marked as an officer."""
    original = np.asarray(Image.open(fresh["photo"]).convert("RGB")).astype(np.float32)
    mine = _face_in(fresh["group"], "two.jpg")
    other_gid = next(g["id"] for g in fresh["groups"] if g["id"] != fresh["gid"])
    other = fresh["api"].get(f"/api/unknown/groups/{other_gid}", headers=fresh["tok"]["vera"]).json()["faces"][0]
    vera = Session(fresh["app"], fresh["ds"], "vera")

    def view():
        r = vera.get(f"/unknown/faces/{mine['id']}/photo.jpg")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        px = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        assert px.shape == original.shape               # a small photo is not scaled
        return px

    before = view()
    for box in (mine["box"], other["box"]):             # both faces blurred before the mark
        assert _sharpness(before, box) < 0.3 * _sharpness(original.astype(np.uint8), box)
    x, y, w, h = (int(round(v)) for v in mine["box"])
    pad = 2 * max(2, int(round(max(original.shape[:2]) / 300)))
    edge = before[y + h // 2, max(0, x - pad)].astype(int)      # the box's left side, mid-height
    assert abs(edge - np.array(imaging.CONTEXT_COLOUR)).max() < 60
    assert before[y + h // 2, max(0, x - pad)].tolist() != original[y + h // 2, max(0, x - pad)].astype(int).tolist()

    assert "faces stay blurred" in _text(vera.get(f"/unknown/groups/{fresh['gid']}").text)
    assert Session(fresh["app"], fresh["ds"], "rita").post(f"/unknown/groups/{fresh['gid']}/officer").status_code == 303
    after = view()
    inner = (slice(y + h // 4, y + 3 * h // 4), slice(x + w // 4, x + 3 * w // 4))
    assert np.abs(after[inner].astype(np.float32) - original[inner]).mean() < 6      # this face shown
    assert _sharpness(after, other["box"]) < 0.3 * _sharpness(original.astype(np.uint8), other["box"])
    page = _text(vera.get(f"/unknown/groups/{fresh['gid']}").text)
    assert "faces stay blurred" not in page and f"/unknown/faces/{mine['id']}/photo.jpg" in vera.get(
        f"/unknown/groups/{fresh['gid']}").text
    assert vera.get("/unknown/faces/999999/photo.jpg").status_code == 404


def test_a_group_is_named_from_the_evidence_shown_and_enrolled(fresh):
    gid, faces = fresh["gid"], fresh["group"]["faces"]
    app, ds = fresh["app"], fresh["ds"]
    vera, ada = Session(app, ds, "vera"), Session(app, ds, "ada")
    r = vera.post(f"/unknown/groups/{gid}/propose", {"person": "Jane Doe", "note": "name tag seen"})
    assert r.status_code == 303
    ident = int(r.headers["location"].rsplit("/", 1)[1])
    again = vera.post(f"/unknown/groups/{gid}/propose", {"person": "Jane Doe", "note": "again"})
    assert again.status_code == 303 and again.headers["location"] == f"/identifications/{ident}?duplicate=1"

    ids = fresh["api"].get(f"/api/identifications/{ident}", headers=fresh["tok"]["vera"]).json()["evidence_ids"]
    face_ids = [f"face:{f['id']}" for f in faces]
    photo_ids = list(dict.fromkeys(f"photo:{f['photo_id']}" for f in faces))
    assert set(face_ids + photo_ids) <= set(ids)
    rita = Session(app, ds, "rita")
    html = rita.get(f"/identifications/{ident}").text
    for e in face_ids + photo_ids:                       # each is a checkbox of the confirm form
        assert f'name="evidence_seen" value="{e}"' in html
    for f in faces:
        assert f"/unknown/faces/{f['id']}/photo.jpg" in html and f"/unknown/faces/{f['id']}.jpg" in html
    words = _text(html)
    assert "march 1" in words and "march 8" in words and "not in the gallery" in words
    assert "gallery image face:" not in words and "/images/face:" not in html

    assert rita.post(f"/identifications/{ident}/confirm", {"note": "same face", "evidence_seen": "face:999999",
                                                           "other_evidence": "name tag seen in both photos"}).status_code == 400
    for who in ("rob", "rita"):                          # not in alphabetical order
        s = Session(app, ds, who)
        r = s.client.post(f"/identifications/{ident}/confirm", data={
            "csrf": s.csrf, "note": "same face and name tag", "evidence_seen": [face_ids[0], face_ids[1], photo_ids[0]],
            "other_evidence": "name tag seen in both photos"})
        assert r.status_code == 303, r.text
    item = fresh["api"].get(f"/api/identifications/{ident}", headers=fresh["tok"]["vera"]).json()
    assert item["state"] == "confirmed" and item["confirmed_by"] == ["rob", "rita"]

    bad = ada.post(f"/unknown/groups/{gid}/enrol", {"label": "jane/doe"})
    assert bad.status_code == 400 and "contains '/'" in _text(bad.text)
    r = ada.post(f"/unknown/groups/{gid}/enrol", {"label": ""})          # the label made of the name
    assert r.status_code == 303 and r.headers["location"] == "/persons/Jane_Doe"
    page = _text(vera.get("/persons/Jane_Doe").text)
    assert f"#{ident}" in page and "enrolled from this identification" in page
    assert "Proposed by vera" in page and "confirmed by rob, rita" in page       # in the order they confirmed
    assert "Other evidence: name tag seen in both photos" in page
    images = fresh["api"].get("/api/persons/Jane_Doe", headers=fresh["tok"]["vera"]).json()["images"]
    assert images and all(f"identification {ident} confirmed by rob, rita;" in im["provenance"]["notes"] for im in images)
    # the person now has gallery images, which a later identification of the group shows
    assert any(":" not in e for e in review_ids(fresh, gid, "Jane Doe"))


def review_ids(x: dict, gid: int, person: str) -> list[str]:
    from pof.casework import review
    from pof.dataset.catalog import Catalog
    with Catalog(x["ds"]) as cat:
        return review.evidence_ids(cat.db, {"subject": "group", "group_id": gid, "person": person, "evidence": []})


def test_an_excluded_name_is_not_enrolled(fresh):
    gid, app, ds = fresh["gid"], fresh["app"], fresh["ds"]
    vera, ada = Session(app, ds, "vera"), Session(app, ds, "ada")
    ident = int(vera.post(f"/unknown/groups/{gid}/propose", {"person": "Jane Roe", "note": "name tag seen"})
                .headers["location"].rsplit("/", 1)[1])
    face = f"face:{fresh['group']['faces'][0]['id']}"
    for who in ("rita", "rob"):
        s = Session(app, ds, who)
        assert s.post(f"/identifications/{ident}/confirm", {"note": "same", "evidence_seen": face,
                                                            "other_evidence": "name tag seen in both photos"}).status_code == 303
    r = fresh["api"].post("/api/exclusions", headers=fresh["tok"]["ada"], json={"person": "Jane Roe", "reason": "court order 12"})
    assert r.status_code == 201, r.text
    assert "Jane Roe" in ada.get(f"/unknown/groups/{gid}").text          # admins see it, marked
    assert "excluded" in _text(ada.get(f"/unknown/groups/{gid}").text)
    assert "Jane Roe" not in vera.get(f"/unknown/groups/{gid}").text
    r = ada.post(f"/unknown/groups/{gid}/enrol", {"label": "Jane_Roe"})
    assert r.status_code == 403 and "exclusion list" in _text(r.text)


def test_a_face_crop_blurs_the_other_faces_it_reaches(fresh, tmp_path):
    """The crop of a face shows its surroundings (widened 0.6 x its size): a neighbour's face
    in that margin stays blurred, even once this face's group is marked as an officer."""
    from pof.redact import region
    from pof.web.unknown_routes import CROP_MARGIN
    a = np.asarray(Image.open(YALE / "subject01.glasses").convert("RGB"))[:, 110:250]
    b = np.asarray(Image.open(YALE / "subject04.normal").convert("RGB"))[:, 110:250]
    Image.fromarray(np.concatenate([a, b], axis=1)).save(tmp_path / "close.jpg", "JPEG", quality=95)
    original = np.asarray(Image.open(tmp_path / "close.jpg").convert("RGB"))
    up = _upload(fresh, "march 9", [("close.jpg", (tmp_path / "close.jpg").read_bytes(), "image/jpeg")]).json()
    assert up["faces"] == 2, up
    faces = [dict(f, group=g["id"]) for g in fresh["api"].get("/api/unknown/groups", headers=fresh["tok"]["vera"]).json()
             for f in fresh["api"].get(f"/api/unknown/groups/{g['id']}", headers=fresh["tok"]["vera"]).json()["faces"]
             if f["photo"] == "close.jpg"]
    other, mine = sorted(faces, key=lambda f: f["box"][0])          # subject01 left, subject04 right
    assert Session(fresh["app"], fresh["ds"], "rita").post(f"/unknown/groups/{mine['group']}/officer").status_code == 303
    crop = np.asarray(Image.open(io.BytesIO(
        Session(fresh["app"], fresh["ds"], "vera").get(f"/unknown/faces/{mine['id']}.jpg").content)).convert("RGB"))
    x0, y0, x1, y1 = region(tuple(mine["box"]), CROP_MARGIN, original.shape)
    assert crop.shape[:2] == (y1 - y0, x1 - x0)
    ox, oy, ow, oh = other["box"]
    a0, a1 = max(x0, int(ox)), min(x1, int(ox + ow))        # the neighbour's face inside the crop
    b0, b1 = max(y0, int(oy)), min(y1, int(oy + oh))
    assert a1 - a0 > 10 and b1 - b0 > 10, (mine["box"], other["box"])
    seen = crop[b0 - y0:b1 - y0, a0 - x0:a1 - x0]
    shown = original[b0:b1, a0:a1]
    assert _sharpness(seen, (0, 0, a1 - a0, b1 - b0)) < 0.3 * _sharpness(shown, (0, 0, a1 - a0, b1 - b0))
    x, y, w, h = (int(round(v)) for v in mine["box"])        # and this face is shown
    inner = crop[y + h // 4 - y0:y + 3 * h // 4 - y0, x + w // 4 - x0:x + 3 * w // 4 - x0].astype(np.float32)
    assert np.abs(inner - original[y + h // 4:y + 3 * h // 4, x + w // 4:x + 3 * w // 4]).mean() < 6


def test_a_merged_group_keeps_its_evidence(fresh):
    """A name proposed for a group that is then merged shows, and is confirmed from, the
    faces where they are now."""
    gid, app, ds = fresh["gid"], fresh["app"], fresh["ds"]
    vera, rita = Session(app, ds, "vera"), Session(app, ds, "rita")
    ident = int(vera.post(f"/unknown/groups/{gid}/propose", {"person": "Jane Poe", "note": "name tag seen"})
                .headers["location"].rsplit("/", 1)[1])
    other = next(g["id"] for g in fresh["groups"] if g["id"] != gid)
    assert rita.post(f"/unknown/groups/{gid}/merge", {"into": str(other)}).status_code == 303
    merged = fresh["api"].get(f"/api/unknown/groups/{other}", headers=fresh["tok"]["vera"]).json()["faces"]
    ids = fresh["api"].get(f"/api/identifications/{ident}", headers=fresh["tok"]["vera"]).json()["evidence_ids"]
    assert {f"face:{f['id']}" for f in merged} <= set(ids) and len(merged) == 3
    page = _text(rita.get(f"/identifications/{ident}").text)
    assert f"Group {gid}, which this name was proposed for, was merged into group {other}" in page
    r = rita.post(f"/identifications/{ident}/confirm", {"note": "same face", "evidence_seen": f"face:{merged[0]['id']}",
                                                        "other_evidence": "name tag seen in both photos"})
    assert r.status_code == 303


def test_the_upload_form_keeps_the_event_just_used(env):
    """After an upload (or one that fails) the event field still holds the event, ready for
    more photos of it."""
    vera = Session(env["app"], env["ds"], "vera")
    assert re.search(r'<input name="event" required value="">', vera.get("/unknown").text)
    photo = ("sad.gif", (YALE / "subject04.sad").read_bytes(), "image/gif")
    r = vera.post("/unknown/upload", {"event": "  april 2, park & ride  "}, files=[("images", photo)])
    assert r.status_code == 200 and "1 photo(s), 1 face(s)" in r.text
    assert '<input name="event" required value="april 2, park &amp; ride">' in r.text
    r = vera.post("/unknown/upload", {"event": "april 3"}, files=[("images", ("junk.jpg", b"junk", "image/jpeg"))])
    assert r.status_code == 415 and "junk.jpg" in r.text
    assert '<input name="event" required value="april 3">' in r.text
