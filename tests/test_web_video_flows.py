"""A clip searched in headless Chromium, at 1280 and 390 px wide: a viewer uploads it on the
search page and sees one row per track, the matched track's frames as they are and the
other's blurred; a reviewer marks the other track as an officer and its frames are shown.
No horizontal scrolling, no broken image; full-page screenshots go to $POF_SCREENSHOTS as
``clip-<width>-<step>.png``."""
from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import pytest

from .test_web_flows import Walk, browser, shots  # noqa: F401  (fixtures)
from .videokit import pan, photo, write_clip
from .webkit import CHROMIUM, build_dataset, copy_dataset, serving

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module", params=[1280, 390], ids=lambda w: f"{w}px")
def server(request, tmp_path_factory):
    width = request.param
    root = tmp_path_factory.mktemp(f"clipflow{width}")
    ds = copy_dataset(build_dataset(tmp_path_factory.mktemp("webbuild")), root / "ds")
    clip = write_clip(root / "march 3.mp4", itertools.chain(
        pan(photo("subject01.glasses"), 25),
        pan(photo("subject04.normal"), 25, background=200, dx=-1, scale=0.8)))
    with serving(ds) as url:
        yield {"url": url, "ds": ds, "width": width, "clip": clip}


def _loaded(page) -> None:
    """Every image on the page loaded or failed (polled from here: a page-side poll of a
    string predicate is an eval, which the app's CSP refuses)."""
    page.wait_for_load_state()
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    deadline = time.monotonic() + 60
    while not page.evaluate("[...document.images].every(i => i.complete)"):
        assert time.monotonic() < deadline, "images still loading after 60 s"
        time.sleep(0.1)


def _strip_pixels(page, n: int) -> list[str]:
    return page.locator(f"#face-{n} .strip img").evaluate_all("els => els.map(e => e.alt)")


def test_a_clip_result_page(server, browser, shots):  # noqa: F811
    walk = Walk("clip", server, shots)
    vera = walk.sign_in(browser, server, "vera")
    vera.set_input_files("input[name=image]", str(server["clip"]))
    walk.press(vera, vera.locator("form[action='/search'] button"))
    vera.wait_for_url("**/probes/**", timeout=120_000)
    rows = vera.locator("table.tracks tbody tr")
    assert rows.count() == 2
    first, second = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    assert "00:00–00:02" in first and "possible match" in first
    assert "00:02–00:04" in second and "no confident match" in second
    assert all("(blurred)" not in a for a in _strip_pixels(vera, 1))
    blurred = _strip_pixels(vera, 2)
    assert blurred and all("(blurred)" in a for a in blurred)
    assert vera.locator("#face-2 button:has-text('Mark track')").count() == 0
    _loaded(vera)
    walk.look(vera, "result-viewer")
    # she proposes the matched name for track 1: its best frame goes to a new case
    cand = vera.locator("#face-1 li.candidate.above").first
    assert cand.locator("figcaption").first.inner_text() == "this track"
    walk.press(vera, cand.locator("details.propose > summary"))
    cand.locator("input[name=case_title]").fill("march 3, pier")
    cand.locator("textarea[name=note]").fill("same glasses and hairline in every frame")
    walk.press(vera, cand.locator("details.propose button[type=submit]"))
    vera.wait_for_url(re.compile(r"/identifications/\d+$"))
    assert "PROPOSED" in vera.locator("h1 .state").inner_text().upper()
    _loaded(vera)
    walk.look(vera, "proposed")
    vera.context.close()

    rita = walk.sign_in(browser, server, "rita")
    rita.set_input_files("input[name=image]", str(server["clip"]))
    walk.press(rita, rita.locator("form[action='/search'] button"))
    rita.wait_for_url("**/probes/**", timeout=120_000)
    walk.press(rita, rita.locator("#face-2 button:has-text('Mark track 2 as an officer')"))
    rita.wait_for_url(re.compile(r"/probes/[^/]+#face-2$"))
    assert all("(blurred)" not in a for a in _strip_pixels(rita, 2))
    assert rita.locator("#face-2 .pair img").count() > 0        # the face beside its candidates
    _loaded(rita)
    walk.look(rita, "result-officer")
    rita.context.close()


def test_an_event_clip_on_the_unknown_faces_pages(server, browser, shots):  # noqa: F811
    walk = Walk("clip-event", server, shots)
    vera = walk.sign_in(browser, server, "vera")
    vera.goto(server["url"] + "/unknown")
    vera.fill("input[name=event]", "march 3, pier")
    vera.set_input_files("input[name=images]", str(server["clip"]))
    walk.press(vera, vera.locator("form[action='/unknown/upload'] button"))
    vera.wait_for_load_state()
    assert "1 photo(s)" not in vera.content()
    assert "2 photo(s), 2 face(s)" in vera.locator("p.ok").inner_text()
    _loaded(vera)
    walk.look(vera, "groups")
    vera.locator("a[href^='/unknown/groups/']").first.click()
    vera.wait_for_url(re.compile(r"/unknown/groups/\d+$"))
    caption = vera.locator("figure.sighting figcaption").first.inner_text()
    assert re.search(r"clip march 3\.mp4, seen 00:0\d–00:0\d", caption), caption
    _loaded(vera)
    walk.look(vera, "group")
    vera.context.close()
