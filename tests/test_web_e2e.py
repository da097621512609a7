"""End to end in headless Chromium (Debian's /usr/bin/chromium, driven by playwright): sign
in, search a photo, see the candidates, propose, confirm with two reviewers, dispute, browse
the gallery. Every page is also loaded at phone width (390 px) and must not scroll sideways.

Set POF_SHOTS=/tmp/pof-shots to save screenshots of each page at 1280 and 390 px wide.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import YALE
from .webkit import CHROMIUM, PASSWORD, build_dataset, chromium, copy_dataset, serving, two_face_photo

SHOTS = os.environ.get("POF_SHOTS")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn serving the app on a free localhost port, in a thread."""
    root = tmp_path_factory.mktemp("e2e")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    with serving(ds) as url:
        yield {"url": url, "ds": ds, "photo": two_face_photo(root / "two.jpg")}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def sign_in(browser, server, name):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(server["url"] + "/search")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button")
    page.wait_for_url("**/search")
    return page


def look(page, name: str) -> None:
    """At phone width the page must not scroll sideways; screenshots if POF_SHOTS is set."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}-1280.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/{name}-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert overflow <= 392, f"{name}: {overflow} px wide at phone width"


def test_search_propose_confirm_dispute_browse(server, browser):
    vera = sign_in(browser, server, "vera")
    look(vera, "search")
    vera.set_input_files("input[name=image]", str(server["photo"]))
    vera.click("form[action='/search'] button")
    vera.wait_for_url("**/probes/**")
    face1, face2 = vera.locator("#face-1"), vera.locator("#face-2")
    assert "Possible match" in face1.locator(".verdict").inner_text()
    assert "No confident match" in face2.locator(".verdict").inner_text()
    assert "FMR" in face1.inner_text() and "subject01" in face1.locator(".candidate").first.inner_text()
    assert vera.locator("#face-1 .candidate").first.locator("img").count() >= 2   # probe + evidence
    assert vera.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    look(vera, "result")

    first = face1.locator(".candidate").first
    first.locator("summary").click()
    first.locator("input[name=case_title]").fill("march 3, city hall")
    first.locator("textarea[name=note]").fill("same face as the gallery photos")
    first.locator("button[type=submit]").click()
    vera.wait_for_url("**/identifications/*")
    ident_url = vera.url
    assert "PROPOSED" in vera.locator("h1 .state").inner_text().upper()
    look(vera, "identification")

    for n, name in enumerate(("rita", "rob"), 1):
        rev = sign_in(browser, server, name)
        rev.goto(ident_url)
        form = rev.locator("form[action$='/confirm']")
        form.locator("input[name=evidence_seen]").first.check()
        form.locator("textarea[name=note]").fill(f"{name}: jaw, ears and hairline agree")
        form.locator("button[type=submit]").click()
        rev.wait_for_load_state()
        assert f"{n} of 2" in rev.content()
        if n == 2:
            assert "CONFIRMED" in rev.locator("h1 .state").inner_text().upper()
            look(rev, "identification-confirmed")
            rev.goto(server["url"] + "/identifications")
            look(rev, "identifications")
        rev.context.close()

    vera.goto(ident_url)
    vera.locator("form[action$='/dispute'] textarea").fill("the photo is from before he joined")
    vera.locator("form[action$='/dispute'] button").click()
    vera.wait_for_load_state()
    assert "DISPUTED" in vera.locator("h1 .state").inner_text().upper()
    history = vera.locator("ol.history").inner_text().lower()
    assert history.count("confirm by") == 2 and "dispute by" in history

    vera.goto(server["url"] + "/gallery")
    assert vera.locator("a.person").count() == 5
    vera.select_option("select[name=agency]", "Executive Office of the President")
    vera.click("form.filters button[type=submit]")
    vera.wait_for_load_state()
    assert vera.locator("a.person").count() == 2
    look(vera, "gallery")
    vera.goto(server["url"] + "/persons/subject01")
    assert "Identification history" in vera.content() and "disputed" in vera.content()
    assert vera.locator(".images img").count() == 2
    look(vera, "person")
    vera.goto(server["url"] + "/cases")
    vera.click("text=march 3, city hall")
    vera.wait_for_load_state()
    look(vera, "case")
    vera.goto(server["url"] + "/admin")
    assert "Not allowed" in vera.content()
    look(vera, "error-403")
    vera.click("button:has-text('Sign out')")
    vera.wait_for_url("**/login")
    look(vera, "login")
    vera.context.close()


def test_unknown_faces_and_admin_pages(server, browser):
    ada = sign_in(browser, server, "ada")
    ada.goto(server["url"] + "/unknown")
    ada.fill("input[name=event]", "march 8, bridge")
    ada.set_input_files("input[name=images]", [str(server["photo"]), str(YALE / "subject04.sad")])
    ada.click("form[action='/unknown/upload'] button")
    ada.wait_for_load_state()
    assert "3 face(s)" in ada.content() and ada.locator("a.person").count() == 2
    look(ada, "unknown")
    ada.locator("a.person").first.click()
    ada.wait_for_load_state()
    look(ada, "group")
    ada.goto(server["url"] + "/admin")
    ada.fill("#exclusions input[name=person]", "Joseph_Biden")
    ada.fill("#exclusions input[name=reason]", "court order 2026-17")
    ada.click("#exclusions form button")
    ada.wait_for_load_state()
    assert "court order 2026-17" in ada.content()
    look(ada, "admin")
    ada.goto(server["url"] + "/admin/audit")
    assert "Chain intact" in ada.content() and re.search(r"\bconfirm\b", ada.content())
    look(ada, "audit")
    ada.context.close()
