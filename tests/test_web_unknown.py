"""Unknown faces: event uploads grouped and linked across events, merge and split, names
proposed and confirmed, and a confirmed group enrolled with its provenance."""
from __future__ import annotations

import pytest

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
