"""The review flows walked in headless Chromium by separate users (a viewer who proposes, two
reviewers, an admin), each at 1280 and at 390 px wide:

1. a face the search did not match, blurred to the viewer: she saves the photo to a case and
   shares it, a reviewer marks the face as an officer, she proposes a below-threshold
   candidate, two reviewers confirm stating the other evidence; a duplicate proposal lands on
   the existing one;
2. an admin excludes a person: a viewer no longer sees the name anywhere, the admin sees it
   marked excluded;
3. unknown faces: two event photos, a group marked as an officer, a name proposed, confirmed
   twice, enrolled, shown on the person page;
4. private and shared cases: a viewer's case is hers until she shares it with a reviewer, then
   with all reviewers, then stops; an admin sees every case, marked whose;
5. the admin page's API tokens, one field a line on a phone.

On every page no horizontal scrolling, and every button or toggle pressed lies inside the
viewport with its label uncut. A full-page screenshot of each step goes to $POF_SCREENSHOTS
(default: the test's tmp_path) as ``<flow>-<width>-<step>.png``.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import DEMO, YALE
from .webkit import CHROMIUM, PASSWORD, build_dataset, chromium, copy_dataset, serving, token_for, two_face_photo

HEIGHT = {1280: 900, 390: 844}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def side_by_side(path: Path, *names: str) -> Path:
    """Yale photos pasted side by side into one JPEG (an event photo with several people)."""
    px = [np.asarray(Image.open(YALE / n).convert("RGB")) for n in names]
    Image.fromarray(np.concatenate(px, axis=1)).save(path, "JPEG", quality=95)
    return path


@pytest.fixture(scope="module", params=[1280, 390], ids=lambda w: f"{w}px")
def server(request, tmp_path_factory):
    """The app on a free localhost port (uvicorn in a thread), one fresh copy of the shared
    dataset per viewport width so that the flows at each width start from the same state."""
    width = request.param
    root = tmp_path_factory.mktemp(f"flows{width}")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    tokens = {n: token_for(ds, n) for n in ("vera", "ada")}
    with serving(ds) as url:
        yield {"url": url, "ds": ds, "width": width, "tokens": tokens,
               "two": two_face_photo(root / "two.jpg"),
               "event_b": side_by_side(root / "event_b.jpg", "subject04.sad", "subject13.happy")}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("POF_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Walk:
    """One flow at one width: screenshots numbered by step, layout checks on every page."""

    def __init__(self, flow: str, server: dict, folder: Path) -> None:
        self.flow, self.width, self.folder, self.n = flow, server["width"], folder, 0

    def look(self, page, step: str) -> None:
        """Screenshot the whole page, once every image on it has loaded or failed (lazy ones
        too, and on a busy machine images can come after the load event); it must not scroll
        sideways, and no image may be broken."""
        page.wait_for_load_state()
        page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
        # polled from here: Playwright's own polling evaluates code the app's CSP forbids
        deadline = time.monotonic() + 60
        while not page.evaluate("[...document.images].every(i => i.complete)") and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        self.n += 1
        page.screenshot(path=str(self.folder / f"{self.flow}-{self.width}-{self.n:02d}-{step}.png"),
                        full_page=True)
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        assert wide <= self.width + 1, f"{self.flow} {step}: the page is {wide} px wide in a {self.width} px viewport"
        broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, f"{self.flow} {step}: images that did not load: {broken}"

    def press(self, page, target) -> None:
        """Click a button or toggle a user can see whole without zooming or scrolling sideways."""
        target.scroll_into_view_if_needed()
        assert target.is_visible(), f"{self.flow}: {target} is not visible"
        box = target.bounding_box()
        label = target.inner_text().strip()[:60]
        assert box and box["width"] > 0 and box["height"] > 0, f"{self.flow}: {label!r} has no size"
        assert box["x"] >= 0 and box["x"] + box["width"] <= self.width + 1, \
            f"{self.flow}: {label!r} spans x {box['x']:.0f}..{box['x'] + box['width']:.0f} in a {self.width} px viewport"
        cut = target.evaluate("e => e.scrollWidth > e.clientWidth + 1")
        assert not cut, f"{self.flow}: the label of {label!r} is cut off"
        target.click()

    def sign_in(self, browser, server: dict, name: str):
        ctx = browser.new_context(viewport={"width": self.width, "height": HEIGHT[self.width]})
        page = ctx.new_page()
        page.goto(server["url"] + "/search")
        assert "/login" in page.url
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", PASSWORD)
        self.press(page, page.locator("form[action='/login'] button"))
        page.wait_for_url("**/search")
        return page


def _score(text: str, what: str) -> str:
    m = re.search(what + r" (\d\.\d{3})", text)
    assert m, f"no {what} in {text!r}"
    return m.group(1)


def _face2(page):
    """The closest persons below the threshold for face 2 of a case's first photo."""
    return page.locator("section[id^=photo-]").first.locator("h3:text-is('Face 2') ~ details.more").first


def _propose_below(walk: Walk, page, face, note: str, case_title: str = "", more=None) -> dict:
    """Open the closest persons below the threshold (``more``: that list, if not the face's
    only one) and fill in the proposal of the first one."""
    more = more or face.locator("details.more")
    walk.press(page, more.locator(":scope > summary"))
    cand = more.locator("li.candidate.below").first
    person = cand.locator("input[name=person]").get_attribute("value")
    name = cand.locator(".facts strong").inner_text()
    score = _score(cand.locator(".facts").inner_text(), "score")
    toggle = cand.locator("details.propose > summary")
    assert "search did not support it" in toggle.inner_text()
    walk.press(page, toggle)
    warning = cand.locator("details.propose p.alert").inner_text()
    assert "did NOT support" in warning and score in warning
    if case_title:
        cand.locator("input[name=case_title]").fill(case_title)
    cand.locator("textarea[name=note]").fill(note)
    return {"person": person, "name": name, "score": score, "submit": cand.locator("details.propose button[type=submit]")}


def test_below_threshold_proposal_confirmed_by_two(server, browser, shots):
    walk = Walk("propose", server, shots)
    vera = walk.sign_in(browser, server, "vera")
    walk.look(vera, "search")
    vera.set_input_files("input[name=image]", str(server["two"]))
    walk.press(vera, vera.locator("form[action='/search'] button"))
    vera.wait_for_url("**/probes/**")
    face = vera.locator("#face-2")           # subject04: not in the gallery
    assert "No confident match" in face.locator(".verdict").inner_text()
    assert face.locator("li.candidate.above").count() == 0
    threshold = _score(face.locator(".decision").inner_text(), "threshold")
    walk.look(vera, "result")

    cannot = face.locator("p.cannot-propose")      # blurred to a viewer: she may not name it yet
    assert "ask a reviewer to mark the face as an officer first" in cannot.inner_text()
    assert face.locator("details.propose").count() == 0
    save = vera.locator("form[action$='/save']")
    save.locator("input[name=title]").fill("march 3, city hall")
    walk.press(vera, save.locator("button[type=submit]"))
    vera.wait_for_url(re.compile(r"/cases/\d+$"))
    case_url = vera.url
    share = vera.locator("#sharing form[action$='/share']")
    share.locator("input[name=users]").fill("rita")
    walk.press(vera, share.locator("button"))
    vera.wait_for_url(re.compile(r"/cases/\d+(#sharing)?$"))
    walk.look(vera, "case-shared")

    rita = walk.sign_in(browser, server, "rita")          # a reviewer shows the face: an officer
    rita.goto(case_url)
    walk.press(rita, rita.locator("button:has-text('Mark face 2 as an officer')"))
    rita.wait_for_url(re.compile(r"/cases/\d+#photo-\d+$"))
    walk.look(rita, "case-marked-officer")
    rita.context.close()

    vera.goto(case_url)
    assert vera.locator("p.cannot-propose").count() == 0
    chosen = _propose_below(walk, vera, None, "same ears and hairline as the gallery photo", more=_face2(vera))
    walk.look(vera, "propose-form")
    walk.press(vera, chosen["submit"])
    vera.wait_for_url(re.compile(r"/identifications/\d+$"))
    ident_url = vera.url
    assert "PROPOSED" in vera.locator("h1 .state").inner_text().upper()
    said = vera.locator("p.search-said").inner_text()
    assert "did NOT support" in said and chosen["score"] in said and threshold in said, said
    assert vera.locator("form[action$='/confirm']").count() == 0        # the proposer cannot confirm
    assert vera.locator("form[action$='/dispute']").count() == 1
    walk.look(vera, "proposed")

    vera.goto(case_url)                       # the same name for the same face again
    again = _propose_below(walk, vera, None, "proposing it twice", more=_face2(vera))
    assert again["person"] == chosen["person"]
    walk.press(vera, again["submit"])
    vera.wait_for_url(re.compile(r"/identifications/\d+\?duplicate=1$"))
    assert vera.url.split("?")[0] == ident_url
    assert "already proposed" in vera.locator("p.alert").first.inner_text()
    walk.look(vera, "duplicate")

    for n, name in enumerate(("rita", "rob"), 1):
        rev = walk.sign_in(browser, server, name)
        rev.goto(ident_url)
        walk.look(rev, f"{name}-opens")
        unblur = rev.locator("button:has-text('Mark as an officer')")
        if unblur.count():                    # the face the search did not match is blurred
            walk.press(rev, unblur)
            rev.wait_for_url(re.compile(r"/(cases|identifications)/\d+"))   # the case, if shared, or back here
            walk.look(rev, f"{name}-marked-officer")
            rev.goto(ident_url)
            assert rev.locator("img[alt='the face being named']").count() == 1
        form = rev.locator("form[action$='/confirm']")
        assert "did not support" in form.inner_text()
        boxes = form.locator("input[name=evidence_seen]")
        assert boxes.count() >= 1
        for i in range(boxes.count()):
            boxes.nth(i).check()
        form.locator("textarea[name=other_evidence]").fill(f"badge number 4417 read by {name} in the photo")
        form.locator("textarea[name=note]").fill(f"{name}: ears, jaw and hairline agree")
        walk.look(rev, f"{name}-confirm-form")
        walk.press(rev, form.locator("button[type=submit]"))
        rev.wait_for_url(ident_url)
        assert f"{n} of 2" in rev.locator("p.needs").inner_text()
        walk.look(rev, f"{name}-confirmed")
        if n == 2:
            assert "CONFIRMED" in rev.locator("h1 .state").inner_text().upper()
            history = rev.locator("ol.history").inner_text()
            assert history.count("Other evidence: badge number 4417") == 2
        rev.context.close()

    vera.goto(ident_url)
    assert "CONFIRMED" in vera.locator("h1 .state").inner_text().upper()
    assert "did NOT support" in vera.locator("p.search-said").inner_text()
    walk.look(vera, "proposer-sees-confirmed")
    vera.context.close()


def test_exclusion_hides_the_name_from_viewers(server, browser, shots):
    import httpx
    walk = Walk("exclude", server, shots)
    api = httpx.Client(base_url=server["url"], timeout=120,
                       headers={"Authorization": f"Bearer {server['tokens']['vera']}"})
    photo = DEMO / "probes" / "obama_joint_session_2009.jpg"
    found = api.post("/api/search", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}).json()
    top = found["faces"][0]["candidates"][0]
    assert top["person"] == "Barack_Obama"
    r = api.post("/api/identifications", json={"person": "Barack_Obama", "note": "the face matches", "face": 1,
                                               "probe": found["probe"], "case_title": "joint session"})
    assert r.status_code == 201, r.text
    url = f"{server['url']}/identifications/{r.json()['id']}"
    named = r"Barack[ _]Obama"           # the list shows the label, the other pages the name

    vera = walk.sign_in(browser, server, "vera")
    vera.goto(server["url"] + "/cases")
    vera.locator("a", has_text="joint session").click()
    vera.wait_for_url(re.compile(r"/cases/\d+$"))
    pages = {"identification": url, "list": server["url"] + "/identifications",
             "person": server["url"] + "/persons/Barack_Obama", "gallery": server["url"] + "/gallery",
             "case": vera.url}
    for step, where in pages.items():
        vera.goto(where)
        assert re.search(named, vera.locator("main").inner_text()), f"{step}: the viewer does not see the name"
        walk.look(vera, f"viewer-before-{step}")

    ada = walk.sign_in(browser, server, "ada")
    ada.goto(server["url"] + "/admin")
    form = ada.locator("#exclusions form[action='/admin/exclusions']")
    form.locator("input[name=person]").fill("Barack_Obama")
    form.locator("input[name=reason]").fill("court order 2026-17")
    walk.look(ada, "admin-exclusion-form")
    walk.press(ada, form.locator("button[type=submit]"))
    ada.wait_for_load_state()
    assert "court order 2026-17" in ada.locator("#exclusions").inner_text()
    walk.look(ada, "admin-excluded")

    for step, where in pages.items():
        resp = vera.goto(where)
        walk.look(vera, f"viewer-after-{step}")
        body = vera.locator("body").inner_text()
        if step == "person":              # the 404 repeats the label the viewer asked for, nothing else
            assert resp.status == 404 and "Barack Obama" not in body and vera.locator("main img").count() == 0
        else:
            assert not re.search(named, body), f"{step}: a viewer still sees the name"
            assert resp.status == (404 if step == "identification" else 200)

    for step, where in pages.items():
        resp = ada.goto(where)
        walk.look(ada, f"admin-after-{step}")
        assert resp.status == 200
        assert re.search(named, ada.locator("main").inner_text()), f"{step}: the admin does not see the name"
        marked = ada.locator(".tag:has-text('excluded'), .tag:has-text('exclusion list')")
        assert marked.count() >= 1, f"{step}: the admin does not see the person marked excluded"
    vera.context.close()
    ada.context.close()
    api.close()


def test_unknown_faces_named_confirmed_and_enrolled(server, browser, shots):
    walk = Walk("unknown", server, shots)
    rita = walk.sign_in(browser, server, "rita")
    rita.goto(server["url"] + "/unknown")
    walk.look(rita, "upload-form")
    rita.fill("input[name=event]", "march 8, bridge")
    rita.set_input_files("input[name=images]", [str(server["two"]), str(server["event_b"])])
    walk.press(rita, rita.locator("form[action='/unknown/upload'] button"))
    rita.wait_for_load_state()
    assert "2 photo(s), 4 face(s)" in rita.locator("p.ok").inner_text()
    assert rita.locator("input[name=event]").input_value() == "march 8, bridge"
    inner = rita.evaluate("(() => { const m = document.querySelector('main'), s = getComputedStyle(m);"
                          " return m.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); })()")
    card = rita.locator("section.card.upload").bounding_box()
    assert card["width"] >= inner - 2, f"the upload card is {card['width']:.0f} px wide of {inner:.0f}"
    walk.look(rita, "groups")
    pair = rita.locator("a.person", has_text="2 faces")      # subject04 in both photos
    assert pair.count() == 1, rita.locator("section.grid").inner_text()
    walk.press(rita, pair)
    rita.wait_for_url(re.compile(r"/unknown/groups/\d+$"))
    group_url = rita.url
    assert rita.locator("figure.sighting img.crop").count() == 2
    assert "faces blurred" in rita.locator("h1").inner_text()
    walk.look(rita, "group-blurred")
    walk.press(rita, rita.locator("form[action$='/officer'] button"))
    rita.wait_for_url(group_url)
    assert "officer" in rita.locator("h1 .tag").inner_text()
    walk.look(rita, "group-officer")

    form = rita.locator("form[action$='/propose']")
    form.locator("input[name=person]").fill("Officer Four")
    form.locator("textarea[name=note]").fill("badge 4 seen in both photos")
    walk.press(rita, form.locator("button[type=submit]"))
    rita.wait_for_url(re.compile(r"/identifications/\d+$"))
    ident_url = rita.url
    assert "No search supports this name" in rita.locator("p.search-said").inner_text()
    assert rita.locator("form[action$='/confirm']").count() == 0        # the proposer cannot confirm
    assert "You proposed this name" in rita.locator("section.actions").inner_text()
    walk.look(rita, "proposed")

    for n, name in enumerate(("rob", "ada"), 1):
        rev = walk.sign_in(browser, server, name)
        rev.goto(ident_url)
        form = rev.locator("form[action$='/confirm']")
        boxes = form.locator("input[name=evidence_seen]")
        assert boxes.count() >= 1
        for i in range(boxes.count()):
            boxes.nth(i).check()
        other = form.locator("textarea[name=other_evidence]")
        if other.count():
            other.fill(f"badge number 4 seen by {name} in both photos")
        form.locator("textarea[name=note]").fill(f"{name}: the two faces are the same man")
        walk.look(rev, f"{name}-confirm-form")
        walk.press(rev, form.locator("button[type=submit]"))
        rev.wait_for_url(ident_url)
        assert f"{n} of 2" in rev.locator("p.needs").inner_text()
        walk.look(rev, f"{name}-confirmed")
        if n == 1:
            rev.context.close()
    ada = rev
    assert "CONFIRMED" in ada.locator("h1 .state").inner_text().upper()

    ada.goto(group_url)
    enrol = ada.locator("form[action$='/enrol']")
    assert "Officer Four" in enrol.inner_text()
    enrol.locator("input[name=label]").fill("Officer_Four")
    walk.look(ada, "enrol-form")
    walk.press(ada, enrol.locator("button[type=submit]"))
    ada.wait_for_url("**/persons/Officer_Four")
    assert "Officer Four" in ada.locator("h1").inner_text()
    assert ada.locator(".images img").count() == 2
    history = ada.locator("main").inner_text()
    ident_id = ident_url.rsplit("/", 1)[1]
    assert f"#{ident_id}" in history and "enrolled from this identification" in history
    for name in ("rob", "ada"):
        assert f"Other evidence: badge number 4 seen by {name} in both photos" in history
    assert re.search(r"confirmed by rob, ada\b", history), history
    assert f"identification {ident_id} confirmed by rob, ada;" in history        # the images' provenance
    walk.look(ada, "person")

    rita.goto(group_url)
    assert "enrolled as Officer_Four" in rita.locator("main").inner_text()
    walk.look(rita, "group-enrolled")
    rita.context.close()
    ada.context.close()


def _shared_with_me(page) -> str:
    return page.locator("section.card:has(h2:text-is('Shared with me'))").inner_text()


def test_private_and_shared_cases(server, browser, shots):
    walk = Walk("cases", server, shots)
    url = server["url"]
    vera = walk.sign_in(browser, server, "vera")
    vera.set_input_files("input[name=image]", str(server["two"]))
    walk.press(vera, vera.locator("form[action='/search'] button"))
    vera.wait_for_url("**/probes/**")
    save = vera.locator("form[action$='/save']")
    save.locator("select[name=case_id]").select_option("")
    save.locator("input[name=title]").fill("vera's own case, not yet shared")
    walk.press(vera, save.locator("button[type=submit]"))
    vera.wait_for_url(re.compile(r"/cases/\d+$"))
    case_url = vera.url
    assert "no one else" in vera.locator("#sharing").inner_text()
    walk.look(vera, "saved")

    rita = walk.sign_in(browser, server, "rita")
    assert rita.goto(case_url).status == 404
    assert "not yet shared" not in rita.locator("body").inner_text()
    walk.look(rita, "not-shared-404")
    rita.goto(url + "/cases")
    assert "not yet shared" not in rita.locator("main").inner_text()
    walk.look(rita, "list-without-it")

    def share(**fields) -> None:
        form = vera.locator("#sharing form[action$='/share']")
        if "users" in fields:
            form.locator("input[name=users]").fill(fields["users"])
        if "role" in fields:
            form.locator("select[name=role]").select_option(fields["role"])
        walk.press(vera, form.locator("button"))
        vera.wait_for_url(re.compile(r"/cases/\d+#sharing$"))

    def unshare(label: str) -> None:
        row = vera.locator("#sharing ul.shares > li", has_text=label)
        walk.press(vera, row.locator("button:has-text('Stop sharing')"))
        vera.wait_for_url(re.compile(r"/cases/\d+#sharing$"))

    share(users="rita")
    assert "rita" in vera.locator("#sharing ul.shares").inner_text()
    walk.look(vera, "shared-with-rita")
    rita.goto(url + "/cases")
    assert "not yet shared" in _shared_with_me(rita)
    walk.look(rita, "list-shared-with-me")
    rita.locator("section.card:has(h2:text-is('Shared with me')) a", has_text="not yet shared").click()
    rita.wait_for_url(case_url)
    assert "Shared with you by vera." in rita.locator("main").inner_text()
    assert rita.locator("#sharing form").count() == 0           # only the owner or an admin shares
    walk.look(rita, "opens-shared")

    rob = walk.sign_in(browser, server, "rob")
    assert rob.goto(case_url).status == 404
    share(role="reviewer")
    assert "all reviewers" in vera.locator("#sharing ul.shares").inner_text()
    walk.look(vera, "shared-with-reviewers")
    rob.goto(url + "/cases")
    assert "not yet shared" in _shared_with_me(rob)
    assert rob.goto(case_url).status == 200
    walk.look(rob, "opens-as-a-reviewer")

    unshare("rita")
    shares = vera.locator("#sharing ul.shares").inner_text()
    assert "all reviewers" in shares and not re.search(r"^rita\b", shares, re.M)
    walk.look(vera, "stopped-rita")
    assert rita.goto(case_url).status == 200                     # still one of all reviewers
    assert "Shared with all reviewers: you among them." in rita.locator("main").inner_text()
    walk.look(rita, "still-a-reviewer")
    unshare("all reviewers")
    assert vera.locator("#sharing ul.shares").count() == 0
    assert "no one else" in vera.locator("#sharing").inner_text()
    walk.look(vera, "stopped-reviewers")
    for who, page in (("rita", rita), ("rob", rob)):
        assert page.goto(case_url).status == 404, who
        walk.look(page, f"{who}-404-again")
        page.goto(url + "/cases")
        assert "not yet shared" not in page.locator("main").inner_text(), who
        page.context.close()

    ada = walk.sign_in(browser, server, "ada")
    ada.goto(url + "/cases")
    others = ada.locator("section.card:has(h2:has-text('you are an admin'))")
    row = others.locator("tr", has_text="not yet shared")
    assert row.count() == 1 and "vera" in row.inner_text()
    walk.look(ada, "admin-list")
    ada.goto(case_url)
    assert "You see it as an admin" in ada.locator("main").inner_text()
    assert ada.locator("#sharing form[action$='/share']").count() == 1
    walk.look(ada, "admin-opens")
    vera.context.close()
    ada.context.close()


def test_admin_token_rows(server, browser, shots):
    """The API tokens on the admin page: a table at 1280 px; on a phone each token is a block,
    one field a line, and a field left empty (no label) is not shown."""
    walk = Walk("admin", server, shots)
    ada = walk.sign_in(browser, server, "ada")
    ada.goto(server["url"] + "/admin")
    walk.look(ada, "tokens")
    rows = ada.locator("#tokens tbody tr")
    assert rows.count() >= 2
    for i in range(rows.count()):
        row = rows.nth(i)
        label = row.locator("td[data-label=Label]")
        assert label.inner_text() == ""                        # the tokens were made without one
        fields = [row.locator(f"td[data-label='{k}']").bounding_box() for k in ("User", "Created", "Expires", "Last used")]
        if server["width"] == 390:
            assert not label.is_visible(), "an empty Label field is shown on a phone"
            tops = [f["y"] for f in fields]
            assert tops == sorted(tops) and len(set(tops)) == len(tops), f"token fields share a line: {tops}"
            assert all(f["x"] == fields[0]["x"] for f in fields)
        else:
            assert ada.locator("#tokens thead").is_visible()
            assert len({round(f["y"]) for f in fields}) == 1   # one row of a table
    ada.context.close()
