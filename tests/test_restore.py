"""Heavily compressed photos are smoothed before description (pof.stages.restore), and only they."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pof import Pipeline
from pof.stages import align, restore
from pof.pipeline import pipeline_for
from pof.matching.search import Gallery, Searcher

from .conftest import DEMO, YALE

OBAMA = DEMO / "probes" / "obama_joint_session_2009.jpg"


def _jpeg(path, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_blockiness_tells_heavy_compression_from_light():
    for path in (OBAMA, YALE / "subject03.normal"):
        heavy, light = _jpeg(path, 5), _jpeg(path, 90)
        assert restore.blockiness(heavy) > restore.HEAVY_BLOCKINESS > 2 * restore.blockiness(light) - 1
        assert restore.heavily_compressed(heavy) and not restore.heavily_compressed(light)
        # the order follows the quality
        scores = [restore.blockiness(_jpeg(path, q)) for q in (5, 10, 20, 50, 90)]
        assert scores == sorted(scores, reverse=True), scores
    # an uncompressed photo and a tiny one
    assert restore.blockiness(np.asarray(Image.open(YALE / "subject03.normal").convert("RGB"))) < 1.5
    assert restore.blockiness(np.zeros((10, 10, 3), np.uint8)) == 1.0


def test_deblock_smooths_the_block_edges():
    heavy = _jpeg(OBAMA, 5)
    smooth = restore.deblock(heavy)
    assert smooth.shape == heavy.shape and smooth.dtype == np.uint8
    assert restore.blockiness(smooth) < 1.5 < restore.blockiness(heavy)


@pytest.fixture(scope="module")
def heavy_faces(pipeline):
    pixels = _jpeg(OBAMA, 5)
    return pixels, pipeline.analyze(pixels), Pipeline(deblock="off").analyze(pixels)


def test_a_heavily_compressed_photo_is_described_smoothed(heavy_faces):
    pixels, on, off = heavy_faces
    assert on and len(on) == len(off)
    face = on[0]
    assert face.extra["restored"] == restore.NAME
    assert "restored" not in off[0].extra
    # described from the smoothed pixels: another descriptor, of the same person
    cos = float(face.descriptor @ off[0].descriptor)
    assert 0.8 < cos < 0.9999
    # but its crop comes from the photo's own pixels, and its blur is the photo's
    own, _ = align.crop_face(pixels, face.landmarks5)
    smoothed, _ = align.crop_face(restore.deblock(pixels), face.landmarks5)
    assert np.array_equal(face.crop, own) and not np.array_equal(face.crop, smoothed)
    assert abs(face.blur - off[0].blur) < 0.1


def test_a_clean_photo_is_left_alone(pipeline):
    pixels = np.asarray(Image.open(OBAMA).convert("RGB"))
    on, off = pipeline.analyze(pixels, with_crops=False), Pipeline(deblock="off").analyze(pixels, with_crops=False)
    assert not any("restored" in f.extra for f in on)
    assert np.array_equal(on[0].descriptor, off[0].descriptor)


def test_descriptor_key_names_the_restoration_and_old_datasets_still_load():
    on, off = Pipeline(), Pipeline(deblock="off")
    assert f"restoration={restore.VERSION}" in on.descriptor_key()
    assert "restoration" not in off.descriptor_key()
    # a dataset built before deblocking existed (its key has no restoration) gets a pipeline
    # without it, whose descriptors match the dataset's
    old = pipeline_for(off.descriptor_key())
    assert old.settings["deblock"] == "off" and old.descriptor_key() == off.descriptor_key()
    assert pipeline_for(on.descriptor_key()).settings["deblock"] == "on"
    old_embedder = Pipeline(embedder="dlib+mobileface-onnx", deblock="off").descriptor_key()
    got = pipeline_for(old_embedder)
    assert got.settings["embedder"] == "dlib+mobileface-onnx" and got.settings["deblock"] == "off"


def test_search_says_a_face_was_restored(pipeline, heavy_faces):
    _, on, _ = heavy_faces
    clean = pipeline.analyze(np.asarray(Image.open(OBAMA).convert("RGB")), with_crops=False)
    gallery = Gallery.from_arrays(np.stack([clean[0].descriptor]), ["f1"], ["obama"])
    searcher = Searcher(gallery)
    restored, plain = searcher.search([on[0], clean[0]])
    assert restored.restored == restore.NAME and plain.restored is None
    assert "restored" in restored.to_json() and "restored" not in plain.to_json()
    assert restored.top.person == "obama"


def test_photos_join_a_dataset_built_before_deblocking(tmp_path, gallery_dir):
    """A dataset built with deblocking off (as every dataset before it existed) takes new
    photos with it off (a heavily compressed one among them), rather than refusing them as
    made by other models."""
    import shutil

    from pof.dataset.build import Builder
    from pof.dataset.catalog import Catalog

    out = tmp_path / "ds"
    first = Builder(out, workers=1, deblock="off").run([str(gallery_dir)], progress=False)
    assert first.added_images == 6
    with Catalog(out) as cat:
        key = cat.get_meta("descriptor_key")
    assert "restoration" not in key
    more = tmp_path / "more" / "subject04"
    more.mkdir(parents=True)
    Image.fromarray(_jpeg(YALE / "subject04.normal", 5)).save(more / "subject04.jpg", quality=100)
    shutil.copy(YALE / "subject04.sad", more / "subject04.sad")
    again = Builder(out, workers=1).run([str(more.parent)], progress=False)
    assert again.added_images == 2
    with Catalog(out) as cat:
        assert cat.get_meta("descriptor_key") == key
    # a new dataset gets deblocking
    fresh = Builder(tmp_path / "new", workers=1)
    assert "restoration" in fresh.model
