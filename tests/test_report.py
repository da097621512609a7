"""pof report: every file written and valid, faces redacted (checked with pof's own detector),
per-item problems, and the attribute columns read generically."""
from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_pof

STATS = ("persons", "pose", "quality", "interocular", "attributes")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.links += [v for k, v in attrs if k in ("href", "src") and v]


def links(page: Path) -> list[str]:
    p = _Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p.links


def ids_of(dataset: Path) -> list[str]:
    with (dataset / "metadata.csv").open(newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


def frames(gif: Path) -> list[np.ndarray]:
    out = []
    with Image.open(gif) as im:
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")))
    return out


@pytest.fixture(scope="module")
def report(built, tmp_path_factory) -> Path:
    """The report of the shared 6-image dataset, through the CLI, 4 crops per sheet."""
    out = tmp_path_factory.mktemp("report") / "report"
    r = run_pof("report", built, "--out", out, "--per-sheet", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "2 contact sheet(s)" in r.stdout and "6 image chart(s)" in r.stdout
    return out


def test_report_writes_every_file_valid(report, built):
    ids = ids_of(built)
    for name in STATS:
        with Image.open(report / "plots" / f"{name}.png") as im:
            assert im.format == "PNG" and im.width > 300
    for i in ids:                                    # 6 images < the default sample of 20: all charted
        with Image.open(report / "plots" / f"plt-{i}.png") as im:
            assert im.format == "PNG"
        with (report / "data" / f"{i}.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and set(rows[0]) == {"attribute", "task", "value", "status", "unreliable"}
        assert {r["attribute"] for r in rows} >= {"yaw", "quality"}
        assert all(r["value"] == "" for r in rows if r["status"] == "not estimated")
    for n, expected in ((1, 4), (2, 2)):             # 6 crops, 4 per sheet
        gif = report / "sheets" / f"sheet-{n:04d}.gif"
        with Image.open(gif) as im:
            assert im.format == "GIF" and im.is_animated == (expected > 1) and im.n_frames == expected
            assert im.size == (200, 280)
        with Image.open(report / "sheets" / f"sheet-{n:04d}.jpg") as im:
            assert im.format == "JPEG"
    with Image.open(report / "mosaic.jpg") as im:
        assert im.format == "JPEG"
    for page in ("index.html", "charts.html"):
        found = links(report / page)
        assert found
        for link in found:
            assert (report / link).is_file(), f"{page} links to {link}, which does not exist"
    index = (report / "index.html").read_text(encoding="utf-8")
    assert "Candidates, never verdicts" in index and "Licence agreement" in index
    assert "No race, ethnicity or attractiveness inference" in index and "estimates" in index
    assert "mosaic.jpg" in index and "plots/attributes.png" in index
    card = json.loads((built / "pof.json").read_text())
    assert card["version"] in index
    assert not [p for p in report.rglob("*") if p.name.endswith(".tmp")]
    persons = {p for p in (built / "identities.csv").read_text().split() if p.startswith("subject")}
    assert not any(p in index for p in persons), "the report names no person"


def test_sheets_and_mosaic_are_redacted(report, built, pipeline):
    """pof's detector finds the faces in an unredacted sheet of the same crops, and none in
    the report's sheets, their GIF frames, or the mosaic."""
    from pof.report import sheets
    crops = [sheets.read_crop(built / "images" / f"{i}.jpg") for i in ids_of(built)]
    plain = sheets.grid(crops[:4])
    assert len(pipeline.detect(plain)[0]) >= 3
    for picture in ("sheets/sheet-0001.jpg", "sheets/sheet-0002.jpg", "mosaic.jpg"):
        pixels = np.asarray(Image.open(report / picture).convert("RGB"))
        assert pipeline.detect(pixels)[0] == [], picture
    for gif in ("sheets/sheet-0001.gif", "sheets/sheet-0002.gif"):
        for frame in frames(report / gif):
            assert pipeline.detect(np.ascontiguousarray(frame))[0] == []


def test_missing_and_corrupt_crops_are_reported_and_the_rest_goes_on(built, tmp_path, pipeline):
    from pof.report import make_report
    ds = tmp_path / "ds"
    shutil.copytree(built, ds, ignore=shutil.ignore_patterns("report"))
    ids = ids_of(ds)
    (ds / "images" / f"{ids[0]}.jpg").unlink()
    (ds / "images" / f"{ids[1]}.jpg").write_bytes(b"not a jpeg")
    seen = []
    r = make_report(ds, images=(ids[0], ids[2]), warn=lambda item, why: seen.append((item, why)),
                    pipeline=pipeline)
    assert [s[0] for s in seen] == [f"images/{ids[0]}.jpg", f"images/{ids[1]}.jpg"]
    assert "missing" in seen[0][1] and "cannot read" in seen[1][1]
    assert r.out == ds / "report" and r.problems == seen
    with Image.open(r.out / r.sheets[0]) as im:
        assert im.n_frames == len(ids) - 2
    assert sorted(r.charted) == sorted(ids[i] for i in (0, 2))     # a chart even without its crop
    assert (r.out / "plots" / f"plt-{ids[0]}.png").is_file()
    assert f"images/{ids[0]}.jpg" in (r.out / "index.html").read_text()


def test_measured_only_attributes_and_chosen_images(built, tmp_path, pipeline):
    """Today's layout (only yaw, pitch, roll, blur, quality; pof.json without per-attribute
    entries) reads as task "measured"; --image charts only the ids given."""
    from pof.report import make_report
    ds = tmp_path / "ds"
    shutil.copytree(built, ds, ignore=shutil.ignore_patterns("report"))
    with (ds / "attributes.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = ["yaw", "pitch", "roll", "blur", "quality"]
    with (ds / "attributes.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", *cols])
        w.writerows([[r["id"], *(r[c] for c in cols)] for r in rows])
        w.writerow([rows[0]["id"] + "x", "", "", "", "", ""])         # a row of no known image
    card = json.loads((ds / "pof.json").read_text())
    card["attributes"] = {"columns": cols}
    (ds / "pof.json").write_text(json.dumps(card))
    ids = ids_of(ds)
    r = make_report(ds, tmp_path / "out", images=(ids[2], "nosuchid"), pipeline=pipeline)
    assert r.charted == [ids[2]] and r.problems == [("nosuchid", "no image with this id in the dataset")]
    with (r.out / "data" / f"{ids[2]}.csv").open(newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [g["attribute"] for g in got] == cols and {g["task"] for g in got} == {"measured"}
    for name in STATS:
        assert (r.out / "plots" / f"{name}.png").is_file()


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    from pof.runtime.files import atomic, atomic_text
    path = atomic_text(tmp_path / "a.txt", "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_report_of_a_folder_that_is_not_a_dataset(tmp_path):
    r = run_pof("report", tmp_path)
    assert r.returncode == 2 and "no pof.json" in r.stderr and "Traceback" not in r.stderr


def test_chart_rows_sample_is_reproducible_and_bounded():
    from types import SimpleNamespace

    from pof.report import chart_rows
    ds = SimpleNamespace(ids=[f"i{k:07d}" for k in range(1000)])
    first = chart_rows(ds, (), False, 20, [])
    assert first == chart_rows(ds, (), False, 20, []) and len(set(first)) == 20
    assert chart_rows(ds, (), True, 20, []) == list(range(1000))
    problems: list = []
    assert chart_rows(ds, ("i0000007", "i0000003", "zz"), False, 20, problems) == [3, 7]
    assert problems == [("zz", "no image with this id in the dataset")]
