"""The MTCNN detector: the real ONNX models on real Yale faces, and the wiring with fakes."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pof.stages.detect import _mtcnn_ops as ops
from pof.stages.detect.mtcnn import MTCNNDetector
from pof.errors import ImageError, SettingError

YALE = Path(__file__).parent / "data" / "yale"
FACES = ["subject01.normal", "subject03.happy", "subject04.sad"]


def yale(name: str) -> np.ndarray:
    return np.asarray(Image.open(YALE / name).convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector()


def the_face(detector, image):
    faces = detector.detect(image)
    assert len(faces) == 1, [f.box for f in faces]
    return faces[0]


@pytest.mark.parametrize("name", FACES)
def test_one_face_with_plausible_geometry(detector, name):
    image = yale(name)
    face = the_face(detector, image)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
    assert 80 < w < 180 and 0.8 < h / w < 1.6  # Yale faces are ~120 px wide
    assert face.score > 0.95
    lm = face.landmarks5
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    eye_l, eye_r, nose, mouth_l, mouth_r = lm
    assert eye_l[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
    assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    assert np.all((lm >= (x, y)) & (lm <= (x + w, y + h)))


def test_lower_face_masked_is_found(detector):
    image = yale("subject01.normal")
    plain = the_face(detector, image)
    x, y, w, h = plain.box
    nose_y = plain.landmarks5[2, 1]
    for value in (128, 0):  # grey and black, from just above the nose tip to below the chin
        masked = image.copy()
        masked[int(nose_y) - 8:, int(x) - 5:int(x + w) + 5] = value
        face = the_face(detector, masked)
        assert abs(face.box[0] - x) < 0.2 * w and abs(face.box[2] - w) < 0.3 * w


def test_small_face_is_found(detector):
    image = yale("subject03.happy")
    plain = the_face(detector, image)
    s = 28 / plain.box[2]  # face about 28 px wide
    small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    face = the_face(detector, small)
    assert 20 < face.box[2] < 40
    assert abs(face.box[0] - plain.box[0] * s) < 5


@pytest.mark.parametrize("kind", ["grey", "noise", "tiny"])
def test_no_face_gives_empty_list(detector, kind):
    image = {"grey": np.full((240, 320, 3), 128, np.uint8),
             "noise": np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8),
             "tiny": np.full((10, 15, 3), 200, np.uint8)}[kind]  # smaller than any face
    assert detector.detect(image) == []


def test_rescue_off_matches_rescue_on_for_clear_faces():
    on, off = MTCNNDetector(), MTCNNDetector(rescue=False)
    a, b = the_face(on, yale("subject04.sad")), the_face(off, yale("subject04.sad"))
    assert np.allclose(a.box, b.box) and np.allclose(a.landmarks5, b.landmarks5)


def test_bad_input_and_settings_raise():
    with pytest.raises(ImageError):
        MTCNNDetector().detect(np.zeros((50, 50), np.uint8))
    with pytest.raises(ImageError):
        MTCNNDetector().detect(np.zeros((50, 50, 3), np.float32))
    for bad in ({"min_face_size": 0}, {"factor": 1.2}, {"thresholds": (0.6, 0.7)}):
        with pytest.raises(SettingError):
            MTCNNDetector(**bad)


class FakeSession:
    """Stands in for an onnxruntime InferenceSession: records inputs, replays outputs."""

    def __init__(self, *replies):
        self.replies, self.inputs = list(replies), []

    def run(self, _names, feeds):
        self.inputs.append(feeds["input"])
        return [np.array(r, dtype=np.float32) for r in self.replies.pop(0)]


def fake_detector(rescue=False, **sessions) -> MTCNNDetector:
    det = MTCNNDetector(rescue=rescue)
    det._sessions = sessions  # the lazy loader then never touches the real models
    return det


def test_models_load_lazily():
    det = MTCNNDetector()
    assert det._sessions is None
    det._session("pnet")
    assert set(det._sessions) == {"pnet", "rnet", "onet"}


def test_onet_stage_wiring():
    """ONet sees normalised 48x48 crops; scores, threshold, landmarks and regression."""
    boxes = np.array([[10, 20, 59, 69, 0.9], [100, 100, 139, 139, 0.8]], np.float32)
    rel = [[0.3, 0.7, 0.5, 0.35, 0.65, 0.4, 0.4, 0.6, 0.8, 0.8]] * 2
    reg = [[0.1, 0.0, 0.0, -0.1], [0, 0, 0, 0]]
    onet = FakeSession([reg, rel, [[0.05, 0.95], [0.9, 0.1]]])
    det = fake_detector(onet=onet)
    table = ops.integral(np.full((200, 200, 3), 255, np.uint8))
    out, points = det._stage_onet(table, boxes)
    batch = onet.inputs[0]
    assert batch.shape == (2, 3, 48, 48) and np.allclose(batch, (255 - 127.5) / 128)
    assert len(out) == 1 and out[0, 4] == pytest.approx(0.95)  # second box is below 0.7
    side = 50  # x2 - x1 + 1
    assert np.allclose(out[0, :4], [10 + 0.1 * side, 20, 59, 69 - 0.1 * side])
    assert np.allclose(points[0, 0], [10 - 1 + 0.3 * side, 20 - 1 + 0.4 * side])
    assert np.allclose(points[0, 2], [10 - 1 + 0.5 * side, 20 - 1 + 0.6 * side])


def test_rnet_rescue_wiring():
    """A rejected box is re-cropped at the shifts, then (one passed) at the scales; two
    passing crops save it."""
    k, first_k = len(ops.RESCUE_JITTERS), ops.RESCUE_SHIFTS
    boxes = np.array([[40, 40, 88, 88, 0.9]], np.float32)
    first = [[[0, 0, 0, 0]], [[0.8, 0.2]]]  # rejected
    probs = [0.1] * k
    probs[2], probs[4] = 0.95, 0.8  # two jittered crops pass; the first of them is best
    shifts = [[[0, 0, 0, 0]] * first_k, [[1 - p, p] for p in probs[:first_k]]]
    scales = [[[0, 0, 0, 0]] * (k - first_k), [[1 - p, p] for p in probs[first_k:]]]
    rnet = FakeSession(first, shifts, scales)
    det = fake_detector(rescue=True, rnet=rnet)
    out = det._stage_rnet(ops.integral(np.zeros((160, 160, 3), np.uint8)), boxes)
    assert rnet.inputs[1].shape == (first_k, 3, 24, 24)
    assert rnet.inputs[2].shape == (k - first_k, 3, 24, 24)
    assert len(out) == 1 and out[0, 4] == pytest.approx(0.8)  # the second-best probability
    expected = ops.jitter(boxes, ops.RESCUE_JITTERS)[0, 2]
    assert np.allclose(out[0, :4], expected[:4], atol=1e-4)


def test_rescue_skips_scales_when_no_shift_passes():
    first_k = ops.RESCUE_SHIFTS
    boxes = np.array([[40, 40, 88, 88, 0.9]], np.float32)
    rnet = FakeSession([[[0, 0, 0, 0]], [[0.8, 0.2]]],
                       [[[0, 0, 0, 0]] * first_k, [[0.9, 0.1]] * first_k])
    det = fake_detector(rescue=True, rnet=rnet)
    out = det._stage_rnet(ops.integral(np.zeros((160, 160, 3), np.uint8)), boxes)
    assert len(rnet.inputs) == 2 and len(out) == 0


def test_integer_table_resamples_exactly_as_float():
    """The int32 summed-area table gives PNet inputs and crops bit for bit equal to a float64
    one (for images whose sums pass 2**31: the next test)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (243, 320, 3), dtype=np.uint8)
    table = ops.integral(image)
    assert table.dtype == np.int32
    as_float = table.astype(np.float64)
    for scale in ops.pyramid_scales(243, 320, 20, 0.709):
        assert np.array_equal(ops.pyramid_level(table, scale), ops.pyramid_level(as_float, scale))
    boxes = np.array([[-10, -5, 40, 45, 0.9], [100, 50, 230, 180, 0.8], [300, 200, 360, 260, 0.7]],
                     np.float32)
    for size in (24, 48):
        assert np.array_equal(ops.crop_patches(table, boxes, size), ops.crop_patches(as_float, boxes, size))


def test_int32_table_of_a_large_photo_wraps_and_stays_exact(monkeypatch):
    """Past 8.4 megapixels the int32 summed-area table wraps around 2**32; the pyramid and
    the candidate crops read from it must equal those from an exact float64 table."""
    demo = Path(__file__).parent.parent / "pof" / "data" / "demo" / "gallery"
    photo = np.asarray(Image.open(sorted(demo.glob("*.jpg"))[0]).convert("RGB"))
    # 12 megapixels, brightened so that every channel's total passes 2**31
    big = np.ascontiguousarray(cv2.add(cv2.resize(photo, (4000, 3000)), 150))
    table = ops.integral(big)
    exact = cv2.integral(big, sdepth=cv2.CV_64F)
    assert table.dtype == np.int32
    assert exact[-1, -1].min() > 2**31                               # the sums did wrap
    for scale in ops.pyramid_scales(3000, 4000, 20, 0.709)[::3]:
        assert np.array_equal(ops.pyramid_level(table, scale), ops.pyramid_level(exact, scale))
    rng = np.random.default_rng(0)
    corner, side = rng.uniform(-40, 3500, (64, 2)), rng.uniform(12, 2900, (64, 1))
    boxes = np.concatenate([corner, corner + side, np.ones((64, 1))], axis=1)
    for size in (24, 48):
        assert np.array_equal(ops.crop_patches(table, boxes, size), ops.crop_patches(exact, boxes, size))
    # where the int32 table did not wrap as expected (its last corner is not the image's
    # total modulo 2**32), the exact float64 table is used
    monkeypatch.setattr(ops.cv2, "sumElems", lambda img: (1.0, 2.0, 3.0, 0.0))
    assert ops.integral(big).dtype == np.float64


def test_a_crowd_runs_in_bounded_batches_with_the_same_faces(detector, monkeypatch):
    """RNet and ONet take a picture's candidates at most MAX_PATCHES at a time (a contact sheet
    or a crowd makes thousands, and one batch of them all took gigabytes): the faces found are
    the same as in one batch."""
    import pof.stages.detect.mtcnn as mtcnn
    names = sorted(p.name for p in YALE.iterdir())
    tiles = [cv2.resize(yale(n), (160, 120)) for n in names]
    rows = [np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles) - len(tiles) % 4, 4)]
    crowd = np.ascontiguousarray(np.vstack(rows))
    whole = detector.detect(crowd)
    monkeypatch.setattr(mtcnn, "MAX_PATCHES", 7)
    seen = []
    real = detector._run
    monkeypatch.setattr(detector, "_run", lambda net, batch: (seen.append(len(batch)), real(net, batch))[1])
    chunked = detector.detect(crowd)
    assert max(seen) <= 7 and len(seen) > 10     # PNet's levels (one each), then batches of 7
    assert len(whole) == len(chunked) >= len(rows) * 2
    for a, b in zip(whole, chunked):
        assert np.allclose(a.box, b.box, atol=1e-3) and abs(a.score - b.score) < 1e-5
