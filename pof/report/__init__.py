"""``pof report``: the pictures and the HTML dataset card of a dataset (docs/cli.md, "pof report").

Writes into ``out`` (default DATASET/report)::

    index.html                 the dataset card: counts, models, principles, licence, the
                               attribute table, and every picture below
    charts.html                every per-image chart, with its CSV
    plots/plt-ID.png           one image's attribute scores beside its redacted crop
    data/ID.csv                the same scores as CSV (attribute, task, score, status, unreliable)
    plots/persons.png, pose.png, quality.png, interocular.png, attributes.png   statistics
    sheets/sheet-NNNN.gif      a contact sheet: ``per_sheet`` redacted crops, one per frame
    sheets/sheet-NNNN.jpg      the same crops as a 10-column grid
    mosaic.jpg                 every crop, redacted and downsized, in one picture

Crops are streamed one at a time (a sheet's worth at most is held); a missing or unreadable
crop is reported per item and the rest goes on. Faces are redacted in every picture and each
sheet and the mosaic are checked with pof's own detector (see ``pof.report.sheets``). The report
names no person. Every file is written atomically.

Example::

    result = make_report("pof-demo")          # charts for a sample of 20 images
    result.problems                           # [(item, reason), ...]
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pof.report import charts, data, page, sheets
from pof.runtime.files import atomic_text

DEFAULT_SAMPLE = 20


@dataclass
class ReportResult:
    """What a report wrote. Paths are relative to ``out``."""

    out: Path
    files: list[str] = field(default_factory=list)
    charted: list[str] = field(default_factory=list)          # image ids with a chart
    sheets: list[str] = field(default_factory=list)           # GIF paths
    problems: list[tuple[str, str]] = field(default_factory=list)
    faces_left: int = 0               # faces it still found at the end (0 unless redaction failed)


def chart_rows(ds: data.Dataset, images: tuple[str, ...], all_images: bool, sample: int,
               problems: list[tuple[str, str]]) -> list[int]:
    """Rows to chart: the given ids (unknown ones become problems), or all, or an even,
    reproducible random sample of ``sample`` rows."""
    if images:
        row_of = {i: n for n, i in enumerate(ds.ids)}
        for i in images:
            if i not in row_of:
                problems.append((i, "no image with this id in the dataset"))
        return sorted({row_of[i] for i in images if i in row_of})
    if all_images or sample >= len(ds.ids):
        return list(range(len(ds.ids)))
    rng = np.random.default_rng(0)
    return sorted(rng.choice(len(ds.ids), size=max(0, sample), replace=False).tolist())


def scores_csv(ds: data.Dataset, row: int) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["attribute", "task", "value", "status", "unreliable"])
    for j in ds.ordered():
        c, v = ds.columns[j], float(ds.scores[row, j])
        ok = np.isfinite(v)
        status = (c.status if c.status != "not estimated" else "estimated") if ok else (
            c.status if c.status not in ("", "estimated") else "not estimated")
        w.writerow([c.name, c.task, f"{v:.4g}" if ok else "", status,
                    "" if c.unreliable is None else str(c.unreliable).lower()])
    return buf.getvalue()


class _Charts:
    """Per-image charts, drawn once the crop they show has passed its sheet's check."""

    def __init__(self, ds: data.Dataset, out: Path, rows: list[int], result: ReportResult) -> None:
        self.ds, self.out, self.rows, self.result = ds, out, set(rows), result

    def draw(self, row: int, crop: np.ndarray | None) -> None:
        if row not in self.rows:
            return
        i = self.ds.ids[row]
        charts.image_chart(self.ds, row, crop, self.out / "plots" / f"plt-{i}.png")
        atomic_text(self.out / "data" / f"{i}.csv", scores_csv(self.ds, row))
        self.result.files += [f"plots/plt-{i}.png", f"data/{i}.csv"]
        self.result.charted.append(i)


def _statistics(ds: data.Dataset, out: Path, result: ReportResult) -> None:
    for name, draw in (("persons", charts.persons_plot), ("pose", charts.pose_plot),
                       ("quality", charts.quality_plot), ("interocular", charts.interocular_plot),
                       ("attributes", charts.prevalence_plot)):
        draw(ds, out / "plots" / f"{name}.png")
        result.files.append(f"plots/{name}.png")


def _sheet(crops: list[np.ndarray], rows: list[int], number: int, out: Path, detect,
           chart: _Charts, result: ReportResult) -> None:
    gif, jpg = f"sheets/sheet-{number:04d}.gif", f"sheets/sheet-{number:04d}.jpg"
    _, left = sheets.write_sheet(crops, out / gif, out / jpg, detect)
    if left:
        result.faces_left += left
        result.problems.append((gif, f"the detector still finds {left} face(s) after redaction"))
    result.files += [gif, jpg]
    result.sheets.append(gif)
    for row, crop in zip(rows, crops):
        chart.draw(row, crop)


def make_report(dataset: str | Path, out: str | Path | None = None, images: tuple[str, ...] = (),
                sample: int = DEFAULT_SAMPLE, all_images: bool = False, per_sheet: int = 100,
                progress: bool = False, warn: Callable[[str, str], None] | None = None,
                pipeline=None) -> ReportResult:
    """Write the report of ``dataset`` into ``out`` (default DATASET/report); see the module
    docstring. ``images``: chart only these ids; ``all_images``: chart every image; else a
    sample of ``sample``. ``warn(item, reason)`` is called for each problem as it happens."""
    from tqdm import tqdm
    ds = data.load(dataset)
    out = Path(out) if out else ds.folder / "report"
    result = ReportResult(out)
    report = result.problems.append if warn is None else (
        lambda p: (result.problems.append(p), warn(*p)))
    for p in ds.problems:
        report(p)
    todo: list[tuple[str, str]] = []
    rows = chart_rows(ds, tuple(images), all_images, sample, todo)
    for p in todo:
        report(p)
    _statistics(ds, out, result)
    if pipeline is None:
        from pof.pipeline import Pipeline
        pipeline = Pipeline()
    chart = _Charts(ds, out, rows, result)
    mosaic = sheets.Mosaic(len(ds.ids))
    crops: list[np.ndarray] = []
    crop_rows: list[int] = []
    for row, i in enumerate(tqdm(ds.ids, desc="report", unit="img", disable=not progress)):
        try:
            crop = sheets.redact_crop(sheets.read_crop(ds.folder / "images" / f"{i}.jpg"), ds.landmarks[row])
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            report((f"images/{i}.jpg", f"{_why(exc)}; left out of the sheets and mosaic"))
            chart.draw(row, None)
            continue
        mosaic.add(crop)
        crops.append(crop)
        crop_rows.append(row)
        if len(crops) == per_sheet:
            _sheet(crops, crop_rows, len(result.sheets) + 1, out, pipeline.detect, chart, result)
            crops, crop_rows = [], []
    if crops:
        _sheet(crops, crop_rows, len(result.sheets) + 1, out, pipeline.detect, chart, result)
    _remove_stale_sheets(out, result.sheets)
    if mosaic.count:
        mosaic.write(out / "mosaic.jpg", pipeline.detect)
        result.files.append("mosaic.jpg")
    for name, text in (("charts.html", page.charts_page(ds, result)), ("index.html", page.index_page(ds, result))):
        atomic_text(out / name, text)
        result.files.append(name)
    return result


def _why(exc: Exception) -> str:
    """A crop's read error in a few words, without the path (the item names it)."""
    if isinstance(exc, FileNotFoundError):
        return "crop file missing"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read the crop ({exc.strerror})"
    text = str(exc).split(" '", 1)[0] if "cannot identify" in str(exc) else str(exc)
    return f"cannot read the crop ({text or type(exc).__name__})"


def _remove_stale_sheets(out: Path, written: list[str]) -> None:
    """Sheets of an earlier report beyond this one's count (the dataset was smaller)."""
    keep = {Path(g).stem for g in written}
    for f in (out / "sheets").glob("sheet-*"):
        if f.stem not in keep and f.suffix in (".gif", ".jpg"):
            f.unlink()


__all__ = ["ReportResult", "make_report"]
