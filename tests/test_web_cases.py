"""Cases belong to their creator: others see them only once shared (with them or their role);
admins see all; the face an identification names stays visible to its reviewers."""
from __future__ import annotations

import re

import pytest

from pof.casework.accounts import Accounts, fast_hasher
from pof.dataset.catalog import Catalog

from .webkit import PASSWORD, USERS, Session, TestClient, build_dataset, copy_dataset, token_for, two_face_photo, web_config


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A dataset copy with a second viewer (val), the app, a token per user."""
    from pof.web.app import create_app
    root = tmp_path_factory.mktemp("webcases")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    with Catalog(ds) as cat:
        Accounts(cat.db, fast_hasher()).add("val", "viewer", PASSWORD)
    app = create_app(ds, web_config())
    names = [*USERS, "val"]
    return {"ds": ds, "app": app, "api": TestClient(app), "photo": two_face_photo(root / "two.jpg"),
            "tokens": {n: token_for(ds, n) for n in names},
            "s": {n: Session(app, ds, n) for n in names}}


def _api(env, who, method, url, **kw):
    headers = {"Authorization": f"Bearer {env['tokens'][who]}"} if who else {}
    return env["api"].request(method, url, headers=headers, **kw)


def _search(env, who):
    r = _api(env, who, "POST", "/api/search", files={"image": ("two.jpg", env["photo"].read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    return r.json()["probe"]


def _new_case(env, who, title):
    """``who`` searches the two-face photo and saves it to a new case: (case id, photo id)."""
    r = env["s"][who].post(f"/probes/{_search(env, who)}/save", {"title": title})
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].rsplit("/", 1)[1])
    pid = _api(env, who, "GET", f"/api/cases/{cid}").json()["photos"][0]["id"]
    return cid, pid


def _reads(env, who, cid, pid) -> dict[str, int]:
    """The status of every way of reading or adding to the case, for ``who``."""
    s = env["s"][who]
    listed = cid in {c["id"] for c in _api(env, who, "GET", "/api/cases").json()}
    page_listed = f'href="/cases/{cid}"' in s.get("/cases").text
    saved = s.post(f"/probes/{_search(env, who)}/save", {"case_id": str(cid)})
    return {"api list": 200 if listed else 404, "page list": 200 if page_listed else 404,
            "api case": _api(env, who, "GET", f"/api/cases/{cid}").status_code,
            "page": s.get(f"/cases/{cid}").status_code,
            "image": s.get(f"/cases/photos/{pid}/image.jpg").status_code,
            "face": s.get(f"/cases/photos/{pid}/faces/1.jpg").status_code,
            "export": s.get(f"/cases/photos/{pid}/export.jpg").status_code,
            "add probe": 200 if saved.status_code == 303 else saved.status_code}


ALL = ("api list", "page list", "api case", "page", "image", "face", "export", "add probe")


def _audit(env, action):
    return [r for r in _api(env, "ada", "GET", "/api/audit?limit=500").json()["rows"] if r["action"] == action]


def test_another_users_case_does_not_exist_for_a_viewer_or_reviewer(env):
    cid, pid = _new_case(env, "vera", "vera's march")
    for who in ("val", "rita"):
        assert _reads(env, who, cid, pid) == dict.fromkeys(ALL, 404), who
    rita = env["s"]["rita"]
    assert rita.post(f"/cases/photos/{pid}/faces/2/officer").status_code == 404
    assert rita.post("/identifications", {"person": "subject01", "photo": str(pid), "face": "1",
                                          "note": "n"}).status_code == 404
    assert _api(env, "rita", "POST", "/api/identifications", json={
        "photo": pid, "face": 1, "person": "subject01", "note": "n"}).status_code == 404
    assert _api(env, "rita", "GET", f"/api/cases/{cid}").json() == {"error": f"no case {cid}", "status": 404}
    # the owner reads it all, and the save-to-case list offers it to her only
    assert _reads(env, "vera", cid, pid) == dict.fromkeys(ALL, 200)
    assert f'<option value="{cid}">' in env["s"]["vera"].get(f"/probes/{_search(env, 'vera')}").text
    assert f'<option value="{cid}">' not in env["s"]["val"].get(f"/probes/{_search(env, 'val')}").text


def test_admins_see_every_case_marked_whose(env):
    cid, pid = _new_case(env, "vera", "seen by admins")
    assert _reads(env, "ada", cid, pid) == dict.fromkeys(ALL, 200)
    got = {c["id"]: c for c in _api(env, "ada", "GET", "/api/cases").json()}[cid]
    assert got["access"] == "admin" and got["created_by"] == "vera"
    page = env["s"]["ada"].get("/cases").text
    others = page[page.index("Others&#39; cases"):]
    assert f'href="/cases/{cid}"' in others and "vera" in others
    assert env["s"]["ada"].post(f"/cases/photos/{pid}/takedown", {"reason": "court order"}).status_code == 303


def test_sharing_with_a_user_from_the_case_page_then_unsharing(env):
    cid, pid = _new_case(env, "vera", "shared with val")
    vera = env["s"]["vera"]
    r = vera.post(f"/cases/{cid}/share", {"users": "val, nobody_here"})    # one name is wrong: val is shared
    assert r.status_code == 200 and "no user &#39;nobody_here&#39;" in r.text and "Stop sharing" in r.text
    assert vera.post(f"/cases/{cid}/share", {"users": "nobody_here"}).status_code == 400
    assert _reads(env, "val", cid, pid) == dict.fromkeys(ALL, 200)
    assert _reads(env, "rita", cid, pid) == dict.fromkeys(ALL, 404)      # only val
    page = env["s"]["val"].get("/cases").text
    assert f'href="/cases/{cid}"' in page[page.index("Shared with me"):]
    assert f'href="/cases/{cid}"' not in page[page.index("Mine"):page.index("Shared with me")]
    mine = vera.get("/cases").text
    assert f'href="/cases/{cid}"' in mine[mine.index("Mine"):mine.index("Shared with me")]
    row = [r for r in _audit(env, "share_case") if r["detail"]["case"] == cid]
    assert len(row) == 1 and row[0]["actor"] == "vera" and row[0]["detail"]["whom"] == ["val"]

    # val may see it but not share it; the owner takes it back
    assert env["s"]["val"].post(f"/cases/{cid}/share", {"users": "rita"}).status_code == 403
    assert vera.post(f"/cases/{cid}/unshare", {"users": "val"}).status_code == 303
    assert _reads(env, "val", cid, pid) == dict.fromkeys(ALL, 404)
    row = [r for r in _audit(env, "unshare_case") if r["detail"]["case"] == cid]
    assert len(row) == 1 and row[0]["actor"] == "vera" and row[0]["detail"]["whom"] == ["val"]


def test_sharing_with_a_role_through_the_api(env):
    cid, pid = _new_case(env, "vera", "for reviewers")
    r = _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={"role": "reviewers"})
    assert r.status_code == 200 and r.json()["shared"] == ["all reviewers"] and r.json()["errors"] == []
    assert _reads(env, "rita", cid, pid) == dict.fromkeys(ALL, 200)
    assert _reads(env, "val", cid, pid) == dict.fromkeys(ALL, 404)        # a viewer: not a reviewer
    r = _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={"role": "everyone"})
    assert r.status_code == 200 and {s["name"] for s in r.json()["shares"]} == {"reviewer", "viewer"}
    assert _reads(env, "val", cid, pid) == dict.fromkeys(ALL, 200)
    r = _api(env, "vera", "POST", f"/api/cases/{cid}/unshare", json={"role": "everyone"})
    assert r.status_code == 200 and r.json()["unshared"] == ["everyone signed in"]
    assert _reads(env, "val", cid, pid) == dict.fromkeys(ALL, 404)
    assert _reads(env, "rob", cid, pid) == dict.fromkeys(ALL, 200)
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/unshare", json={"role": "reviewers"}).status_code == 200
    assert _reads(env, "rob", cid, pid) == dict.fromkeys(ALL, 404)
    whom = [r["detail"]["whom"] for r in _audit(env, "share_case") + _audit(env, "unshare_case")
            if r["detail"]["case"] == cid]
    assert sorted(map(tuple, whom)) == [("all reviewers",), ("all reviewers",),
                                        ("everyone signed in",), ("everyone signed in",)]


def test_api_share_needs_the_owner_or_an_admin(env):
    cid, pid = _new_case(env, "vera", "api rules")
    body = {"users": ["rob"]}
    assert _api(env, None, "POST", f"/api/cases/{cid}/share", json=body).status_code == 401
    assert _api(env, "rita", "POST", f"/api/cases/{cid}/share", json=body).status_code == 404   # cannot see it
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={"users": ["rita"]}).status_code == 200
    r = _api(env, "rita", "POST", f"/api/cases/{cid}/share", json=body)                       # sees, not owner
    assert r.status_code == 403 and r.json()["status"] == 403
    assert _api(env, "rita", "POST", f"/api/cases/{cid}/unshare", json={"users": ["rita"]}).status_code == 403
    r = _api(env, "ada", "POST", f"/api/cases/{cid}/share", json={"users": ["rob", "ghost", "vera"]})
    assert r.status_code == 200 and r.json()["shared"] == ["rob"]
    assert r.json()["errors"] == ["no user 'ghost'", f"vera owns case {cid}"]
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={"role": "janitors"}).status_code == 400
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={}).status_code == 400
    assert _api(env, "vera", "POST", f"/api/cases/{cid + 1000}/share", json=body).status_code == 404
    r = _api(env, "vera", "POST", f"/api/cases/{cid}/unshare", json={"users": ["val"]})
    assert r.status_code == 200 and r.json()["errors"] == [f"case {cid} is not shared with val"]
    assert _reads(env, "rob", cid, pid)["api case"] == 200


def test_a_probe_saved_to_a_case_no_longer_shared_marks_no_officer_there(env):
    cid, pid = _new_case(env, "vera", "taken back")
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={"users": ["rita"]}).status_code == 200
    rita, token = env["s"]["rita"], _search(env, "rita")
    assert rita.post(f"/probes/{token}/save", {"case_id": str(cid)}).status_code == 303
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/unshare", json={"users": ["rita"]}).status_code == 200
    assert rita.post(f"/probes/{token}/faces/2/officer").status_code == 404
    photos = _api(env, "vera", "GET", f"/api/cases/{cid}").json()["photos"]
    assert len(photos) == 2 and photos[1]["officer"] == []


def test_reviewers_who_cannot_see_the_case_still_see_the_face_they_confirm(env):
    cid, pid = _new_case(env, "vera", "evidence")
    r = _api(env, "vera", "POST", "/api/identifications", json={
        "photo": pid, "face": 1, "person": "subject01", "note": "same face"})
    assert r.status_code == 201, r.text
    item = r.json()
    for n, who in enumerate(("rita", "rob"), 1):
        s = env["s"][who]
        page = s.get(f"/identifications/{item['id']}").text
        assert f'src="/cases/photos/{pid}/faces/1.jpg"' in page
        assert f'href="/cases/{cid}' not in page and "not shared with you" in page
        face = s.get(f"/cases/photos/{pid}/faces/1.jpg")
        assert face.status_code == 200 and face.headers["content-type"] == "image/jpeg"
        assert s.get(f"/cases/photos/{pid}/faces/2.jpg").status_code == 404      # not what it names
        assert s.get(f"/cases/photos/{pid}/image.jpg").status_code == 404
        assert s.get(f"/cases/{cid}").status_code == 404
        assert s.post(f"/identifications/{item['id']}/confirm", {
            "note": "jaw and ears agree", "evidence_seen": item["evidence_ids"][0]}).status_code == 303
        assert f"{n} of 2" in s.get(f"/identifications/{item['id']}").text
    assert _api(env, "rita", "GET", f"/api/identifications/{item['id']}").json()["state"] == "confirmed"
    # the owner's page links to the case
    assert f'href="/cases/{cid}#photo-{pid}"' in env["s"]["vera"].get(f"/identifications/{item['id']}").text


def test_a_reviewer_unblurs_the_face_an_identification_names(env):
    cid, pid = _new_case(env, "vera", "blurred face")
    r = _api(env, "vera", "POST", "/api/identifications", json={
        "photo": pid, "face": 2, "person": "subject02", "note": "looks like him"})
    assert r.status_code == 201, r.text
    ident = r.json()["id"]
    rita = env["s"]["rita"]
    assert rita.get(f"/cases/photos/{pid}/faces/2.jpg").status_code == 404         # a bystander: blurred
    r = rita.post(f"/cases/photos/{pid}/faces/2/officer")
    assert r.status_code == 303 and r.headers["location"] == f"/identifications/{ident}"
    assert rita.get(f"/cases/photos/{pid}/faces/2.jpg").status_code == 200
    assert rita.get(f"/cases/photos/{pid}/image.jpg").status_code == 404


def test_a_case_without_shares_is_its_creators_and_the_admins(env):
    """A catalog's cases from before sharing: rows in ``cases`` and no share."""
    cid, pid = _new_case(env, "vera", "old case")
    with Catalog(env["ds"]) as cat:
        assert cat.db.execute("SELECT COUNT(*) FROM case_shares WHERE case_id = ?", (cid,)).fetchone()[0] == 0
    assert _api(env, "vera", "GET", f"/api/cases/{cid}").json()["access"] == "owner"
    assert _api(env, "ada", "GET", f"/api/cases/{cid}").json()["access"] == "admin"
    assert _api(env, "rob", "GET", f"/api/cases/{cid}").status_code == 404
    page = env["s"]["vera"].get(f"/cases/{cid}").text
    assert re.search(r"Seen by vera \(owner\), by admins, and no one else", page)


def _face_section(html: str, start: str, end: str) -> str:
    """The part of a page from ``start`` to the next ``end`` (or to its end)."""
    part = html[html.index(start):]
    return part[:part.find(end, len(start))] if end in part[len(start):] else part


def test_a_viewer_proposes_only_for_a_face_shown_to_her(env):
    """A face blurred to a viewer (a possible bystander) offers her no proposal, but says why;
    a reviewer is still offered one, and once a reviewer marks the face as an officer so is she."""
    vera, rita = env["s"]["vera"], env["s"]["rita"]
    token = _search(env, "vera")
    result = vera.get(f"/probes/{token}").text
    face1, face2 = _face_section(result, 'id="face-1"', 'id="face-2"'), _face_section(result, 'id="face-2"', "</section>")
    assert 'action="/identifications"' in face1 and "cannot propose" not in face1       # a match: shown
    assert 'action="/identifications"' not in face2 and "Propose this name" not in face2
    assert "ask a reviewer to mark the face as an officer first" in face2
    theirs = rita.get(f"/probes/{_search(env, 'rita')}").text
    assert 'action="/identifications"' in _face_section(theirs, 'id="face-2"', "</section>")

    cid, pid = _new_case(env, "vera", "a face she cannot see")
    case = _face_section(vera.get(f"/cases/{cid}").text, "<h3>Face 2</h3>", "</section>")
    assert 'action="/identifications"' not in case and "mark the face as an officer first" in case
    assert _api(env, "vera", "POST", f"/api/cases/{cid}/share", json={"users": ["rita"]}).status_code == 200
    assert rita.post(f"/cases/photos/{pid}/faces/2/officer").status_code == 303
    case = _face_section(vera.get(f"/cases/{cid}").text, "<h3>Face 2</h3>", "</section>")
    assert 'action="/identifications"' in case and "cannot propose" not in case
