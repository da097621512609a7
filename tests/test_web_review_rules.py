"""The review rules through the real app: what the search said travels with a proposed name,
confirming a name the search did not support needs stated evidence, the proposer cannot confirm,
a name is proposed once per face, evidence cited must be evidence shown, excluded persons are
named nowhere but to admins, the person page lists what named them, and one reviewer may be
enough only with a visible warning."""
from __future__ import annotations

import re

import pytest

from pof.casework.accounts import Accounts, fast_hasher
from pof.dataset.catalog import Catalog

from .conftest import YALE
from .webkit import USERS, Session, TestClient, build_dataset, copy_dataset, token_for, two_face_photo, web_config


def _text(html: str) -> str:
    """A page's words, tags dropped and spaces folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&lt;", "<")


def _pct(rate: float, upper: bool = False) -> str:
    """A rate as every page writes it: a percentage, two significant digits, '< ' for a bound."""
    p = rate * 100
    return ("< " if upper else "") + (f"{p:.0f}" if p >= 10 else f"{p:.2g}") + "%"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A dataset copy, the app, tokens, and one search of the two-face photo (face 1 is
    subject01, a match; face 2 is not enrolled: its candidates are all below the threshold)."""
    from pof.web.app import create_app
    built = build_dataset(tmp_path_factory.mktemp("webbuild"))
    root = tmp_path_factory.mktemp("rules")
    ds = copy_dataset(built, root / "ds")
    app = create_app(ds, web_config())
    photo = two_face_photo(root / "two.jpg")
    env = {"ds": ds, "app": app, "api": TestClient(app), "photo": photo,
           "tokens": {name: token_for(ds, name) for name in USERS}}
    env["search"] = _api(env, "vera", "POST", "/api/search",
                         files={"image": ("two.jpg", photo.read_bytes(), "image/jpeg")}).json()
    return env


def _api(env, who, method, url, **kw):
    return env["api"].request(method, url, headers={"Authorization": f"Bearer {env['tokens'][who]}"}, **kw)


def _search(env, who="vera"):
    return _api(env, who, "POST", "/api/search",
                files={"image": ("two.jpg", env["photo"].read_bytes(), "image/jpeg")}).json()


def _propose(env, face: int, person: str, who="vera", found=None, **extra):
    found = found or _search(env, who)
    return _api(env, who, "POST", "/api/identifications", json={
        "probe": found["probe"], "face": face, "person": person, "note": "compared the faces",
        "case_title": "rules", **extra})


def _confirm(env, who, ident, **body):
    return _api(env, who, "POST", f"/api/identifications/{ident}/confirm",
                json={"note": "jaw and ears agree", **body})


def test_a_below_threshold_name_carries_what_the_search_said(env):
    face = env["search"]["faces"][1]
    assert face["decision"] == "no_match"
    cand = face["candidates"][0]
    r = _propose(env, 2, cand["person"], search_decision="match", search_score=0.99)  # ignored
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["search_decision"] == "no_match" and item["search_score"] == cand["score"]
    assert item["search_threshold"] == face["threshold"] and item["search_fpir"] == face["fpir"]
    got = _api(env, "rita", "GET", f"/api/identifications/{item['id']}").json()
    assert got["search_decision"] == "no_match" and got["search_supported"] is False
    listed = {i["id"]: i for i in _api(env, "rita", "GET", "/api/identifications").json()}
    assert listed[item["id"]]["search_decision"] == "no_match"
    page = _text(Session(env["app"], env["ds"], "rita").get(f"/identifications/{item['id']}").text)
    assert (f"The search did NOT support this name: score {cand['score']:.3f} is below the threshold "
            f"{face['threshold']:.3f} for a 1% false-positive identification rate") in page
    queue = _text(Session(env["app"], env["ds"], "rita").get("/identifications").text)
    assert "NOT supported" in queue


def test_a_match_is_recorded_as_a_match(env):
    face = env["search"]["faces"][0]
    top = face["candidates"][0]
    r = _propose(env, 1, top["person"])
    item = r.json()
    assert item["search_decision"] == "match" and item["search_score"] == top["score"]
    page = _text(Session(env["app"], env["ds"], "rita").get(f"/identifications/{item['id']}").text)
    assert f"The search found this name a possible match (a lead to check, not a verdict): score {top['score']:.3f}" in page
    assert item["fmr_upper_bound"] is top["fmr_upper_bound"]
    assert f"FMR {_pct(top['fmr'], top['fmr_upper_bound'])}: the chance a stranger" in page
    result = _text(Session(env["app"], env["ds"], "vera").get(f"/probes/{_search(env)['probe']}").text)
    assert f"score {top['score']:.3f} · FMR {_pct(top['fmr'], top['fmr_upper_bound'])}" in result
    assert "did NOT support" not in page


def test_confirming_an_unsupported_name_needs_stated_evidence(env):
    cand = env["search"]["faces"][1]["candidates"][1]
    item = _propose(env, 2, cand["person"]).json()
    seen = item["evidence_ids"][:1]
    r = _confirm(env, "rita", item["id"], evidence_seen=seen)
    assert r.status_code == 400 and "did not support" in r.json()["error"] and "other_evidence" in r.json()["error"]
    assert _confirm(env, "rita", item["id"], evidence_seen=seen, other_evidence="looks like").status_code == 400
    r = _confirm(env, "rita", item["id"], evidence_seen=seen,
                 other_evidence="badge number 4471 is legible on the chest")
    assert r.status_code == 200 and r.json()["confirmations"] == 1
    assert r.json()["events"][-1]["other_evidence"] == "badge number 4471 is legible on the chest"
    rows = _api(env, "ada", "GET", "/api/audit?limit=50").json()["rows"]
    logged = [x for x in rows if x["action"] == "confirm"]
    assert logged and "badge number 4471" in str(logged[0])
    page = _text(Session(env["app"], env["ds"], "rob").get(f"/identifications/{item['id']}").text)
    assert "Other evidence: badge number 4471 is legible on the chest" in page
    assert 'name="other_evidence"' in Session(env["app"], env["ds"], "rob").get(f"/identifications/{item['id']}").text


def test_the_proposer_sees_no_confirm_form(env):
    found = _search(env, "rita")
    item = _propose(env, 1, "subject01", who="rita", found=found).json()
    mine = Session(env["app"], env["ds"], "rita").get(f"/identifications/{item['id']}").text
    assert "/confirm\"" not in mine and "You proposed this name, so you cannot confirm it" in _text(mine)
    theirs = Session(env["app"], env["ds"], "rob").get(f"/identifications/{item['id']}").text
    assert f'action="/identifications/{item["id"]}/confirm"' in theirs
    assert "Needs 2 confirmations from reviewers other than the proposer; 0 so far" in _text(theirs)
    assert _api(env, "vera", "POST", f"/api/identifications/{item['id']}/dispute", json={"note": "older photo"}).status_code == 200
    mine = Session(env["app"], env["ds"], "rita").get(f"/identifications/{item['id']}").text
    assert "/reopen\"" not in mine and "another reviewer decides" in _text(mine)
    r = _api(env, "rita", "POST", f"/api/identifications/{item['id']}/reopen", json={"note": "it is him"})
    assert r.status_code == 403 and "proposer" in r.json()["error"]
    assert _api(env, "rob", "POST", f"/api/identifications/{item['id']}/reopen", json={"note": "checked"}).status_code == 200


def test_a_duplicate_proposal_points_to_the_existing_one(env):
    found = _search(env)
    first = _propose(env, 1, "subject01", found=found)
    assert first.status_code == 201
    again = _propose(env, 1, "subject01", who="vera", found=found)
    assert again.status_code == 409 and again.json()["existing"] == first.json()["id"]
    assert f"identification {first.json()['id']}" in again.json()["error"]
    s = Session(env["app"], env["ds"], "vera")                           # the case is hers
    r = s.post("/identifications", {"photo": str(first.json()["photo_id"]), "face": "1",
                                    "person": "subject01", "note": "same"})
    assert r.status_code == 303 and r.headers["location"] == f"/identifications/{first.json()['id']}?duplicate=1"
    assert "already proposed for this face" in _text(s.get(r.headers["location"]).text)
    other = _propose(env, 1, "subject02", found=found)                  # another person: allowed
    assert other.status_code == 201
    retracted = _api(env, "rita", "POST", f"/api/identifications/{first.json()['id']}/retract",
                     json={"note": "wrong photo"})
    assert retracted.json()["state"] == "retracted"
    assert _propose(env, 1, "subject01", found=found).status_code == 201  # none live any more


def test_evidence_seen_must_be_evidence_shown(env):
    item = _propose(env, 1, "subject01").json()
    r = _confirm(env, "rita", item["id"], evidence_seen=[item["evidence_ids"][0], "zzzzzzzz", "x"])
    assert r.status_code == 400 and "x, zzzzzzzz" in r.json()["error"]
    with Catalog(env["ds"]) as cat:
        other = cat.db.execute("SELECT id FROM faces WHERE person = 'subject02'").fetchone()[0]
    assert _confirm(env, "rita", item["id"], evidence_seen=[other]).status_code == 400
    assert _confirm(env, "rita", item["id"], evidence_seen=item["evidence_ids"]).status_code == 200


def test_one_reviewer_is_enough_only_with_a_warning(env):
    admin = Session(env["app"], env["ds"], "ada")
    assert admin.post("/admin/settings", {"required_confirmations": "1"}).status_code == 303
    try:
        item = _propose(env, 1, "subject01").json()
        page = _text(Session(env["app"], env["ds"], "rob").get(f"/identifications/{item['id']}").text)
        assert "Needs 1 confirmation from reviewers other than the proposer; 0 so far" in page
        r = _confirm(env, "rob", item["id"], evidence_seen=item["evidence_ids"][:1])
        assert r.json()["state"] == "confirmed" and r.json()["warnings"] == ["confirmed by a single reviewer"]
        page = _text(Session(env["app"], env["ds"], "vera").get(f"/identifications/{item['id']}").text)
        assert "Warning: confirmed by a single reviewer" in page
        listed = {i["id"]: i for i in _api(env, "vera", "GET", "/api/identifications").json()}
        assert listed[item["id"]]["warnings"] == ["confirmed by a single reviewer"]
        assert "confirmed by a single reviewer" in _text(Session(env["app"], env["ds"], "vera").get("/identifications").text)
    finally:
        assert admin.post("/admin/settings", {"required_confirmations": "2"}).status_code == 303


def test_a_team_too_small_to_confirm_is_told(env, tmp_path):
    from pof.web.app import create_app
    ds = copy_dataset(build_dataset(tmp_path), tmp_path / "small")
    with Catalog(ds) as cat:
        Accounts(cat.db, fast_hasher()).disable("rob")        # left: rita and ada besides vera
        Accounts(cat.db, fast_hasher()).disable("ada")
    small = {**env, "ds": ds, "app": (app := create_app(ds, web_config())), "api": TestClient(app),
             "tokens": {"vera": token_for(ds, "vera")}}
    item = _propose(small, 1, "subject01").json()
    page = _text(Session(app, ds, "rita").get(f"/identifications/{item['id']}").text)
    assert "Only 1 reviewer account besides the proposer: this name cannot be confirmed" in page
    queue = _text(Session(app, ds, "vera").get("/identifications").text)
    assert "1 reviewer or admin account: a name one of them proposes needs 2 other reviewers" in queue
    assert "needs 2 other reviewers" not in _text(Session(env["app"], env["ds"], "vera").get("/identifications").text)


def test_one_format_for_false_match_rates(env):
    """The result page and the review list write the same FMR the same way."""
    cand = env["search"]["faces"][1]["candidates"][2]
    item = _propose(env, 2, cand["person"]).json()
    pct = _pct(cand["fmr"], cand["fmr_upper_bound"])
    queue = _text(Session(env["app"], env["ds"], "vera").get("/identifications").text)
    assert f"score {cand['score']:.3f} (threshold" in queue and f"FMR {pct}" in queue
    result = _text(Session(env["app"], env["ds"], "vera").get(f"/probes/{_search(env)['probe']}").text)
    assert f"score {cand['score']:.3f} · FMR {pct}" in result
    assert item["search_decision"] == "no_match"


def test_a_state_error_reads_correctly(env):
    item = _propose(env, 1, "subject03").json()
    _api(env, "rita", "POST", f"/api/identifications/{item['id']}/retract", json={"note": "no"})
    r = _api(env, "vera", "POST", f"/api/identifications/{item['id']}/dispute", json={"note": "x"})
    assert r.status_code == 409 and "cannot be disputed now" in r.json()["error"]


def test_an_excluded_person_is_named_nowhere_but_to_admins(env, tmp_path):
    from pof.web.app import create_app
    ds = copy_dataset(build_dataset(tmp_path), tmp_path / "excl")
    app = create_app(ds, web_config())
    x = {**env, "ds": ds, "app": app, "api": TestClient(app),
         "tokens": {name: token_for(ds, name) for name in USERS}}
    item = _propose(x, 1, "subject01").json()
    with Catalog(ds) as cat:
        images = [r[0] for r in cat.db.execute("SELECT id FROM faces WHERE person = 'subject01'")]
    case = item["photo_id"]
    case_id = _api(x, "vera", "GET", "/api/cases").json()[0]["id"]
    assert "subject01" in str(_api(x, "vera", "GET", f"/api/cases/{case_id}").json())
    vera = Session(app, ds, "vera")
    assert vera.get(f"/cases/photos/{case}/faces/1.jpg").status_code == 200       # a match: shown
    assert _api(x, "ada", "POST", "/api/exclusions", json={"person": "subject01", "reason": "court order 9"}).status_code == 201

    assert _api(x, "vera", "GET", f"/api/identifications/{item['id']}").status_code == 404
    assert item["id"] not in {i["id"] for i in _api(x, "vera", "GET", "/api/identifications").json()}
    shown = str(_api(x, "vera", "GET", f"/api/cases/{case_id}").json())
    assert "subject01" not in shown and not any(i in shown for i in images)
    assert vera.get(f"/identifications/{item['id']}").status_code == 404
    assert vera.get(f"/cases/photos/{case}/faces/1.jpg").status_code == 404       # no longer a match
    assert Session(app, ds, "ada").get(f"/cases/photos/{case}/faces/1.jpg").status_code == 200
    for url in ("/identifications", f"/cases/{case_id}", "/gallery"):
        page = vera.get(url).text
        assert "subject01" not in page and not any(i in page for i in images), url
    assert vera.get("/persons/subject01").status_code == 404
    assert _api(x, "vera", "POST", f"/api/identifications/{item['id']}/dispute", json={"note": "n"}).status_code == 404

    got = _api(x, "ada", "GET", f"/api/identifications/{item['id']}").json()
    assert got["excluded"] is True and got["person"] == "subject01"
    assert {i["id"]: i["excluded"] for i in _api(x, "ada", "GET", "/api/identifications").json()}[item["id"]]
    ada = Session(app, ds, "ada")
    assert "excluded" in _text(ada.get(f"/identifications/{item['id']}").text)
    assert "subject01" in ada.get("/identifications").text and "excluded" in ada.get("/identifications").text
    assert "subject01" in str(_api(x, "ada", "GET", f"/api/cases/{case_id}").json())
    case_page = _text(ada.get(f"/cases/{case_id}").text)       # the admin sees it marked
    assert "subject01" in case_page and "excluded" in case_page and "on the exclusion list" in case_page
    assert f'action="/identifications"' not in ada.get(f"/cases/{case_id}").text or \
        'value="subject01"' not in ada.get(f"/cases/{case_id}").text        # and cannot propose it
    evidence = got["evidence_ids"]
    r = _api(x, "ada", "POST", f"/api/identifications/{item['id']}/confirm",
             json={"note": "same ears", "evidence_seen": evidence[:1]})
    assert r.status_code == 403 and "exclusion list" in r.json()["error"]    # nor can anyone confirm it
    rows = _api(x, "ada", "GET", "/api/audit?limit=100").json()["rows"]
    assert any(r["action"] == "propose" and "subject01" in str(r) for r in rows)     # history kept


def test_the_person_page_lists_the_identification_that_enrolled_them(env, tmp_path):
    from pof.web.app import create_app
    ds = copy_dataset(build_dataset(tmp_path), tmp_path / "enrol")
    app = create_app(ds, web_config())
    x = {**env, "ds": ds, "app": app, "api": TestClient(app),
         "tokens": {name: token_for(ds, name) for name in USERS}}
    up = _api(x, "vera", "POST", "/api/unknown/events", data={"event": "march 1"},
              files=[("images", (n, (YALE / n).read_bytes(), "image/gif")) for n in ("subject04.normal", "subject04.sad")])
    assert up.status_code == 201, up.text
    gid = _api(x, "vera", "GET", "/api/unknown/groups").json()[0]["id"]
    vera = Session(app, ds, "vera")
    r = vera.post(f"/unknown/groups/{gid}/propose", {"person": "Officer Four", "note": "badge 4 seen"})
    ident = int(r.headers["location"].rsplit("/", 1)[1])
    got = _api(x, "vera", "GET", f"/api/identifications/{ident}").json()
    assert got["search_decision"] == "none" and "group" in got["evidence_ids"]
    assert "No search supports this name" in _text(vera.get(f"/identifications/{ident}").text)
    for who in ("rita", "rob"):
        s = Session(app, ds, who)
        r = s.post(f"/identifications/{ident}/confirm", {"note": "same face", "evidence_seen": "group",
                                                        "other_evidence": "badge 4 seen in both photos"})
        assert r.status_code == 303
    assert Session(app, ds, "ada").post(f"/unknown/groups/{gid}/enrol", {"label": "Officer_Four"}).status_code == 303
    page = _text(vera.get("/persons/Officer_Four").text)
    assert "No identification has named this person" not in page
    assert f"#{ident}" in page and "enrolled from this identification" in page
    assert "Proposed by vera" in page and "confirmed by rita, rob" in page
    person = _api(x, "vera", "GET", "/api/persons/Officer_Four").json()
    assert [i["id"] for i in person["identifications"]] == [ident]
    assert person["identifications"][0]["provenance"]["enrolled_from"] is True


def test_the_person_page_history_matches_the_identification_page(env):
    """After a dispute and a reopening, the person page names the confirmers who count, in the
    order they confirmed (as the identification page does), and shows the other evidence each
    reviewer stated."""
    found = _search(env)
    cand = found["faces"][1]["candidates"][-1]
    item = _propose(env, 2, cand["person"], found=found).json()
    seen = item["evidence_ids"][:1]
    said = {who: f"badge number 77{n} read by {who} on the chest" for n, who in enumerate(("rob", "rita"))}
    assert _confirm(env, "rob", item["id"], evidence_seen=seen, other_evidence=said["rob"]).status_code == 200
    for who, action in (("ada", "dispute"), ("rita", "reopen")):
        r = _api(env, who, "POST", f"/api/identifications/{item['id']}/{action}", json={"note": "checked again"})
        assert r.status_code == 200, r.text
    for who in ("rita", "rob"):
        r = _confirm(env, who, item["id"], evidence_seen=seen, other_evidence=said[who])
        assert r.status_code == 200, r.text
    assert r.json()["state"] == "confirmed" and r.json()["confirmed_by"] == ["rita", "rob"]
    ident = _text(Session(env["app"], env["ds"], "vera").get(f"/identifications/{item['id']}").text)
    assert "(2 of 2 needed): rita, rob." in ident
    person = _api(env, "vera", "GET", f"/api/persons/{cand['person']}").json()
    record = next(i for i in person["identifications"] if i["id"] == item["id"])
    assert record["provenance"]["confirmed_by"] == ["rita", "rob"]
    page = _text(Session(env["app"], env["ds"], "vera").get(f"/persons/{cand['person']}").text)
    mine = page[page.index(f"#{item['id']} "):]
    assert "confirmed by rita, rob" in mine and "rob, rita" not in mine
    for who in ("rob", "rita"):
        assert mine.count(f"Other evidence: {said[who]}") == (2 if who == "rob" else 1)
