"""dlib's ResNet in ONNX Runtime: the real converted model against dlib on real Yale chips."""
from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest

from pof.stages.embed.dlib_resnet import chip
from pof.stages.embed.onnx_resnet import MODEL, OnnxResNet
from pof.errors import PofError
from pof.stages.load import load_image
from pof.runtime.weights import dlib_model

YALE = Path(__file__).parent / "data" / "yale"


@pytest.fixture(scope="module")
def analysed(pipeline) -> list[tuple[np.ndarray, list]]:
    """(pixels, faces with dlib descriptors) of every Yale test image."""
    out = []
    for f in sorted(YALE.iterdir()):
        pixels = load_image(f).pixels
        out.append((pixels, pipeline.analyze(pixels, with_crops=False)))
    return out


@pytest.fixture(scope="module")
def chips(analysed) -> np.ndarray:
    return np.stack([chip(pixels, f) for pixels, faces in analysed for f in faces])


@pytest.fixture(scope="module")
def embedder() -> OnnxResNet:
    return OnnxResNet()


def test_raw_descriptors_equal_dlibs(chips, embedder):
    assert len(chips) >= 10
    net = dlib.face_recognition_model_v1(str(dlib_model("resnet")))
    ref = np.array(net.compute_face_descriptor(list(chips)), dtype=np.float32)
    got = embedder.session.run(None, {"chip": chips.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    cos = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    assert cos.min() > 0.9999
    assert np.abs(ref - got).max() < 1e-4  # not normalised: dlib's raw vectors


def test_batch_equals_one_by_one(chips, embedder):
    batch = embedder.embed_chips(chips)
    single = np.concatenate([embedder.embed_chips(c[None]) for c in chips])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-5)


def test_embed_fills_unit_descriptors_close_to_dlibs(analysed, embedder):
    for pixels, faces in analysed[:3]:
        # the pipeline's default descriptor starts with sqrt(w) x dlib's unit vector
        dlib_vecs = [f.descriptor[:128] / np.linalg.norm(f.descriptor[:128]) for f in faces]
        embedder.embed(pixels, faces)
        for f, ref in zip(faces, dlib_vecs):
            assert f.descriptor.dtype == np.float32 and f.descriptor.shape == (128,)
            assert abs(np.linalg.norm(f.descriptor) - 1) < 1e-5
            assert float(f.descriptor @ ref) > 0.9999


def test_no_faces_and_bad_chips(embedder):
    embedder.embed(np.zeros((10, 10, 3), np.uint8), [])
    assert embedder.embed_chips(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(PofError, match="uint8"):
        embedder.embed_chips(np.zeros((1, 150, 150, 3), np.float32))
    with pytest.raises(PofError, match="150"):
        embedder.embed_chips(np.zeros((1, 112, 112, 3), np.uint8))


def test_version_names_the_model_file():
    e = OnnxResNet()
    assert e.name == "dlib-resnet-onnx" and e.dim == 128
    assert e.version.startswith(MODEL.name + "/sha256-")
    assert e._session is None  # nothing loaded until first use
