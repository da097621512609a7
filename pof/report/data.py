"""What a report reads from a dataset folder (docs/dataset.md): the card, the attribute table and the
few metadata columns the pictures need. Crops are not read here; they are streamed one at a
time by ``pof.report.sheets``.

Attribute columns are read generically: whatever columns attributes.csv has, with their task,
estimator, validation figure and "unreliable" flag from pof.json's ``attributes`` section when
it lists them, and task "measured" otherwise. Empty cells are NaN ("not estimated").
"""
from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pof.errors import DatasetError

MEASURED = "measured"
METADATA_NUMBERS = ("yaw", "pitch", "roll", "interocular", "blur", "quality")
UNITS = {"yaw": "°", "pitch": "°", "roll": "°", "interocular": " px"}


@dataclass
class Column:
    """One attribute column of attributes.csv and what pof.json says about it."""

    name: str
    task: str = MEASURED
    estimator: str | None = None
    description: str = ""
    status: str = ""                 # "estimated", "not estimated", "switched off", "" (unknown)
    reason: str = ""
    validation: Any = None           # pof.json's figures (dict), or None
    unreliable: bool | None = None
    is_score: bool = True            # every value within 0..1 (else a measure with its own unit)


@dataclass
class Dataset:
    """The parts of a dataset a report uses. ``scores`` is float32 (N, C), NaN where empty,
    rows in ``ids`` order, columns in ``columns`` order."""

    folder: Path
    card: dict[str, Any]
    ids: list[str]
    persons: list[str]
    numbers: dict[str, np.ndarray]           # metadata column -> float64 (N,), NaN if missing
    landmarks: list[np.ndarray | None]       # per image: corners [[x0, y0], [x1, y1]] of its crop-space landmarks
    columns: list[Column]
    scores: np.ndarray
    agreement: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        """Tasks in display order: pof.json's order, then any other, "measured" last."""
        order = list(self.card.get("attributes", {}).get("tasks", []) or []) if isinstance(
            self.card.get("attributes"), dict) else []
        for c in self.columns:
            if c.task not in order and c.task != MEASURED:
                order.append(c.task)
        return order + ([MEASURED] if any(c.task == MEASURED for c in self.columns) else [])

    def ordered(self) -> list[int]:
        """Column indices grouped by task (tasks order), file order within a task."""
        return [i for t in self.tasks for i, c in enumerate(self.columns) if c.task == t]


def _float(text: str | None) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def read_card(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "pof.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{folder}: no pof.json; is it a dataset folder? (pof build ... --out {folder})") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{folder}/pof.json: cannot read ({exc}); rebuild the dataset") from None


def _entries(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """pof.json's per-attribute entries by name: ``attributes.attributes`` (a list of objects
    with "name"), or a name -> object mapping; {} when the card has none."""
    sec = card.get("attributes")
    found: Any = sec.get("attributes") if isinstance(sec, dict) else sec
    if isinstance(found, dict):
        return {str(k): v for k, v in found.items() if isinstance(v, dict)}
    if isinstance(found, list):
        return {str(e["name"]): e for e in found if isinstance(e, dict) and "name" in e}
    return {}


def _column(name: str, entry: dict[str, Any] | None) -> Column:
    if not entry:
        return Column(name)
    unreliable = entry.get("unreliable")
    return Column(name, task=str(entry.get("task") or MEASURED), estimator=entry.get("estimator"),
                  description=str(entry.get("description") or ""), status=str(entry.get("status") or ""),
                  reason=str(entry.get("reason") or ""), validation=entry.get("validation"),
                  unreliable=None if unreliable is None else bool(unreliable))


def _read_attributes(folder: Path, card: dict[str, Any], ids: list[str],
                     problems: list[tuple[str, str]]) -> tuple[list[Column], np.ndarray]:
    path = folder / "attributes.csv"
    row_of = {i: n for n, i in enumerate(ids)}
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        problems.append(("attributes.csv", f"cannot read ({exc}); no attribute pictures"))
        return [], np.zeros((len(ids), 0), np.float32)
    with fh:
        reader = csv.reader(fh)
        header = next(reader, ["id"])
        names = header[1:]
        scores = np.full((len(ids), len(names)), np.nan, np.float32)
        for rec in reader:
            n = row_of.get(rec[0]) if rec else None
            if n is not None:
                vals = [_float(v) for v in rec[1:len(names) + 1]]
                scores[n, :len(vals)] = vals
    entries = _entries(card)
    columns = [_column(n, entries.get(n)) for n in names]
    for j, c in enumerate(columns):
        col = scores[:, j]
        finite = col[np.isfinite(col)]
        c.is_score = bool(finite.size == 0 or (finite.min() >= 0 and finite.max() <= 1)) and c.name not in UNITS
        if not c.status:
            c.status = ("measured" if c.task == MEASURED else "estimated") if finite.size else "not estimated"
    return columns, scores


def _points(rec: dict[str, str]) -> np.ndarray | None:
    """The box of the crop-space landmarks (68, else 5) as two corner points, float32 (2, 2):
    all that redaction needs, and small enough to keep for 90,000 images."""
    for key in ("crop_landmarks68", "crop_landmarks5"):
        try:
            pts = np.asarray(json.loads(rec.get(key) or "null"), np.float64)
        except (ValueError, TypeError):
            continue
        if pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 5 and np.isfinite(pts).all():
            return np.stack([pts.min(axis=0), pts.max(axis=0)]).astype(np.float32)
    return None


def load(folder: str | Path) -> Dataset:
    """Read DATASET's card, metadata (ids, persons, pose, quality, crop landmarks) and
    attribute table. Raises DatasetError if pof.json or metadata.csv cannot be read."""
    folder = Path(folder)
    card = read_card(folder)
    csv.field_size_limit(1 << 24)
    ids, persons, points = [], [], []
    cols: dict[str, list[float]] = {k: [] for k in METADATA_NUMBERS}
    try:
        with (folder / "metadata.csv").open(newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                ids.append(rec.get("id", ""))
                persons.append(rec.get("person") or "")
                points.append(_points(rec))
                for k in METADATA_NUMBERS:
                    cols[k].append(_float(rec.get(k)))
    except OSError as exc:
        raise DatasetError(f"{folder}/metadata.csv: cannot read ({exc}); rebuild the dataset") from None
    problems: list[tuple[str, str]] = []
    columns, scores = _read_attributes(folder, card, ids, problems)
    try:
        agreement = (folder / "AGREEMENT.md").read_text(encoding="utf-8")
    except OSError:
        agreement = ""
    return Dataset(folder, card, ids, persons, {k: np.asarray(v, np.float64) for k, v in cols.items()},
                   points, columns, scores, agreement, problems)


def images_per_person(ds: Dataset) -> np.ndarray:
    """Image count of each labelled person (unlabelled images are not counted)."""
    return np.asarray(sorted(Counter(p for p in ds.persons if p).values()), np.int64)


def validation_text(v: Any) -> str:
    """A short human reading of one attribute's validation figures."""
    if v is None or v == {}:
        return ""
    if not isinstance(v, dict):
        return str(v)
    parts = []
    if "balanced_accuracy" in v:
        parts.append(f"balanced accuracy {float(v['balanced_accuracy']):.2f}")
    for k in ("positives", "negatives"):
        if k in v:
            parts.append(f"{v[k]} {k}")
    rest = [f"{k} {val}" for k, val in v.items() if k not in ("balanced_accuracy", "positives", "negatives")
            and isinstance(val, (int, float, str))]
    return ", ".join(parts + rest[:3])
