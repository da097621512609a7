"""pof.gpu.chips cuts, batched in torch, the four images the CPU pipeline cuts per face with
OpenCV and dlib: the landmark frame, the dataset crop, MobileFace's chip and dlib's chip.

Real faces (Yale photos, one upscaled 4x so that the frame and crop are shrunk first and dlib
samples a pyramid level, one turned 25 degrees, one cut by the photo's edge), landmarks from
pof's CPU pipeline. The torch code follows the libraries' own arithmetic, so the differences
are rounding: the bounds below leave room for a level here and there, nothing more.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pof import Pipeline  # noqa: E402
from pof.stages import align
from pof.stages.embed import dlib_resnet, mobileface  # noqa: E402
from pof.gpu import chips  # noqa: E402
from pof.record import Face  # noqa: E402

from .conftest import yale_rgb  # noqa: E402

SAME_SIZE = ["subject01.normal", "subject02.glasses", "subject03.happy"]   # one batch of 3
UPSCALE = 4             # the large face: the frame and crop scale by < 1/2, dlib goes 2 levels down
TURN_DEGREES = 25
BORDER_CUT = 105        # columns cut off the left of subject01.happy: its face meets the edge

# Per output: (size, border, shrink), the CPU function it must equal.
OUTPUTS = {
    "frame": ((align.FRAME_SIZE, align.FRAME_SIZE), "replicate", "area"),
    "crop": ((align.CROP_W, align.CROP_H), "replicate", "area"),
    "mobileface": ((mobileface.CHIP, mobileface.CHIP), "zero", "none"),
    "dlib": ((dlib_resnet.CHIP_SIZE, dlib_resnet.CHIP_SIZE), "zero", "dlib"),
}
# Pixel bounds per output, in levels. Measured (OpenCV 5.0, dlib 20.0): the OpenCV outputs
# differ by one level at rounding ties and float ulps (at most ~0.2% of pixels, pre-shrunk or
# not); dlib's chip is bit-exact.
MEAN_BOUND = {"frame": 0.05, "crop": 0.05, "mobileface": 0.05, "dlib": 0.01}
P99_BOUND = 1
MAX_BOUND = {"frame": 2, "crop": 2, "mobileface": 2, "dlib": 1}
COSINE_BOUND = 0.999


def _cpu_output(name: str, image: np.ndarray, face) -> np.ndarray:
    if name == "frame":
        return align.warp(image, align.frame_matrix(face.landmarks5), (align.FRAME_SIZE, align.FRAME_SIZE))
    if name == "crop":
        return align.crop_face(image, face.landmarks5)[0]
    if name == "mobileface":
        return mobileface.chip(image, face)
    return dlib_resnet.chip(image, face)


def _matrices(name: str, faces) -> np.ndarray:
    if name in ("frame", "crop"):
        points = np.stack([f.landmarks5 for f in faces])
        return chips.frame_matrices(points) if name == "frame" else chips.crop_matrices(points)
    points = np.stack([f.landmarks68 for f in faces])
    return chips.mobileface_matrices(points) if name == "mobileface" else chips.dlib_chip_matrices(points)


def _turned(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), TURN_DEGREES, 1.0), (w, h))


@pytest.fixture(scope="module")
def cases():
    """{case: (photos of one size, [(photo number, Face)])}, faces from the CPU pipeline."""
    pipeline = Pipeline(attributes="off")
    photos = {
        "plain": [np.asarray(yale_rgb(n)) for n in SAME_SIZE],
        "pre-shrink": [cv2.resize(np.asarray(yale_rgb("subject02.normal")), None, fx=UPSCALE, fy=UPSCALE,
                                  interpolation=cv2.INTER_CUBIC)],
        "turned": [_turned(np.asarray(yale_rgb("subject03.normal")))],
        "border": [np.ascontiguousarray(np.asarray(yale_rgb("subject01.happy"))[:, BORDER_CUT:])],
    }
    out = {}
    for case, images in photos.items():
        faces = [(i, f) for i, image in enumerate(images) for f in pipeline.analyze(image, with_crops=False)]
        assert faces, case
        out[case] = (images, faces)
    return out


@pytest.fixture(scope="module")
def compared(cases):
    """{(case, output): (torch outputs, CPU outputs)} as uint8 (n, h, w, 3)."""
    result = {}
    for case, (images, faces) in cases.items():
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)     # channels last, as the engine
        index = torch.tensor([i for i, _ in faces])
        for name, (size, border, shrink) in OUTPUTS.items():
            got = chips.warp(batch, index, _matrices(name, [f for _, f in faces]), size, border, shrink)
            got = got.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            want = np.stack([_cpu_output(name, images[i], f) for i, f in faces])
            result[case, name] = (got, want)
    return result


def _differences(got: np.ndarray, want: np.ndarray) -> dict:
    d = np.abs(got.astype(np.int16) - want.astype(np.int16))
    return {"mean": float(d.mean()), "over2": float((d > 2).mean()), "p99": float(np.percentile(d, 99)),
            "max": int(d.max())}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_outputs_match_the_cpu_pipeline(compared, name):
    """Each output, per case, against the CPU function: mean, 99th percentile, maximum."""
    for case in ("plain", "pre-shrink", "turned", "border"):
        stats = _differences(*compared[case, name])
        print(f"{name:10s} {case:10s} mean {stats['mean']:.4f}  >2 levels {stats['over2']:.2%}  "
              f"p99 {stats['p99']:.0f}  max {stats['max']}")
        assert stats["mean"] < MEAN_BOUND[name], (case, stats)
        assert stats["p99"] <= P99_BOUND, (case, stats)
        assert stats["max"] <= MAX_BOUND[name], (case, stats)


def test_the_cases_cover_what_they_claim(cases):
    """The large face is shrunk first (frame, crop) and sampled from dlib's pyramid (its chip
    spans over twice the chip's pixels); the border face's outputs reach past the photo."""
    face = cases["pre-shrink"][1][0][1]
    for name in ("frame", "crop"):
        m = _matrices(name, [face])[0]
        assert np.sqrt(abs(np.linalg.det(m[:, :2]))) < align.AREA_SHRINK_BELOW
    dlib_scale = 1 / np.sqrt(abs(np.linalg.det(chips.dlib_chip_matrices(face.landmarks68[None])[0, :, :2])))
    assert dlib_scale > 2
    faces = cases["border"][1]
    for name, (size, _, _) in OUTPUTS.items():
        m = _matrices(name, [f for _, f in faces])[0]
        corners = np.array([[0, 0], [size[0] - 1, 0], [0, size[1] - 1], [size[0] - 1, size[1] - 1]], float)
        source = align.transform_points(corners, align.invert(m))
        assert (source[:, 0] < 0).any(), name


@pytest.mark.parametrize("upscale, dlib_level", [(2.5, 0), (8.0, 2)])
def test_other_shrink_factors_and_pyramid_levels(cases, upscale, dlib_level):
    """The plain face enlarged 2.5x (dlib's first pyramid level, INTER_AREA by ~1.1) and 8x
    (dlib's third level, INTER_AREA by ~3.5), landmarks scaled with it."""
    image = np.asarray(yale_rgb(SAME_SIZE[0]))
    _, faces = cases["plain"]
    face = faces[0][1]
    photo = cv2.resize(image, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    big = Face(index=0, box=face.box, det_score=1.0, landmarks5=(face.landmarks5 + 0.5) * upscale - 0.5,
               landmarks68=(face.landmarks68 + 0.5) * upscale - 0.5)
    # dlib samples level k when its chip's side spans 2^(k+1) to 2^(k+2) source pixels per pixel
    step = 1 / np.sqrt(np.linalg.det(chips.dlib_chip_matrices(big.landmarks68[None])[0, :, :2]))
    assert 2 ** (dlib_level + 1) < step < 2 ** (dlib_level + 2)
    batch = torch.from_numpy(photo[None]).permute(0, 3, 1, 2)
    for name, (size, border, shrink) in OUTPUTS.items():
        got = chips.warp(batch, torch.zeros(1, dtype=torch.long), _matrices(name, [big]), size, border, shrink)
        got = got.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        stats = _differences(got, _cpu_output(name, photo, big)[None])
        print(f"{name:10s} x{upscale:<4g}      mean {stats['mean']:.4f}  max {stats['max']}")
        assert stats["mean"] < MEAN_BOUND[name] and stats["max"] <= MAX_BOUND[name], (name, stats)


def test_area_shrink_by_exactly_two(cases):
    """A transform scaling by exactly 1/4 shrinks the (even-sized) photo by exactly 2, where
    cv2.resize averages 2 x 2 blocks and rounds halves up."""
    photo = cases["pre-shrink"][0][0]
    m = np.array([[[0.25, 0.0, -40.0], [0.0, 0.25, -30.0]]])
    got = chips.warp(torch.from_numpy(photo[None]).permute(0, 3, 1, 2), torch.zeros(1, dtype=torch.long), m,
                     (256, 256))
    got = got.round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    stats = _differences(got, align.warp(photo, m[0], (256, 256)))
    assert stats["max"] <= 1 and stats["mean"] < 0.01, stats


def test_dlib_chips_give_the_same_descriptors(compared):
    """dlib's ResNet (ONNX) on the torch chips and on dlib's own: cosine above 0.999."""
    from pof.stages.embed.onnx_resnet import OnnxResNet
    net = OnnxResNet()
    for case in ("plain", "pre-shrink", "turned", "border"):
        got, want = compared[case, "dlib"]
        cos = (net.embed_chips(got) * net.embed_chips(want)).sum(1)
        print(f"dlib chip descriptors, {case}: cosine {np.round(cos, 6).tolist()}")
        assert cos.min() > COSINE_BOUND, (case, cos)


def test_matrices_equal_the_cpu_ones(cases):
    """Frame and crop matrices are pof's CPU rules run on the batch: the same numbers
    exactly; MobileFace's to 1e-6 (its five points are float32 means, taken for the batch);
    dlib's chip matrix from dlib's own chip_details (rectangle turned about its centre) to
    1e-6."""
    import dlib
    faces = [f for _, group in cases.values() for _, f in group]
    l5, l68 = np.stack([f.landmarks5 for f in faces]), np.stack([f.landmarks68 for f in faces])
    want_frame = [align.frame_matrix(f.landmarks5) for f in faces]
    want_crop = [align.crop_face(np.zeros((8, 8, 3), np.uint8), f.landmarks5)[1] for f in faces]
    want_mobile = [align.similarity_matrix(mobileface.five_points(f), align._ARCFACE_112) for f in faces]
    assert np.array_equal(chips.frame_matrices(l5), np.stack(want_frame))
    assert np.array_equal(chips.crop_matrices(l5), np.stack(want_crop))
    np.testing.assert_allclose(chips.mobileface_matrices(l68), want_mobile, rtol=0, atol=1e-6)
    size = dlib_resnet.CHIP_SIZE
    for f, got in zip(faces, chips.dlib_chip_matrices(l68)):
        d = dlib.get_face_chip_details(dlib_resnet._detection(f), size, dlib_resnet.CHIP_PADDING)
        r = d.rect
        centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        turn = np.array([[np.cos(d.angle), -np.sin(d.angle)], [np.sin(d.angle), np.cos(d.angle)]])
        tl, tr, bl = ((np.array(p) - centre) @ turn.T + centre
                      for p in ([r.left(), r.top()], [r.right(), r.top()], [r.left(), r.bottom()]))
        to_source = np.column_stack([(tr - tl) / (size - 1), (bl - tl) / (size - 1), tl])
        np.testing.assert_allclose(got, align.invert(to_source), rtol=0, atol=1e-6)


def test_float_photos_and_contiguous_layout_give_the_same(cases):
    """Float photos in a plain (B, 3, H, W) layout give what uint8 channels-last photos give."""
    images, faces = cases["plain"]
    index = torch.tensor([i for i, _ in faces])
    as_uint8 = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    as_float = as_uint8.float().contiguous()
    for name, (size, border, shrink) in OUTPUTS.items():
        m = _matrices(name, [f for _, f in faces])
        a = chips.warp(as_uint8, index, m, size, border, shrink)
        b = chips.warp(as_float, index, torch.from_numpy(m), size, border, shrink)
        assert a.shape == (len(faces), 3, size[1], size[0]) and a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_no_faces_and_bad_arguments():
    photos = torch.zeros((1, 3, 40, 50), dtype=torch.uint8)
    none = chips.warp(photos, torch.zeros(0, dtype=torch.long), np.zeros((0, 2, 3)), (30, 20))
    assert none.shape == (0, 3, 20, 30)
    m = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    one = torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="border"):
        chips.warp(photos, one, m, (30, 20), border="reflect")
    with pytest.raises(ValueError, match="shrink"):
        chips.warp(photos, one, m, (30, 20), shrink="cubic")
    with pytest.raises(ValueError, match="zero"):
        chips.warp(photos, one, m, (30, 20), border="replicate", shrink="dlib")
