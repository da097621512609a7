"""``pof fsck``: check a dataset's files against CHECKSUMS.sha256 and its catalog; repair what
can be rebuilt.

Checks, in order: the catalog opens and passes SQLite's integrity check; every file listed in
CHECKSUMS.sha256 exists and has its hash; no file is there that nothing lists; every face in
the catalog has its crop and every crop its face; the exports (CSV, JSON, descriptors.npy,
pof.json) say what the catalog says; the saved search index, where a dataset has one, holds
the catalog's descriptors.

Everything but the catalog can be rebuilt from it: exports and CHECKSUMS.sha256 are written
again, the index rebuilt, a missing or corrupt crop made again from its source image (found
where the catalog says and checked against its SHA-256). Files nothing lists, and corrupt
ones, are moved into DATASET/lost+found/, never deleted. A damaged catalog cannot be
repaired here: a build of the same sources into a new folder (or this one, the damaged
catalog moved aside) makes it again.
"""
from __future__ import annotations

import hashlib
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pof.errors import DatasetError, PofError

CHECKSUMS = "CHECKSUMS.sha256"
LOST = "lost+found"
CLEAN, REPAIRABLE, NOT_REPAIRABLE = 0, 3, 4
# files and folders of a dataset that CHECKSUMS.sha256 does not list, by design
_UNLISTED = {"catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "catalog.sqlite-journal",
             CHECKSUMS, "images", "index", "report", LOST, "demo_search.json", ".pof.lock"}
_TABLES = {"meta", "persons", "sources", "faces", "attributes"}


@dataclass
class Problem:
    """One thing wrong with a dataset file: where, what, and what can be done."""

    path: str              # relative to the dataset folder
    problem: str
    action: str
    repairable: bool

    def line(self) -> str:
        return f"{self.path}: {self.problem}; {self.action}"


@dataclass
class Result:
    dataset: str
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)      # what --repair did, one line each

    @property
    def status(self) -> int:
        """0 clean, 3 problems that --repair can mend, 4 some that it cannot."""
        if not self.problems:
            return CLEAN
        return REPAIRABLE if all(p.repairable for p in self.problems) else NOT_REPAIRABLE

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "status": self.status,
                "problems": [asdict(p) for p in self.problems], "repaired": self.repaired}


def damaged_catalog_action(folder: Path) -> str:
    return (f"cannot be repaired here: restore catalog.sqlite from a backup, or move it aside "
            f"and run `pof build` again with the same sources into {folder} (accounts, reviews and "
            f"the audit log live in the catalog and come back only from a backup)")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_checksums(path: Path) -> tuple[dict[str, str] | None, list[str]]:
    """(name -> hash, lines that are not "HASH  NAME"), or (None, []) if the file is absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError):
        return {}, ["unreadable"]
    listed, bad = {}, []
    for line in text.splitlines():
        h, sep, name = line.partition("  ")
        parts = Path(name).parts
        if (not sep or len(h) != 64 or any(c not in "0123456789abcdef" for c in h) or not name
                or Path(name).is_absolute() or ".." in parts):     # only names inside the dataset
            bad.append(line)
            continue
        listed[name] = h
    return listed, bad


def _catalog_problem(folder: Path) -> str | None:
    """Why the catalog cannot be used, or None when it opens and passes integrity_check."""
    path = folder / "catalog.sqlite"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
        if rows != ["ok"]:
            return "fails SQLite's integrity check (" + "; ".join(rows[:3]) + ")"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not _TABLES <= tables:
            return "has no " + ", ".join(sorted(_TABLES - tables)) + " table"
    except sqlite3.Error as exc:
        return f"is damaged ({exc})"
    finally:
        db.close()
    return None


class _Check:
    """One run of the checks over ``folder``; ``repair`` then mends what it can."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.found: dict[str, Problem] = {}      # one problem a path, the first found
        self.listed: dict[str, str] | None = None
        self.faces: list = []                     # catalog face rows, in file order
        self.by_id: dict[str, tuple] = {}        # the same rows by face id
        self.files: dict[str, bytes] = {}         # exports as the catalog makes them
        self.card: dict = {}
        self.pipeline = None
        self.catalog_ok = False
        self.index: tuple[Path, int] | None = None   # (expected path, rows) where one is kept

    def add(self, path: str, problem: str, action: str, repairable: bool) -> None:
        self.found.setdefault(path, Problem(path, problem, action, repairable))

    # --- the checks ------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        folder = self.folder
        if not (folder / "catalog.sqlite").is_file():
            raise DatasetError(f"{folder}: no pof dataset here (no catalog.sqlite)")
        why = _catalog_problem(folder)
        if why is not None:
            self.add("catalog.sqlite", f"the catalog {why}", damaged_catalog_action(folder), False)
        else:
            self.catalog_ok = True
            self._load_catalog()
        self._check_listed()
        self._check_unlisted()
        if self.catalog_ok:
            self._check_crops()
            self._check_exports()
            self._check_index()
        return list(self.found.values())

    def _load_catalog(self) -> None:
        from pof.dataset.catalog import Catalog
        from pof.dataset.export import render
        with Catalog(self.folder) as cat:
            self.pipeline = self._pipeline(cat.get_meta("descriptor_key") or "")
            agreement = None
            if not (self.folder / "AGREEMENT.md").exists():
                agreement = ""          # not rendered: a missing agreement is handled apart
            self.files, self.card, rows = render(cat, self.pipeline, agreement)
            if agreement == "":
                self.files.pop("AGREEMENT.md", None)
            self.faces = [(r["id"], r["source_path"], r["source_sha256"], r["face_index"]) for r in rows]
            self.by_id = {f[0]: f for f in self.faces}
            desc, ids, _, _ = cat.gallery()
            from pof.dataset import index
            if len(ids) > index.EXACT_MAX:
                self.index = (index.index_path(self.folder, cat.get_meta("descriptor_key") or "",
                                               len(ids)), len(ids))

    def _pipeline(self, key: str):
        """The pipeline the dataset was built with: pof.json's settings where readable."""
        import json

        from pof.pipeline import pipeline_for
        try:
            settings = json.loads((self.folder / "pof.json").read_text(encoding="utf-8"))["settings"]
            return pipeline_for(key, **settings)
        except (OSError, ValueError, KeyError, TypeError, PofError):
            from pof.pipeline import job_runtime
            pipe = pipeline_for(key)
            pipe.settings["runtime"] = job_runtime(pipe.settings["runtime"], pipe.settings["device"], 0)
            return pipe

    def _check_listed(self) -> None:
        listed, bad = _read_checksums(self.folder / CHECKSUMS)
        self.listed = listed
        fix = "--repair writes it again" if self.catalog_ok else "repair the catalog first"
        if listed is None:
            self.add(CHECKSUMS, "missing", fix, self.catalog_ok)
            return
        if bad:
            self.add(CHECKSUMS, f"{len(bad)} line(s) are not 'SHA256  NAME'", fix, self.catalog_ok)
        ids = self.by_id
        for name, h in listed.items():
            path = self.folder / name
            if (self.catalog_ok and name.startswith("images/") and name.endswith(".jpg")
                    and name[len("images/"):-len(".jpg")] not in ids):
                if path.exists():
                    self.add(name, "no face in the catalog has this file", f"--repair moves it into {LOST}/", True)
                else:
                    self.add(name, "listed in CHECKSUMS.sha256, but the catalog has no such face",
                             "--repair drops it from CHECKSUMS.sha256", True)
            elif self.catalog_ok and not self._dataset_file(name):
                self.add(name, "listed in CHECKSUMS.sha256, but not a file of this dataset", *self._remedy(name))
            elif not path.is_file():
                self.add(name, "listed in CHECKSUMS.sha256 but missing", *self._remedy(name))
            elif _sha256(path) != h:
                self.add(name, "does not match its SHA-256 in CHECKSUMS.sha256", *self._remedy(name))

    def _dataset_file(self, name: str) -> bool:
        """Whether a build lists ``name`` in CHECKSUMS.sha256 (an export or a face's crop)."""
        from pof.dataset.export import LISTED
        return name in LISTED or (name.startswith("images/") and name.endswith(".jpg")
                                  and name[len("images/"):-len(".jpg")] in self.by_id)

    def _remedy(self, name: str) -> tuple[str, bool]:
        """What --repair does for a missing or corrupt listed file, and whether it can."""
        if not self.catalog_ok:
            return "repair the catalog first", False
        if name in self.files:
            return "--repair writes it again from the catalog", True
        if name == "AGREEMENT.md":
            from pof.dataset.export import DEFAULT_AGREEMENT
            if self.listed and self.listed.get(name) == hashlib.sha256(DEFAULT_AGREEMENT.encode()).hexdigest():
                return "--repair writes the default agreement again", True
            return ("cannot be made again here: put your agreement back, or run `pof build` again "
                    "with --agreement"), False
        if name.startswith("images/") and name.endswith(".jpg"):
            return self._crop_remedy(name[len("images/"):-len(".jpg")])
        if (self.folder / name).exists():
            return f"not a dataset file; --repair moves it into {LOST}/", True
        return "not a dataset file; --repair drops it from CHECKSUMS.sha256", True

    def _crop_remedy(self, fid: str) -> tuple[str, bool]:
        row = self.by_id[fid]
        source = Path(row[1])
        if "://" not in row[1] and source.is_file():
            return f"--repair makes it again from its source {row[1]}", True
        return (f"its source {row[1]} is not there to make it again: put the source back, or run "
                f"`pof build` again with it"), False

    def _check_unlisted(self) -> None:
        from pof.dataset.export import LISTED
        listed = self.listed or {}
        ids = self.by_id
        for path in sorted(self.folder.iterdir()):
            name = path.name
            if name in listed or name in _UNLISTED or name in LISTED:
                continue
            self.add(name, "not listed in CHECKSUMS.sha256 and not a dataset file",
                     f"--repair moves it into {LOST}/", True)
        images = self.folder / "images"
        if images.is_dir() and self.catalog_ok:     # without the catalog, no crop can be judged
            for path in sorted(images.iterdir()):
                name = f"images/{path.name}"
                if name in listed:
                    continue
                if path.suffix == ".jpg" and path.stem in ids:
                    self.add(name, "not listed in CHECKSUMS.sha256",
                             "--repair lists it (after checking its face's other files)", True)
                else:
                    self.add(name, "no face in the catalog has this file", f"--repair moves it into {LOST}/", True)
        index_dir = self.folder / "index"
        if index_dir.is_dir() and self.catalog_ok:
            keep = self.index[0].name if self.index else None
            for path in sorted(index_dir.iterdir()):
                if path.name != keep:
                    self.add(f"index/{path.name}", "a search index of other descriptors or an older layout (stale)",
                             f"--repair moves it into {LOST}/", True)

    def _check_crops(self) -> None:
        for fid, *_ in self.faces:
            name = f"images/{fid}.jpg"
            if not (self.folder / name).is_file():
                self.add(name, "the catalog's face has no crop", *self._crop_remedy(fid))

    def _check_exports(self) -> None:
        import json
        for name, data in self.files.items():
            path = self.folder / name
            if name == "AGREEMENT.md":
                continue
            if not path.is_file():
                self.add(name, "missing", "--repair writes it again from the catalog", True)
            elif name == "pof.json":
                try:
                    have = json.loads(path.read_text(encoding="utf-8"))
                    same = all(have.get(k) == self.card.get(k)
                               for k in ("counts", "calibration", "created", "version"))
                except (OSError, ValueError, AttributeError):
                    same = False
                if not same:
                    self.add(name, "does not agree with the catalog (counts, calibration or version)",
                             "--repair writes it again from the catalog", True)
            elif path.read_bytes() != data:
                self.add(name, "does not agree with the catalog",
                         "--repair writes it again from the catalog", True)
        if not (self.folder / "AGREEMENT.md").exists() and "AGREEMENT.md" not in self.found:
            self.add("AGREEMENT.md", "missing", *self._remedy("AGREEMENT.md"))

    def _check_index(self) -> None:
        if self.index is None:
            return
        path, n = self.index
        if not path.exists():
            return                          # made by the first search that needs it
        name = f"index/{path.name}"
        try:
            import faiss
            graph = faiss.read_index(str(path))
            good = graph.ntotal == n and graph.d == len(next(iter(self._descriptors())))
        except Exception:  # noqa: BLE001 - faiss raises RuntimeError and others on a bad file
            good = False
        if not good:
            self.add(name, "the search index does not hold the catalog's descriptors",
                     "--repair builds it again", True)

    def _descriptors(self):
        from pof.dataset.catalog import Catalog
        with Catalog(self.folder) as cat:
            return cat.gallery()[0]

    # --- repair ----------------------------------------------------------------------------

    def repair(self, problems: list[Problem]) -> list[str]:
        done: list[str] = []
        todo = {p.path: p for p in problems if p.repairable}
        if not todo:
            return done
        unrepaired = {p.path for p in problems if not p.repairable}
        for name, p in todo.items():
            path = self.folder / name
            if "moves it into" in p.action:
                done.append(f"{name}: moved to {self._move_aside(path)}")
            elif name.startswith("images/") and "from its source" in p.action:
                if path.exists():
                    self._move_aside(path)
                why = self._make_crop(name)
                if why is None:
                    done.append(f"{name}: made again from its source")
                else:
                    unrepaired.add(name)
                    done.append(f"{name}: could not be made again ({why})")
        if not self.catalog_ok:
            return done
        exports = [n for n in todo if n in self.files]
        if exports:
            from pof.runtime.files import atomic_bytes
            for name in exports:
                path = self.folder / name
                if path.exists():            # kept: it may hold what the user wants back
                    self._move_aside(path)
                atomic_bytes(path, self.files[name])
                done.append(f"{name}: written again from the catalog")
        if "AGREEMENT.md" in todo:
            from pof.dataset.export import DEFAULT_AGREEMENT
            from pof.runtime.files import atomic_bytes
            path = self.folder / "AGREEMENT.md"
            if path.exists():
                self._move_aside(path)
            atomic_bytes(path, DEFAULT_AGREEMENT.encode("utf-8"))
            done.append("AGREEMENT.md: the default agreement written again")
        if self.index is not None and f"index/{self.index[0].name}" in todo:
            from pof.dataset.index import FaissIndex
            self._move_aside(self.index[0])
            FaissIndex(self._descriptors()).save(self.index[0])
            done.append(f"index/{self.index[0].name}: built again")
        self._write_checksums(unrepaired)
        done.append(f"{CHECKSUMS}: written again")
        return done

    def _move_aside(self, path: Path) -> str:
        """Move ``path`` into lost+found/ (same relative place; a free name); returns where."""
        rel = path.relative_to(self.folder)
        dest = self.folder / LOST / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while dest.exists():
            dest = dest.with_name(f"{rel.name}.{n}")
            n += 1
        shutil.move(str(path), str(dest))
        return str(dest.relative_to(self.folder))

    def _make_crop(self, name: str) -> str | None:
        """Make crop ``name`` again from its source image; None, or why it could not."""
        import numpy as np

        from pof.dataset.build import _jpeg
        from pof.runtime.files import atomic_bytes
        from pof.stages.load import decode_image
        fid = name[len("images/"):-len(".jpg")]
        _, source, sha, index = self.by_id[fid]
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            return f"cannot read {source}: {exc.strerror}"
        if hashlib.sha256(data).hexdigest() != sha:
            return f"{source} is no longer the image that was built (its SHA-256 differs)"
        pipe = self.pipeline
        pipe.settings["attributes"] = "off"       # a crop needs none (the card is made already)
        try:
            img = decode_image(data, source, pipe.settings["max_pixels"])
            faces = pipe.analyze(img.pixels)
        except PofError as exc:
            return str(exc)
        face = next((f for f in faces if f.index == index), None)
        if face is None or face.crop is None:
            return f"face {index} of {source} is not found again"
        (self.folder / "images").mkdir(exist_ok=True)
        atomic_bytes(self.folder / name, _jpeg(np.asarray(face.crop), pipe.settings["jpeg_quality"]))
        return None

    def _write_checksums(self, unrepaired: set[str]) -> None:
        """CHECKSUMS.sha256 over the exports and the catalog's crops, in the order a build
        writes it; a file still missing or corrupt keeps the hash it was listed with."""
        from pof.dataset.export import LISTED
        from pof.runtime.files import atomic_bytes
        old = self.listed or {}
        lines = []
        for name in list(LISTED) + [f"images/{f[0]}.jpg" for f in self.faces]:
            path = self.folder / name
            if name in unrepaired or not path.is_file():
                if name in old:
                    lines.append(f"{old[name]}  {name}\n")
                continue
            lines.append(f"{_sha256(path)}  {name}\n")
        atomic_bytes(self.folder / CHECKSUMS, "".join(lines).encode())


def fsck(folder: str | Path, repair: bool = False) -> Result:
    """Check the dataset in ``folder`` (and with ``repair``, mend what can be mended).
    Result.problems are those found, or after a repair those left; Result.status is 0 clean,
    3 repairable problems, 4 problems --repair cannot mend."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    check = _Check(folder)
    problems = check.run()
    result = Result(str(folder), problems)
    if repair and problems:
        from pof.dataset.lock import writing
        with writing(folder):               # no build writes while files are mended
            result.repaired = check.repair(problems)
            result.problems = _Check(folder).run()
    return result
