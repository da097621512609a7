"""Each stage rule is written once (``pof.stages.arrays``) and gives the same result on numpy
arrays (the CPU pipeline, one face or photo at a time) and on torch tensors (the GPU engine,
a batch at once): exactly where the result is whole numbers or the same float operations in
the same order, to a stated tolerance where a reduction may add in another order. The inputs
are real: the landmarks, boxes and descriptors of faces the pipeline finds in the Yale test
photos and the demo photos."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pof import Pipeline  # noqa: E402
from pof.stages import align, detect, embed, quality, restore  # noqa: E402
from pof.stages.detect import _mtcnn_ops as ops  # noqa: E402
from pof.stages.detect.mtcnn import MTCNNDetector, second_look  # noqa: E402
from pof.stages.embed.mobileface import DlibMobileFace, chip_matrix  # noqa: E402
from pof.stages.embed.mobilefacenet import DlibMobileFaceNet  # noqa: E402
from pof.stages.landmarks import five_from_68  # noqa: E402
from pof.stages.load import load_image  # noqa: E402

from .conftest import DEMO, YALE  # noqa: E402

PHOTOS = sorted(YALE.iterdir()) + sorted((DEMO / "gallery").glob("*.jpg")) + sorted((DEMO / "probes").glob("*.jpg"))


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [load_image(p).pixels for p in PHOTOS]


@pytest.fixture(scope="module")
def faces(photos):
    """Every face the CPU pipeline finds in the photos, filled (crops left out)."""
    pipe = Pipeline(attributes="off")
    found = [f for p in photos for f in pipe.analyze(p, with_crops=False)]
    assert len(found) >= len(photos)
    return found


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def test_the_array_module_follows_the_input():
    from pof.stages.arrays import as_type, is_tensor, namespace
    assert namespace(np.zeros(2)) is np and namespace(3.0) is np
    assert namespace(np.zeros(2), torch.zeros(2)) is torch
    assert is_tensor(as_type(np.ones(2), "float32", like=torch.zeros(1)))
    assert as_type(torch.ones(2), "int16").dtype == torch.int16


def test_similarity_fit_batched_and_on_tensors(faces):
    """Umeyama's fit: one face at a time or all at once in numpy, exactly the same matrices;
    on tensors (float64 SVD in torch) the same to 1e-9 pixels a unit."""
    l5 = np.stack([f.landmarks5 for f in faces])
    for template in (align.CROP_TEMPLATE, align.FRAME_TEMPLATE):
        single = np.stack([align.similarity_matrix(p, template) for p in l5])
        assert np.array_equal(align.similarity_matrix(l5, template), single)
        got = align.similarity_matrix(_t(l5), template)
        assert got.dtype == torch.float64 and got.shape == (len(faces), 2, 3)
        np.testing.assert_allclose(got.numpy(), single, rtol=0, atol=1e-9)
    # a known transform comes back: rotation 20 degrees, scale 1.5, shift (7, -3)
    a, s = np.radians(20), 1.5
    m = np.array([[s * np.cos(a), -s * np.sin(a), 7.0], [s * np.sin(a), s * np.cos(a), -3.0]])
    moved = l5 @ m[:, :2].T + m[:, 2]
    for xp_in in (l5, _t(l5)):
        fit = align.similarity_matrix(xp_in, _t(moved) if torch.is_tensor(xp_in) else moved)
        np.testing.assert_allclose(np.asarray(fit), np.broadcast_to(m, fit.shape), atol=1e-6)


def test_affine_inverse_is_opencvs_exactly(faces):
    """The inverse is OpenCV's formula: equal to cv2.invertAffineTransform bit for bit, for
    one matrix, for a batch, and on tensors (the same float64 operations)."""
    ms = align.similarity_matrix(np.stack([f.landmarks5 for f in faces]), align.CROP_TEMPLATE)
    want = np.stack([cv2.invertAffineTransform(m) for m in ms])
    assert np.array_equal(np.stack([align.invert(m) for m in ms]), want)
    assert np.array_equal(align.invert(ms), want)
    assert np.array_equal(align.invert(_t(ms)).numpy(), want)
    assert np.array_equal(align.invert(np.zeros((2, 3))), np.zeros((2, 3)))    # singular: zeros


def test_points_through_matrices(faces):
    """transform_points of each face and of the batch; float32 on both modules (1e-4 px)."""
    l68 = np.stack([f.landmarks68 for f in faces])
    ms = align.frame_matrix(np.stack([f.landmarks5 for f in faces]))
    single = np.stack([align.transform_points(p, m) for p, m in zip(l68, ms)])
    assert np.array_equal(align.transform_points(l68, ms), single)
    got = align.transform_points(_t(l68), _t(ms))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), single, rtol=0, atol=1e-4)
    # and back again, through the inverse
    back = align.transform_points(single, align.invert(ms))
    np.testing.assert_allclose(back, l68, atol=1e-3)


def test_shrink_plan_for_one_face_and_many(faces, photos):
    """warp's plan (shrink first below half scale): the same for a face alone and in a batch,
    with whole-pixel sizes, and the shrunk ones are exactly those scaled below one half."""
    l5 = np.stack([f.landmarks5 for f in faces])
    ms = np.concatenate([align.crop_matrix(l5), align.crop_matrix(l5 * 4.0)])   # some shrink
    height, width = photos[0].shape[:2]
    shrunk, small, factor = align.shrink_plan(ms, width, height)
    assert shrunk.any() and not shrunk.all()
    assert small.dtype == np.int64
    scale = np.sqrt(np.abs(np.linalg.det(ms[:, :, :2])))
    assert np.array_equal(shrunk, scale < align.AREA_SHRINK_BELOW)
    for m, s, sm, fa in zip(ms, shrunk, small, factor):
        one = align.shrink_plan(m, width, height)
        assert bool(one[0]) == s and np.array_equal(one[1], sm) and np.array_equal(one[2], fa)
    assert (small[~shrunk] == (width, height)).all() and (factor[~shrunk] == 1).all()


def test_five_points_from_68(faces):
    """The 68 -> 5 reduction (eye centres, nose tip, mouth corners): per face, batched and on
    tensors (float32 means of six points: 1e-4 px), and the chip matrix built on it."""
    l68 = np.stack([f.landmarks68 for f in faces])
    single = np.stack([five_from_68(p) for p in l68])
    assert single.dtype == np.float32 and single.shape == (len(faces), 5, 2)
    np.testing.assert_allclose(five_from_68(l68), single, rtol=0, atol=1e-4)
    np.testing.assert_allclose(five_from_68(_t(l68)).numpy(), single, rtol=0, atol=1e-4)
    assert np.array_equal(single[:, 2], l68[:, 30])          # the nose tip is a point itself
    np.testing.assert_allclose(single[:, 0], l68[:, 36:42].mean(1), atol=1e-4)
    np.testing.assert_allclose(chip_matrix(_t(single)).numpy(), chip_matrix(single), atol=1e-9)


@pytest.mark.parametrize("fused", [DlibMobileFace, DlibMobileFaceNet])
def test_descriptor_fusion_and_mirror(faces, fused):
    """The fused descriptor is [sqrt(w) dlib, sqrt(1 - w) second]: unit length, its inner
    products w * dlib cosine + (1 - w) * second cosine; numpy and torch agree to 1e-6, the
    mirrored mean too."""
    d = embed.unit(np.stack([f.descriptor[:128] for f in faces]))
    m = embed.unit(np.random.default_rng(0).normal(size=(len(faces), fused.dim - 128)).astype(np.float32))
    got = fused.fuse(d, m)
    assert got.shape == (len(faces), fused.dim) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    w = fused.WEIGHT
    np.testing.assert_allclose(got @ got[0], w * (d @ d[0]) + (1 - w) * (m @ m[0]), atol=1e-6)
    np.testing.assert_allclose(fused.fuse(_t(d), _t(m)).numpy(), got, rtol=0, atol=1e-6)
    both = np.concatenate([d, d[::-1]])
    mean = embed.mirror_mean(both)
    np.testing.assert_allclose(mean, embed.unit(d + d[::-1]), atol=1e-7)
    np.testing.assert_allclose(embed.mirror_mean(_t(both)).numpy(), mean, rtol=0, atol=1e-6)
    # a zero row stays zero rather than dividing by nothing
    assert not embed.unit(np.zeros((1, 4), np.float32)).any()
    assert not embed.unit(torch.zeros((1, 4))).any()


def test_the_pipelines_descriptors_are_the_fused_rule(faces):
    """The pipeline's default descriptors are already unit fused vectors: fusing their own
    two parts gives them back."""
    desc = np.stack([f.descriptor for f in faces])
    w = DlibMobileFaceNet.WEIGHT
    d, m = desc[:, :128] / np.sqrt(w), desc[:, 128:] / np.sqrt(1 - w)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(DlibMobileFaceNet.fuse(d, m), desc, atol=1e-6)


def test_blur_scale(photos):
    """The blur rule on Laplacian variances of real crops: one at a time (the CPU stage,
    rounded to 3 decimals) and many at once on tensors, to 1e-12."""
    pipe = Pipeline(attributes="off")
    crops = [f.crop for p in photos[:6] for f in pipe.analyze(p)]
    variances = []
    for c in crops:
        grey = cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)
        variances.append(cv2.Laplacian(grey[quality.centre_area(*grey.shape)], cv2.CV_64F).var())
    variances = np.array(variances + [0.0, 1e9])                    # and both ends of the scale
    one = np.array([float(quality.blur_scale(np.float64(v))) for v in variances])
    assert one[-2] == 1.0 and one[-1] == 0.0
    assert [round(v, 3) for v in one[:len(crops)]] == [quality.blur_of(c) for c in crops]
    np.testing.assert_allclose(quality.blur_scale(_t(variances)).numpy(), one, rtol=0, atol=1e-12)


def test_blockiness_of_one_photo_and_a_batch(photos):
    """The blockiness rule on real photos saved at JPEG quality 5 and 90: per photo in numpy
    (the CPU stage) and for the batch on tensors, to 1e-12; heavy compression reads as
    blocky, light does not."""
    grey = []
    for q in (5, 90):
        ok, enc = cv2.imencode(".jpg", photos[0][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        grey.append(cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY))
    one = np.array([restore.blockiness(g) for g in grey])
    assert one[0] >= restore.HEAVY_BLOCKINESS > one[1]
    g = _t(np.stack(grey))
    got = restore.sampled_blockiness(g[:, ::restore.ROW_STEP], g.transpose(1, 2)[:, ::restore.ROW_STEP])
    np.testing.assert_allclose(got.numpy(), one, rtol=1e-12)
    tiny = _t(np.stack(grey)[:, :10, :10])                   # too small to tell: 1
    assert restore.sampled_blockiness(tiny, tiny).tolist() == [1.0, 1.0]


@pytest.fixture(scope="module")
def candidates(photos):
    """A real photo's PNet candidates, its summed-area table and the CPU detector."""
    det = MTCNNDetector()
    table = ops.integral(photos[-1])
    boxes = det._stage_pnet(table)
    assert len(boxes) > 10
    return det, table, boxes


def test_box_rules_are_exact_on_both(candidates):
    """Whole-pixel and float32 box rules give the same numbers on numpy and torch: cell
    corners, jitters, the ONet landmark mapping, IoU, clipping, area bins, regression."""
    _, table, boxes = candidates
    ys, xs = np.nonzero(np.ones((7, 9), bool))
    assert np.array_equal(ops.cell_corners(_t(xs), _t(ys), 0.3).numpy(), ops.cell_corners(xs, ys, 0.3))
    jit = ops.jitter(boxes, ops.RESCUE_JITTERS)
    assert jit.dtype == np.float32 and jit.shape == (len(boxes), len(ops.RESCUE_JITTERS), 5)
    assert np.array_equal(ops.jitter(_t(boxes), ops.RESCUE_JITTERS).numpy(), jit)
    rel = np.random.default_rng(1).random((len(boxes), 10)).astype(np.float32)
    assert np.array_equal(ops.landmarks_in_box(_t(boxes), _t(rel)).numpy(), ops.landmarks_in_box(boxes, rel))
    iou = ops.pair_iou(boxes, boxes)
    assert np.allclose(np.diag(iou), 1.0)
    assert np.array_equal(ops.pair_iou(_t(boxes), _t(boxes)).numpy(), iou)
    assert np.array_equal(ops.max_iou(boxes[:3], boxes[3:]), iou[:3, 3:].max(1))
    h, w = table.shape[0] - 1, table.shape[1] - 1
    clipped, inside = ops.clip_boxes(boxes * 3 - 50, w, h)
    t_clipped, t_inside = ops.clip_boxes(_t(boxes * 3 - 50), w, h)
    assert np.array_equal(t_clipped.numpy(), clipped) and np.array_equal(t_inside.numpy(), inside)
    assert clipped[:, :4].min() >= 0 and clipped[:, [0, 2]].max() <= w and clipped[:, [1, 3]].max() <= h
    for n_in in (h, np.array([37, 5, 300])):
        a = ops.area_bins(n_in, 24)
        b = ops.area_bins(torch.as_tensor(n_in), 24, like=torch.zeros(1))
        assert all(np.array_equal(x, y.numpy()) for x, y in zip(a, b))
    reg = rel[:, :4] - 0.5
    assert np.array_equal(ops.square(ops.regress(_t(boxes), _t(reg))).numpy(), ops.square(ops.regress(boxes, reg)))


def test_second_look_on_both(candidates):
    """The rescue of rejected candidates with the real RNet: on numpy arrays for one photo,
    and on tensors with every box of the same photo; the same boxes kept, boxes and scores
    exactly."""
    det, table, boxes = candidates
    threshold = det.thresholds[1]
    outs = det._run("rnet", ops.crop_patches(table, boxes, 24))

    def look(tries, of, per_box):
        return det._run("rnet", ops.crop_patches(table, np.asarray(tries), 24))

    def t_look(tries, of, per_box):
        return [_t(o) for o in look(tries.numpy(), of, per_box)]

    prob = outs[-1][:, 1].copy()
    keep = prob > threshold
    assert not keep.all() and ((prob >= 0.03) & ~keep).any()      # there is something to rescue
    b, o, p, k = boxes.copy(), [x.copy() for x in outs], prob.copy(), keep.copy()
    second_look(look, threshold, b, o, p, k)
    tb, to, tp, tk = _t(boxes.copy()), [_t(x.copy()) for x in outs], _t(prob.copy()), _t(keep.copy())
    second_look(t_look, threshold, tb, to, tp, tk, photo=torch.zeros(len(boxes), dtype=torch.int64))
    assert np.array_equal(tk.numpy(), k) and np.array_equal(tb.numpy(), b) and np.array_equal(tp.numpy(), p)
    assert all(np.array_equal(x.numpy(), y) for x, y in zip(to, o))
    # boxes of another photo do not stop a rescue: alone in its photo, each rejected box
    # gets its look even where an accepted box of the first photo overlaps it
    other = _t(np.where(keep, 0, 1).astype(np.int64))
    tb2, tk2, tp2 = _t(boxes.copy()), _t(keep.copy()), _t(prob.copy())
    second_look(t_look, threshold, tb2, [_t(x.copy()) for x in outs], tp2, tk2, photo=other)
    assert tk2.sum() >= tk.sum()


def test_detection_retry_for_one_photo_and_a_batch(photos):
    """A photo too dark to find a face in is searched again contrast-equalised; a batch gives
    what each photo gives alone."""
    pipe = Pipeline(attributes="off")
    dark = np.ascontiguousarray(photos[0] // 32)
    t = pipe.settings["det_threshold"]

    def find(images):
        return [[d for d in pipe.detector.detect(im) if d.score >= t] for im in images]

    assert find([dark]) == [[]]
    batch = detect.with_retries(find([photos[0], dark]), find, [photos[0], dark])
    assert [seen for _, seen in batch] == ["original", "equalized"]
    for photo, (dets, seen) in zip([photos[0], dark], batch):
        alone, seen_alone = pipe.detect(photo)
        assert seen_alone == seen and [d.box for d in alone] == [d.box for d in dets]
    blank = np.zeros((64, 64, 3), np.uint8)
    assert detect.with_retries(find([blank]), find, [blank]) == [([], "original")]
