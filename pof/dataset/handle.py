"""A dataset folder, opened: what the command line, the web app and a build into an existing
dataset start from.

``Dataset.open(path)`` checks that the folder is a pof dataset whose catalog this pof can read
(the catalog checks its schema version on opening, ``pof.dataset.schema``: a newer one is
refused, an older one upgraded) and reads the catalog's meta (schema, descriptor key,
created); the dataset card (pof.json) is read when first asked for. From the handle come the pipeline that makes descriptors like the dataset's
(``pipeline``), its gallery and searcher (``gallery``, ``searcher``), a catalog connection
(``catalog``) and a check of its files (``check``, as ``pof fsck``)::

    ds = Dataset.open("dataset")
    pipeline, searcher = ds.pipeline(), ds.searcher(fpir=0.05)
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pof.dataset.catalog import CATALOG_NAME, Catalog
from pof.errors import DatasetError

# settings a searcher takes: Searcher's keyword for each
SEARCH_SETTINGS = {"fpir": "target_fpir", "fusion": "fusion", "min_interocular": "min_interocular",
                   "max_blur": "max_blur"}


class Dataset:
    """An open dataset folder. ``meta``: the catalog's meta table (key -> text)."""

    def __init__(self, folder: Path, meta: dict[str, str]) -> None:
        self.folder = folder
        self.meta = meta

    @classmethod
    def open(cls, path: str | Path) -> "Dataset":
        """The dataset in ``path``. DatasetError (saying what to do) where the folder holds no
        pof dataset, or its catalog is damaged, was written by a newer pof or has a schema
        version pof never wrote."""
        folder = Path(path)
        if not (folder / CATALOG_NAME).is_file():      # made nothing in a folder that is no dataset
            raise DatasetError(f"{folder}: no pof dataset here (no {CATALOG_NAME}); run `pof build` first")
        with Catalog(folder) as cat:                   # checks the schema version
            meta = {r["key"]: r["value"] for r in cat.db.execute("SELECT key, value FROM meta")}
        return cls(folder, meta)

    @property
    def schema(self) -> int:
        """The catalog's schema version."""
        return int(self.meta["schema"])

    @property
    def descriptor_key(self) -> str:
        """The models and settings every descriptor of the dataset was made with ("" before
        the first face)."""
        return self.meta.get("descriptor_key", "")

    @functools.cached_property
    def card(self) -> dict[str, Any] | None:
        """The dataset card (pof.json), or None where it is missing or unreadable (``check``
        says why)."""
        try:
            return json.loads((self.folder / "pof.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def catalog(self) -> Catalog:
        """A connection to the catalog (a context manager; close it)."""
        return Catalog(self.folder)

    def check(self, repair: bool = False):
        """The dataset's files checked against its checksums and catalog (``pof fsck``;
        ``repair``: mend what can be mended). Returns pof.dataset.fsck's result."""
        from pof.dataset.fsck import fsck
        return fsck(self.folder, repair=repair)

    def pipeline(self, **settings: Any):
        """A pipeline whose descriptors match the dataset's (pof.pipeline.pipeline_for): the
        settings given (None: not given) over the environment and the defaults. PofError where
        the dataset was built with other models."""
        from pof.pipeline import pipeline_for
        return pipeline_for(self.descriptor_key, **settings)

    def gallery(self, **where: str | list[str]):
        """The dataset's gallery (persons on the exclusion list left out), narrowed to the
        persons whose attribution matches ``where`` (pof.matching.search.Gallery.filter).
        DatasetError where no one is left."""
        from pof.matching.search import Gallery
        gallery = Gallery.load(self.folder)
        return gallery.filter(**where) if where else gallery

    def searcher(self, gallery=None, saved_index: bool = False, **settings: Any):
        """A searcher over ``gallery`` (default: the whole gallery) with the search settings
        (fpir, fusion, min_interocular, max_blur) resolved once, in pof.settings: those given
        (None: not given) over the environment and the defaults. ``saved_index``: search the
        whole gallery through the dataset's saved index (built and saved where missing; FAISS
        above 50,000 faces) where the fusion scores images one by one."""
        from pof.matching.calibrate import resolve_fusion
        from pof.matching.search import Searcher
        from pof.settings import value
        unknown = set(settings) - set(SEARCH_SETTINGS)
        if unknown:
            raise TypeError(f"a searcher takes no setting {', '.join(sorted(unknown))}")
        chosen = {name: value(name, settings.get(name)) for name in SEARCH_SETTINGS}
        gallery = self.gallery() if gallery is None else gallery
        index = None
        if saved_index and resolve_fusion(chosen["fusion"], len(gallery.labels)) != "template":
            from pof.dataset.index import load_or_build
            index = load_or_build(self.folder, gallery.descriptors, gallery.descriptor_key)
        return Searcher(gallery, index=index, **{SEARCH_SETTINGS[k]: v for k, v in chosen.items()})
