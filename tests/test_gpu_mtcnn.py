"""The batched MTCNN of the GPU engine finds what the CPU detector finds (run here on the CPU)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from pof.stages.detect import _mtcnn_ops as ops  # noqa: E402
from pof.stages.detect.mtcnn import MTCNNDetector  # noqa: E402
from pof.gpu import mtcnn as gm  # noqa: E402

from .conftest import DEMO, YALE  # noqa: E402


@pytest.fixture(scope="module")
def batch_detector():
    return gm.BatchMTCNN("cpu")


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _assert_same(cpu, batch):
    """The CPU detector's detections equal one photo's batched result."""
    boxes, points = batch
    assert len(cpu) == len(boxes)
    for d, b, p in zip(cpu, boxes, points):
        x, y, w, h = d.box
        np.testing.assert_allclose(b[:4], [x, y, x + w, y + h], atol=0.05)
        assert b[4] == pytest.approx(d.score, abs=1e-4)
        np.testing.assert_allclose(p, d.landmarks5, atol=0.05)


def test_batch_equals_cpu_detector_on_real_photos(batch_detector):
    """Several Yale photos (plain, glasses, expressions) in one batch: every photo's faces,
    scores and five landmarks as the CPU detector gives them, second looks included."""
    names = ["subject01.normal", "subject01.glasses", "subject02.happy", "subject03.glasses",
             "subject04.sad", "subject04.normal"]
    photos = [_rgb(YALE / n) for n in names]
    cpu = MTCNNDetector()
    results = batch_detector.detect(torch.from_numpy(np.stack(photos)))
    assert len(results) == len(photos)
    assert sum(len(b) for b, _ in results) >= len(photos)
    for photo, res in zip(photos, results):
        _assert_same(cpu.detect(photo), res)


def test_batch_of_one_group_photo(batch_detector):
    """A colour photo with several faces: the same faces as the CPU detector."""
    photo = _rgb(DEMO / "probes" / "obama_joint_session_2009.jpg")
    (boxes, points), = batch_detector.detect(torch.from_numpy(photo[None].copy()))
    _assert_same(MTCNNDetector().detect(photo), (boxes, points))


def test_photo_without_faces_gives_nothing(batch_detector):
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    results = batch_detector.detect(torch.from_numpy(noise))
    assert [len(b) for b, _ in results] == [0, 0]


def test_rejects_wrong_input(batch_detector):
    from pof.errors import ImageError
    with pytest.raises(ImageError):
        batch_detector.detect(torch.zeros((1, 10, 10, 3), dtype=torch.float32))


def test_nms_min_equals_greedy_numpy():
    """The all-photos-at-once suppression keeps exactly what the greedy CPU one keeps."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(5, 40, (n, 2))
        boxes = np.concatenate([xy, xy + wh, rng.uniform(0, 1, (n, 1))], 1).astype(np.float32)
        groups = rng.integers(0, 3, n)
        kept = gm.nms_min(torch.from_numpy(boxes), torch.from_numpy(groups), 0.7).numpy()
        want = np.concatenate([np.flatnonzero(groups == g)[ops.nms(boxes[groups == g], 0.7, method="min")]
                               for g in np.unique(groups)])
        assert sorted(kept.tolist()) == sorted(want.tolist()), trial


def test_crops_and_levels_equal_numpy():
    """Pyramid levels and box crops of a batch (tensors: each photo's table, each box's
    photo) are the CPU detector's block means for each photo alone: the same rule, exact
    integer block sums, the same numbers exactly."""
    photos = np.stack([_rgb(YALE / "subject02.normal"), _rgb(YALE / "subject03.happy")])
    table = ops.integral(torch.from_numpy(photos))
    assert np.array_equal(table.numpy(), np.stack([ops.integral(p) for p in photos]))
    level = ops.pyramid_level(table, 0.3).numpy()
    for i in range(2):
        assert np.array_equal(level[i], ops.pyramid_level(ops.integral(photos[i]), 0.3)[0])
    boxes = np.array([[10.3, 20.7, 90.1, 100.2, 0.9], [-5, -5, 40, 40, 0.5], [300, 200, 340, 260, 0.4]],
                     np.float32)
    img = torch.tensor([0, 1, 1])
    got = ops.crop_patches(table, torch.from_numpy(boxes), 24, photo=img).numpy()
    for k, i in enumerate(img.tolist()):
        assert np.array_equal(got[k], ops.crop_patches(ops.integral(photos[i]), boxes[k:k + 1], 24)[0])
