"""Where enrolled images come from: folders (PERSON/IMAGE), manifests (.csv / .json) or files.

Each yields Items carrying the image location, the person label, and provenance. pof reads
only what the operator lists: there is no crawling, scraping or harvesting here. A manifest
row may give a ``url`` instead of a ``path``; that one explicit URL is downloaded (see
``fetch_url``), nothing linked from it.
"""
from __future__ import annotations

import csv
import json
import unicodedata
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pof.errors import ImageError, PofError

# Manifest columns that describe where one image came from (kept per image).
PROVENANCE_COLUMNS = ("source_url", "document", "date", "licence", "license", "legal_basis",
                      "credit", "notes")
# Manifest columns with a fixed meaning; every other column is person attribution.
RESERVED_COLUMNS = ("path", "url", "person", "name", "role", "condition") + PROVENANCE_COLUMNS
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
MAX_LABEL_CHARS = 200
# why a file lying directly in a source folder is not enrolled
NO_LABEL = "no person label (put files in PERSON/ folders or list them in a manifest)"


@dataclass
class Item:
    """One image to enrol."""

    location: str                       # a file path, or an http(s) URL from a manifest
    person: str | None                  # person label exactly as the source gave it
    name: str | None = None             # display name, if the source gave one
    provenance: dict[str, Any] = field(default_factory=dict)
    attribution: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None          # why it cannot be enrolled (reported, the rest goes on)
    skipped: bool = False               # a problem that is a skip (no label), not an error

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


def check_label(label: Any) -> str:
    """``label`` if it can name a person, else raise PofError saying why. A label names a
    folder of the dataset's gallery and a row in its tables, so it must be non-empty text of
    at most MAX_LABEL_CHARS characters without path separators (``/``, ``\\``), ``..`` or
    control characters."""
    if not isinstance(label, str):
        raise PofError(f"person label {label!r} refused: it must be text")
    shown = repr(label if len(label) <= 60 else label[:57] + "...")
    if not label.strip():
        raise PofError("person label refused: it is empty")
    if len(label) > MAX_LABEL_CHARS:
        raise PofError(f"person label {shown} refused: longer than {MAX_LABEL_CHARS} characters")
    for bad, what in (("/", "'/'"), ("\\", "'\\'"), ("..", "'..'")):
        if bad in label:
            raise PofError(f"person label {shown} refused: it contains {what}")
    if any(unicodedata.category(c) == "Cc" for c in label):
        raise PofError(f"person label {shown} refused: it contains a control character")
    return label


def _labelled(item: Item) -> Item:
    """``item`` with its label checked: a bad one becomes the item's problem."""
    if item.person is not None:
        try:
            check_label(item.person)
        except PofError as exc:
            item.problem = str(exc)
    return item


def display_name(label: str) -> str:
    """A readable name from a label: 'John_Doe' -> 'John Doe'."""
    return label.replace("_", " ").strip()


def collect(sources: list[str], provenance: dict[str, Any] | None = None) -> Iterator[Item]:
    """Items from each source in order. ``provenance`` (e.g. licence, legal_basis) applies to
    every item that does not set its own. A source that does not exist, or a manifest that
    cannot be read, comes as one item with its problem (reported; the other sources go on)."""
    base = {k: v for k, v in (provenance or {}).items() if v}
    for src in sources:
        p = Path(src)
        if p.is_dir():
            items = from_folder(p)
        elif p.suffix.lower() in (".csv", ".json") and p.is_file():
            try:
                items = iter(list(from_manifest(p)))
            except PofError as exc:
                items = iter([Item(str(p), None, problem=str(exc).removeprefix(f"{p}: "))])
        elif p.is_file():
            items = iter([Item(str(p), None)])
        else:
            items = iter([Item(str(src), None, problem="no such file or folder")])
        for item in items:
            item.provenance = {**base, **item.provenance}
            yield _labelled(item)


def from_folder(folder: Path) -> Iterator[Item]:
    """``folder/PERSON/IMAGE``: the sub-folder name is the person label. Hidden files are
    left out; files directly in ``folder`` come as skipped items (NO_LABEL). Any file is tried,
    whatever its extension."""
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            yield Item(str(f), None, problem=NO_LABEL, skipped=True)
    for person_dir in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(person_dir.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                yield Item(str(f), person_dir.name, display_name(person_dir.name),
                           {"document": str(f)})


def _read_rows(manifest: Path) -> list[dict[str, Any]]:
    try:
        if manifest.suffix.lower() == ".json":
            data = json.loads(manifest.read_text(encoding="utf-8"))
            rows = data.get("images", data) if isinstance(data, dict) else data
            if not isinstance(rows, list):
                raise PofError(f"{manifest}: expected a list of rows (or {{'images': [...]}})")
            return [r for r in rows if isinstance(r, dict)]
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise PofError(f"{manifest}: cannot read manifest ({exc})") from None


def from_manifest(manifest: Path) -> Iterator[Item]:
    """One Item per row: ``path`` (relative to the manifest's folder) or ``url``, ``person``,
    optional ``name``, provenance columns, and any attribution columns (agency, badge, ...)."""
    rows = _read_rows(manifest)
    if rows and not ({"path", "url"} & set(rows[0])):
        raise PofError(f"{manifest}: needs a 'path' or 'url' column")
    for row in rows:
        row = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
        loc = row.get("path") or row.get("url") or ""
        if loc and not loc.startswith(("http://", "https://")) and not Path(loc).is_absolute():
            loc = str(manifest.parent / loc)
        person = row.get("person")
        person = None if person is None or person == "" else person if isinstance(person, str) else str(person)
        prov = {k: row[k] for k in PROVENANCE_COLUMNS if row.get(k)}
        if row.get("url"):
            prov.setdefault("source_url", row["url"])
        attribution = {k: v for k, v in row.items() if k not in RESERVED_COLUMNS and v not in (None, "")}
        name = row.get("name") or (display_name(person) if person else None)
        yield Item(loc, person, name, prov, attribution)


def fetch_url(url: str, timeout: float = 30.0) -> bytes:
    """Download one image URL the operator listed. Raises ImageError on failure or if larger
    than MAX_DOWNLOAD_BYTES."""
    req = urllib.request.Request(url, headers={"User-Agent": "pof (operator-supplied image list)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http/https only)
            data = resp.read(MAX_DOWNLOAD_BYTES + 1)
    except Exception as exc:
        raise ImageError(f"{url}: download failed ({exc})") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageError(f"{url}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB, not downloaded")
    return data
