"""The JSON API and the pages, route by route and role by role, on a real small dataset."""
from __future__ import annotations

import json

import pytest

from pof.dataset.catalog import Catalog

from .conftest import YALE
from .webkit import USERS, Session, TestClient, build_dataset, copy_dataset, token_for, two_face_photo, web_config

ANON = None
WHO = (ANON, "vera", "rita", "ada")          # anonymous, viewer, reviewer, admin


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A dataset copy, the app, an API token per user, and a few records to point routes at."""
    from pof.web.app import create_app
    built = build_dataset(tmp_path_factory.mktemp("webbuild"))
    root = tmp_path_factory.mktemp("webapi")
    ds = copy_dataset(built, root / "ds")
    app = create_app(ds, web_config())
    tokens = {name: token_for(ds, name) for name in USERS}
    photo = two_face_photo(root / "two.jpg")
    api = TestClient(app)
    hdr = {"Authorization": f"Bearer {tokens['vera']}"}
    found = api.post("/api/search", files={"image": ("two.jpg", photo.read_bytes(), "image/jpeg")}, headers=hdr).json()
    ident = api.post("/api/identifications", headers=hdr, json={
        "probe": found["probe"], "face": 1, "person": "subject01", "note": "same face", "case_title": "t"}).json()
    # case 1 is vera's, shared with the reviewers (who propose and mark faces on it); "spare" is hers only
    assert api.post("/api/cases/1/share", headers=hdr, json={"role": "reviewers"}).status_code == 200
    up = api.post("/api/unknown/events", headers=hdr, data={"event": "march"},
                  files=[("images", ("two.jpg", photo.read_bytes(), "image/jpeg"))])
    assert up.status_code == 201, up.text
    again = api.post("/api/search", files={"image": ("two.jpg", photo.read_bytes(), "image/jpeg")}, headers=hdr).json()
    spare = api.post("/api/identifications", headers=hdr, json={
        "probe": again["probe"], "face": 1, "person": "subject01", "note": "n", "case_title": "spare"}).json()
    with Catalog(ds) as cat:
        face_id = cat.db.execute("SELECT id FROM faces WHERE person = 'Barack_Obama'").fetchone()[0]
        group = cat.db.execute("SELECT id FROM unknown_groups").fetchone()[0]
    return {"ds": ds, "app": app, "tokens": tokens, "photo": photo, "api": api, "ident": ident,
            "search": found, "face_id": face_id, "group": group,
            "spare_photo": spare["photo_id"]}


def _api(env, who, method, url, **kw):
    headers = {"Authorization": f"Bearer {env['tokens'][who]}"} if who else {}
    return env["api"].request(method, url, headers=headers, **kw)


def _free_face(env):
    """Retract the live proposals for case photo 1, face 1 (a name is proposed once per face
    while a proposal of it is live)."""
    for i in _api(env, "ada", "GET", "/api/identifications?state=proposed").json() + \
            _api(env, "ada", "GET", "/api/identifications?state=confirmed").json():
        if (i["photo_id"], i["face_index"]) == (env["ident"]["photo_id"], 0):
            _api(env, "ada", "POST", f"/api/identifications/{i['id']}/retract", json={"note": "a fresh one"})


def _fresh_ident(env, proposer="vera", state="proposed"):
    """A new identification of case photo 1, face 1, in ``state``."""
    _free_face(env)
    r = _api(env, proposer, "POST", "/api/identifications", json={
        "photo": env["ident"]["photo_id"], "face": 1, "person": "subject01", "note": "looks alike"})
    assert r.status_code == 201, r.text
    ident = r.json()["id"]
    if state == "disputed":
        assert _api(env, "vera", "POST", f"/api/identifications/{ident}/dispute", json={"note": "no"}).status_code == 200
    return ident


# route, method, expected status for (anonymous, viewer, reviewer, admin), request builder
API_TABLE = [
    ("GET", "/api/me", (401, 200, 200, 200)),
    ("POST", "/api/search", (401, 200, 200, 200)),
    ("GET", "/api/persons", (401, 200, 200, 200)),
    ("GET", "/api/persons/Barack_Obama", (401, 200, 200, 200)),
    ("GET", "/api/images/{face_id}.jpg", (401, 200, 200, 200)),
    ("GET", "/api/identifications", (401, 200, 200, 200)),
    ("GET", "/api/identifications/{ident}", (401, 200, 200, 200)),
    ("POST", "/api/identifications", (401, 201, 201, 201)),
    ("POST", "/api/identifications/{fresh}/confirm", (401, 403, 200, 200)),
    ("POST", "/api/identifications/{fresh}/dispute", (401, 200, 200, 200)),
    ("POST", "/api/identifications/{fresh_by_rob}/retract", (401, 403, 200, 200)),
    ("POST", "/api/identifications/{disputed}/reopen", (401, 403, 200, 200)),
    ("POST", "/api/identifications/{fresh}/correct", (401, 403, 201, 201)),
    ("GET", "/api/cases", (401, 200, 200, 200)),
    ("GET", "/api/cases/1", (401, 200, 200, 200)),
    ("GET", "/api/unknown/groups", (401, 200, 200, 200)),
    ("GET", "/api/unknown/groups/{group}", (401, 200, 200, 200)),
    ("POST", "/api/unknown/events", (401, 201, 201, 201)),
    ("GET", "/api/users", (401, 403, 403, 200)),
    ("GET", "/api/audit", (401, 403, 403, 200)),
    ("GET", "/api/exclusions", (401, 403, 403, 200)),
    ("POST", "/api/exclusions", (401, 403, 403, 201)),
]


def _body(env, method, url, who):
    if url == "/api/search":
        return {"files": {"image": ("two.jpg", env["photo"].read_bytes(), "image/jpeg")}}
    if url == "/api/unknown/events":
        return {"data": {"event": f"event by {who}"},
                "files": [("images", ("s.gif", (YALE / "subject02.glasses").read_bytes(), "image/gif"))]}
    if url == "/api/identifications":
        _free_face(env)
        return {"json": {"photo": env["ident"]["photo_id"], "face": 1, "person": "subject01", "note": "n"}}
    if url == "/api/exclusions":
        return {"json": {"person": f"Nobody_{who}", "reason": "court order 1"}}
    if url.endswith("/correct"):
        return {"json": {"person": "subject02", "note": "the ears differ"}}
    if url.endswith(("/confirm", "/dispute", "/retract", "/reopen")):
        return {"json": {"note": "checked the images", "evidence_seen": env["ident"]["evidence_ids"][:1]}}
    return {}


@pytest.mark.parametrize("who", range(4), ids=["anonymous", "viewer", "reviewer", "admin"])
@pytest.mark.parametrize("method, route, expected", API_TABLE, ids=[f"{m} {r}" for m, r, _ in API_TABLE])
def test_api_route_by_role(env, method, route, expected, who):
    name = WHO[who]
    url = route.format(face_id=env["face_id"], ident=env["ident"]["id"], group=env["group"],
                       fresh=_fresh_ident(env) if "{fresh}" in route else "",
                       fresh_by_rob=_fresh_ident(env, "rob") if "fresh_by_rob" in route else "",
                       disputed=_fresh_ident(env, state="disputed") if "disputed" in route else "")
    r = _api(env, name, method, url, **_body(env, method, url, name))
    assert r.status_code == expected[who], r.text
    if r.status_code >= 400:
        assert set(r.json()) == {"error", "status"} and r.json()["status"] == r.status_code


PAGE_TABLE = [
    ("GET", "/search", (303, 200, 200, 200)),
    ("GET", "/identifications", (303, 200, 200, 200)),
    ("GET", "/identifications/{ident}", (303, 200, 200, 200)),
    ("GET", "/cases", (303, 200, 200, 200)),
    ("GET", "/cases/1", (303, 200, 200, 200)),
    ("GET", "/cases/photos/1/image.jpg", (303, 200, 200, 200)),
    ("GET", "/cases/photos/1/export.jpg", (303, 200, 200, 200)),
    ("GET", "/gallery", (303, 200, 200, 200)),
    ("GET", "/persons/Barack_Obama", (303, 200, 200, 200)),
    ("GET", "/images/{face_id}.jpg", (303, 200, 200, 200)),
    ("GET", "/unknown", (303, 200, 200, 200)),
    ("GET", "/unknown/groups/{group}", (303, 200, 200, 200)),
    ("GET", "/admin", (303, 403, 403, 200)),
    ("GET", "/admin/audit", (303, 403, 403, 200)),
    ("POST", "/cases/photos/1/faces/2/officer", (303, 403, 303, 303)),
    ("POST", "/unknown/groups/{group}/officer", (303, 403, 303, 303)),
    ("POST", "/unknown/groups/{group}/propose", (303, 303, 303, 303)),
    ("POST", "/unknown/groups/{group}/enrol", (303, 403, 403, 409)),
    ("POST", "/admin/settings", (303, 403, 403, 303)),
    ("POST", "/admin/exclusions", (303, 403, 403, 303)),
    ("GET", "/", (303, 303, 303, 303)),
    ("GET", "/probes/gone", (303, 404, 404, 404)),
    ("GET", "/cases/photos/1/faces/1.jpg", (303, 200, 200, 200)),
    ("GET", "/cases/photos/{spare}/faces/2.jpg", (303, 404, 404, 404)),  # the bystander
    ("GET", "/cases/photos/{spare}/image.jpg", (303, 200, 404, 200)),   # vera's, not shared
    ("GET", "/unknown/faces/1.jpg", (303, 200, 200, 200)),
    ("POST", "/search", (303, 400, 400, 400)),                          # no photo sent
    ("POST", "/unknown/upload", (303, 400, 400, 400)),                  # no photos sent
    ("POST", "/identifications", (303, 303, 303, 303)),
    ("POST", "/identifications/{fresh}/confirm", (303, 403, 303, 303)),
    ("POST", "/identifications/{fresh}/dispute", (303, 303, 303, 303)),
    ("POST", "/identifications/{fresh}/retract", (303, 403, 303, 303)),
    ("POST", "/identifications/{fresh}/correct", (303, 403, 303, 303)),
    ("POST", "/unknown/groups/{group}/split", (303, 403, 400, 400)),    # none ticked
    ("POST", "/unknown/groups/{group}/merge", (303, 403, 409, 409)),    # into itself
    ("POST", "/cases/photos/{spare}/takedown", (303, 403, 403, 303)),
    ("POST", "/admin/exclusions/999/lift", (303, 403, 403, 404)),
    ("POST", "/logout", (303, 303, 303, 303)),
]


@pytest.mark.parametrize("who", range(4), ids=["anonymous", "viewer", "reviewer", "admin"])
@pytest.mark.parametrize("method, route, expected", PAGE_TABLE, ids=[f"{m} {r}" for m, r, _ in PAGE_TABLE])
def test_page_route_by_role(env, method, route, expected, who):
    s = Session(env["app"], env["ds"], WHO[who])
    url = route.format(face_id=env["face_id"], ident=env["ident"]["id"], group=env["group"],
                       spare=env["spare_photo"], fresh=_fresh_ident(env, "rob") if "{fresh}" in route else "")
    data = {"required_confirmations": "2", "person": f"Nobody_page_{who}", "reason": "order",
            "note": "a note", "evidence_seen": env["ident"]["evidence_ids"][0], "into": str(env["group"])}
    if route == "/identifications":
        data.update(person="subject01", photo="1", face="1")
    if route.endswith("/correct"):
        data.update(person="subject02")
    r = s.get(url) if method == "GET" else s.post(url, data)
    assert r.status_code == expected[who], r.text[:400]
    if expected[who] == 303 and WHO[who] is None:
        assert r.headers["location"].startswith("/login")


def test_openapi_describes_the_api(env):
    assert env["api"].get("/api/openapi.json").status_code == 401
    doc = _api(env, "vera", "GET", "/api/openapi.json").json()
    assert "/api/search" in doc["paths"] and "/api/identifications/{ident}/{action}" in doc["paths"]


def test_search_json_is_spec_4(env):
    r = env["search"]
    assert r["error"] is None and len(r["faces"]) == 2 and r["probe"]
    first, second = r["faces"]
    assert first["decision"] == "match" and first["candidates"][0]["person"] == "subject01"
    assert second["decision"] == "no_match"
    for face in r["faces"]:
        assert {"box", "det_score", "quality", "decision", "fpir", "candidates"} <= set(face)
        for c in face["candidates"]:
            assert {"person", "name", "score", "fmr", "evidence"} <= set(c)


def test_csrf_is_required_on_every_form_post(env):
    s = Session(env["app"], env["ds"], "ada")
    for url in ("/admin/settings", "/search", f"/identifications/{env['ident']['id']}/dispute", "/logout"):
        assert s.post(url, {"required_confirmations": "2"}, csrf=False).status_code == 403
        assert s.post(url, {"csrf": "forged", "required_confirmations": "2"}).status_code == 403


def test_login_sets_safe_cookies_and_is_rate_limited(env, tmp_path):
    from pof.web.app import create_app
    cfg = web_config()
    cfg.login_rate = (3, 60.0)
    app = create_app(env["ds"], cfg)
    c = TestClient(app, base_url="https://testserver", follow_redirects=False)
    form = c.get("/login")
    token = form.cookies.get("pof_login_csrf")
    assert "HttpOnly" in form.headers["set-cookie"] and "SameSite=strict" in form.headers["set-cookie"]
    r = c.post("/login", data={"csrf": token, "name": "ada", "password": "a long test password"})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "pof_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    bad = [c.post("/login", data={"csrf": c.get("/login").cookies.get("pof_login_csrf") or token,
                                  "name": "ada", "password": "wrong wrong wrong"}).status_code for _ in range(3)]
    assert bad[:2] == [401, 401] and bad[2] == 429


def test_search_is_rate_limited(env):
    from pof.web.app import create_app
    cfg = web_config()
    cfg.search_rate = (1, 60.0)
    c = TestClient(create_app(env["ds"], cfg))
    hdr = {"Authorization": f"Bearer {env['tokens']['vera']}"}
    files = {"image": ("a.gif", (YALE / "subject02.glasses").read_bytes(), "image/gif")}
    assert c.post("/api/search", files=files, headers=hdr).status_code == 200
    r = c.post("/api/search", files=files, headers=hdr)
    assert r.status_code == 429 and "wait" in r.json()["error"]


def test_bad_uploads_get_clear_errors(env, tmp_path):
    hdr = {"Authorization": f"Bearer {env['tokens']['vera']}"}
    r = env["api"].post("/api/search", headers=hdr, files={"image": ("x.jpg", b"not an image at all", "image/jpeg")})
    assert r.status_code == 415 and "not an image" in r.json()["error"]
    r = env["api"].post("/api/search", headers=hdr)
    assert r.status_code == 422 and "image" in r.json()["error"]
    from pof.web.app import create_app
    cfg = web_config()
    cfg.max_upload_bytes = 1000
    r = TestClient(create_app(env["ds"], cfg)).post("/api/search", headers=hdr, files={"image": ("big.jpg", env["photo"].read_bytes(), "image/jpeg")})
    assert r.status_code == 413
    s = Session(env["app"], env["ds"], "vera")
    page = s.post("/search", files={"image": ("x.png", b"\x89PNG broken", "image/png")})
    assert page.status_code == 415 and "Not an image" in page.text and "Traceback" not in page.text
    from .conftest import noise_image
    r = s.post("/search", files={"image": ("noise.png", noise_image(tmp_path / "n.png").read_bytes(), "image/png")})
    assert r.status_code == 303 and "No face found" in s.get(r.headers["location"]).text
    up = s.post("/unknown/upload", {"event": "e"}, files=[("images", ("bad.jpg", b"junk", "image/jpeg")),
                                                           ("images", ("noise.gif", (YALE / "subject02.glasses").read_bytes(), "image/gif"))])
    assert up.status_code == 200 and "bad.jpg" in up.text and "not an image" in up.text


def test_review_needs_two_independent_reviewers_then_dispute(env):
    ident, seen = _fresh_ident(env, "vera"), env["ident"]["evidence_ids"][:1]
    act = lambda who, action, **b: _api(env, who, "POST", f"/api/identifications/{ident}/{action}",
                                        json={"note": "compared ears and jaw", **b})
    assert act("rita", "confirm").status_code == 400                       # evidence needed
    assert act("rita", "confirm", evidence_seen=seen).json()["state"] == "proposed"
    assert act("rita", "confirm", evidence_seen=seen).status_code == 409  # not twice
    r = act("rob", "confirm", evidence_seen=seen)
    assert r.json()["state"] == "confirmed" and r.json()["confirmations"] == 2
    assert act("vera", "dispute", note="").status_code == 400              # reason needed
    assert act("vera", "dispute").json()["state"] == "disputed"
    assert act("rita", "reopen").json()["confirmations"] == 0
    assert act("rita", "retract").json()["state"] == "retracted"
    assert act("rita", "confirm", evidence_seen=seen).status_code == 409
    events = [e["action"] for e in act("rita", "dispute").json().get("events", [])] or \
        [e["action"] for e in _api(env, "vera", "GET", f"/api/identifications/{ident}").json()["events"]]
    assert events == ["propose", "confirm", "confirm", "dispute", "reopen", "retract"]


def test_proposer_cannot_confirm_and_setting_changes_count(env):
    ident, seen = _fresh_ident(env, "rita"), env["ident"]["evidence_ids"][:1]
    r = _api(env, "rita", "POST", f"/api/identifications/{ident}/confirm", json={"note": "n", "evidence_seen": seen})
    assert r.status_code == 403 and "proposer" in r.json()["error"]
    s = Session(env["app"], env["ds"], "ada")
    assert s.post("/admin/settings", {"required_confirmations": "1"}).status_code == 303
    r = _api(env, "rob", "POST", f"/api/identifications/{ident}/confirm", json={"note": "n", "evidence_seen": seen})
    assert r.json()["state"] == "confirmed"
    assert s.post("/admin/settings", {"required_confirmations": "2"}).status_code == 303


def test_exclusion_list_is_honoured_by_api_and_cli_search(env, tmp_path):
    import shutil

    from .conftest import run_pof
    ds = tmp_path / "ds"
    shutil.copytree(env["ds"], ds)
    from pof.web.app import create_app
    c = TestClient(create_app(ds, web_config()))
    admin = {"Authorization": f"Bearer {env['tokens']['ada']}"}
    files = {"image": ("g.gif", (YALE / "subject01.glasses").read_bytes(), "image/gif")}
    before = c.post("/api/search", headers=admin, files=files).json()["faces"][0]["candidates"]
    assert before[0]["person"] == "subject01"
    assert c.post("/api/exclusions", headers=admin, json={"person": "subject01", "reason": "court order 42"}).status_code == 201
    after = c.post("/api/search", headers=admin, files=files).json()["faces"][0]
    assert "subject01" not in {x["person"] for x in after["candidates"]} and after["decision"] == "no_match"
    assert c.get("/api/persons/subject01", headers={"Authorization": f"Bearer {env['tokens']['vera']}"}).status_code == 404
    r = run_pof("search", ds, YALE / "subject01.glasses", "--json")
    faces = json.loads(r.stdout)["faces"]
    assert "subject01" not in {x["person"] for x in faces[0]["candidates"]}


def test_bystander_is_blurred_and_match_is_not(env):
    import io

    import numpy as np
    from PIL import Image
    s = Session(env["app"], env["ds"], "vera")
    r = s.post("/search", files={"image": ("two.jpg", env["photo"].read_bytes(), "image/jpeg")})
    token = r.headers["location"].rsplit("/", 1)[1]
    page = s.get(f"/probes/{token}")
    assert "Possible match" in page.text and "No confident match" in page.text and "FMR" in page.text
    shown = np.asarray(Image.open(io.BytesIO(s.get(f"/probes/{token}/image.jpg").content)).convert("L"), float)
    orig = np.asarray(Image.open(env["photo"]).convert("L"), float)
    faces = env["search"]["faces"]
    def detail(img, box):
        x, y, w, h = (int(v) for v in box)
        patch = img[y:y + h, x:x + w]
        return np.abs(np.diff(patch, axis=1)).mean()
    assert detail(shown, faces[1]["box"]) < 0.4 * detail(orig, faces[1]["box"])     # bystander blurred
    assert detail(shown, faces[0]["box"]) > 0.6 * detail(orig, faces[0]["box"])     # the match is not
    assert s.get(f"/probes/{token}/faces/2.jpg").status_code == 404
    assert s.get(f"/probes/{token}/faces/1.jpg").status_code == 200
    other = Session(env["app"], env["ds"], "rita")
    assert other.get(f"/probes/{token}").status_code == 404                       # probes are private


def test_everything_is_in_the_audit_log(env):
    rows = _api(env, "ada", "GET", "/api/audit?limit=1000").json()
    assert rows["ok"]
    actions = {r["action"] for r in rows["rows"]}
    assert {"search", "propose", "confirm", "dispute", "export", "unknown_upload", "exclude"} <= actions


def test_serve_cli_starts_and_refuses_a_missing_dataset(env, tmp_path):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from .conftest import run_pof
    r = run_pof("serve", tmp_path / "nothing")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pof", "serve", str(env["ds"]), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as resp:
                    assert resp.status == 200 and b"Sign in" in resp.read()
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("pof serve did not answer")
    finally:
        proc.terminate()
        proc.wait(10)


def test_correction_retracts_and_links(env):
    ident = _fresh_ident(env, "vera")
    r = _api(env, "rita", "POST", f"/api/identifications/{ident}/correct",
             json={"person": "subject02", "note": "the ears differ"})
    assert r.status_code == 201 and r.json()["corrects"] == ident and r.json()["state"] == "proposed"
    old = _api(env, "vera", "GET", f"/api/identifications/{ident}").json()
    assert old["state"] == "retracted" and "corrected to subject02" in old["events"][-1]["note"]
    r = _api(env, "rita", "POST", f"/api/identifications/{r.json()['id']}/correct",
             json={"person": "Nobody_At_All", "note": "x"})
    assert r.status_code == 400 and "not an enrolled person" in r.json()["error"]


def test_search_within_an_agency(env):
    hdr = {"Authorization": f"Bearer {env['tokens']['vera']}"}
    files = {"image": ("g.gif", (YALE / "subject01.glasses").read_bytes(), "image/gif")}
    r = env["api"].post("/api/search", headers=hdr, files=files,
                        data={"agency": "Executive Office of the President"}).json()
    assert {c["person"] for c in r["faces"][0]["candidates"]} == {"Barack_Obama", "Joseph_Biden"}
    assert r["faces"][0]["decision"] == "no_match" and r["where"] == {"agency": "Executive Office of the President"}
    r = env["api"].post("/api/search", headers=hdr, files=files, data={"agency": "Nowhere PD"})
    assert r.status_code == 400 and "no enrolled person matches" in r.json()["error"]


def test_http_cookies_are_not_secure_and_pages_are_locked_down(env):
    c = TestClient(env["app"], follow_redirects=False)
    form = c.get("/login")
    r = c.post("/login", data={"csrf": form.cookies.get("pof_login_csrf"), "name": "vera",
                               "password": "a long test password", "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/search"        # no open redirect
    assert "Secure" not in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    page = c.get("/search")
    assert 'accept="image/*"' in page.text and "capture" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert c.post("/login", data={"csrf": "", "name": "vera", "password": "x"}).status_code == 403


def test_unreliable_and_demographic_attributes_are_not_filters(env):
    """The gallery offers only attributes pof.json does not flag unreliable, and never
    perceived age or gender: Mustache is scored on the demo's colour photos but flagged."""
    from pof.stages.attributes.card import unreliable_names
    from pof.web.gallery_routes import visual_attributes
    with Catalog(env["ds"]) as cat:
        scored = {k for (s,) in cat.db.execute("SELECT scores FROM attributes")
                  for k, v in json.loads(s).items() if v is not None}
        offered = set(visual_attributes(cat.db))
    assert "Mustache" in scored and "Mustache" in unreliable_names()
    assert "Mustache" not in offered and "Male" not in offered
    assert "Smiling" in offered
    r = _api(env, "vera", "GET", "/api/persons", params={"attribute": "Mustache"})
    assert r.status_code == 400 and "unreliable" in r.text
    assert _api(env, "vera", "GET", "/api/persons", params={"attribute": "Smiling"}).status_code == 200


def test_a_heavily_compressed_photo_is_searched_restored_and_says_so(env):
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.open(env["photo"]).convert("RGB").save(buf, format="JPEG", quality=5)
    s = Session(env["app"], env["ds"], "vera")
    r = s.post("/search", files={"image": ("blocky.jpg", buf.getvalue(), "image/jpeg")})
    token = r.headers["location"].rsplit("/", 1)[1]
    page = s.get(f"/probes/{token}")
    assert page.status_code == 200 and "heavily JPEG-compressed" in page.text
    clean = s.post("/search", files={"image": ("two.jpg", env["photo"].read_bytes(), "image/jpeg")})
    clean_page = s.get(f"/probes/{clean.headers['location'].rsplit('/', 1)[1]}")
    assert "heavily JPEG-compressed" not in clean_page.text
    api = _api(env, "vera", "post", "/api/search",
               files={"image": ("blocky.jpg", buf.getvalue(), "image/jpeg")}).json()
    assert api["faces"] and all(f.get("restored") == "deblocked" for f in api["faces"])
    assert not any("restored" in f for f in env["search"]["faces"])
