"""Dataset.open: a folder that is no dataset, a catalog written by a newer pof, and a good
dataset with its pipeline, gallery, searcher and check; the command line, a build and the web
app open datasets through it."""
from __future__ import annotations

import shutil
import sqlite3

import pytest

from pof.dataset.catalog import CATALOG_NAME
from pof.dataset.handle import Dataset
from pof.dataset.schema import SCHEMA_VERSION
from pof.errors import DatasetError, PofError

from .conftest import YALE, run_pof


def _with_schema(built, folder, schema: str):
    """A copy of the dataset ``built`` whose catalog says its schema is ``schema``."""
    shutil.copytree(built, folder)
    db = sqlite3.connect(folder / CATALOG_NAME)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (schema,))
    db.close()
    return folder


def _faces(folder) -> int:
    db = sqlite3.connect(folder / CATALOG_NAME)
    try:
        return db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("kind", ["empty", "photos", "missing", "file"])
def test_a_folder_that_is_not_a_dataset(tmp_path, kind):
    folder = tmp_path / "x"
    if kind == "empty":
        folder.mkdir()
    elif kind == "photos":
        folder.mkdir()
        shutil.copy(YALE / "subject01.normal", folder / "a.gif")
    elif kind == "file":
        folder.write_text("not a folder")
    with pytest.raises(DatasetError, match=r"no pof dataset here \(no catalog.sqlite\); run `pof build` first"):
        Dataset.open(folder)
    assert not (folder / CATALOG_NAME).exists()      # nothing was made in it


def test_a_catalog_with_a_newer_schema_is_refused(built, tmp_path, gallery_dir):
    newer = _with_schema(built, tmp_path / "newer", str(SCHEMA_VERSION + 1))
    with pytest.raises(DatasetError, match=f"written by a newer pof \\(schema version "
                                           f"{SCHEMA_VERSION + 1}; this pof reads up to "
                                           f"{SCHEMA_VERSION}\\): upgrade pof"):
        Dataset.open(newer)
    faces = _faces(newer)
    # the command line says so on one line, exit status 2, whatever the command
    for args in (("search", newer, YALE / "subject01.happy"), ("users", "list", newer),
                 ("audit", "head", newer), ("build", gallery_dir, "--out", newer, "--quiet")):
        r = run_pof(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and "written by a newer pof" in r.stderr, r.stderr
    assert _faces(newer) == faces                      # the build added nothing
    from pof.web.app import create_app
    with pytest.raises(DatasetError, match="newer pof"):
        create_app(newer)


def test_a_schema_version_pof_does_not_write_is_refused(built, tmp_path):
    odd = _with_schema(built, tmp_path / "odd", "two")
    with pytest.raises(DatasetError, match="schema version 'two' is not a number"):
        Dataset.open(odd)


def test_a_good_dataset(built, monkeypatch):
    ds = Dataset.open(built)
    assert ds.schema == SCHEMA_VERSION and ds.meta["created"]
    pipeline = ds.pipeline()
    assert ds.descriptor_key and pipeline.descriptor_key() == ds.descriptor_key
    assert ds.card["settings"]["detector"] == pipeline.settings["detector"] == "mtcnn"
    result = ds.check()
    assert result.problems == [] and result.status == 0
    with ds.catalog() as cat:
        assert cat.get_meta("descriptor_key") == ds.descriptor_key
    gallery = ds.gallery()
    assert gallery.labels == ["subject01", "subject02", "subject03"]
    assert ds.gallery(person="subject02").labels == ["subject02"]
    searcher = ds.searcher(gallery)
    faces = pipeline.analyze_file(YALE / "subject02.glasses", with_crops=False)
    assert searcher.search(faces, 1)[0].candidates[0].person == "subject02"
    # the search settings resolve in pof.settings: default < environment < command line < given
    assert searcher.target_fpir == 0.01 and searcher.max_blur == 0.9
    monkeypatch.setenv("POF_FPIR", "0.05")
    monkeypatch.setenv("POF_MAX_BLUR", "0.5")
    assert ds.searcher(gallery).target_fpir == 0.05 and ds.searcher(gallery).max_blur == 0.5
    from pof.settings import command_line
    with command_line(fpir=0.03):
        assert ds.searcher(gallery).target_fpir == 0.03
        assert ds.searcher(gallery, fpir=0.02).target_fpir == 0.02
    assert ds.searcher(gallery).target_fpir == 0.05          # the command line's block is over
    with pytest.raises(TypeError, match="no setting top"):
        ds.searcher(gallery, top=3)


def test_the_pipeline_keeps_the_models_the_dataset_was_built_with(built, monkeypatch):
    """A dataset built with an earlier default embedder gets a pipeline with that embedder,
    whatever the environment's default says, unless the setting is given."""
    ds = Dataset.open(built)
    monkeypatch.setenv("POF_EMBEDDER", "dlib-resnet-onnx")
    assert ds.pipeline().descriptor_key() == ds.descriptor_key
    with pytest.raises(PofError, match="built with other models"):
        ds.pipeline(embedder="dlib-resnet-onnx")
