"""The GPU engine's 68-point shape predictor (``pof.gpu.shape68``) against dlib's own, on real
faces (run here on the CPU).

dlib's points are whole pixels, and the compressed leaves and the parallel sum of the trees
move a point by a pixel now and then (see the module docstring): so the comparisons bound
how many coordinates differ and by how much, rather than asking for equality. The measured
differences are printed (pytest -s).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from pof.gpu import shape68  # noqa: E402
from pof.runtime.weights import dlib_model  # noqa: E402

from .conftest import DEMO, YALE  # noqa: E402

MAX_NPZ_BYTES = 24_000_000
MIN_HOG_SCORE = 0.5          # real faces only (see ``_faces``)
JITTER = 5                   # pixels: extra boxes per face, shifted up to this much per side
BOXES_PER_FACE = 3
MAX_MEAN_PX = 0.1            # mean |difference| per coordinate, pixels
MAX_DIFFERING = 0.12         # share of coordinates that differ at all
MAX_FAR = 0.01               # share of points more than 1.5 px away from dlib's
MAX_PX = 3.0                 # no coordinate further than this
EXACT_LEAVES_MAX_MEAN_PX = 0.04


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The batches here are small: on a busy 2-core machine OpenMP's waiting threads would
    cost more than they bring."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dat():
    return dlib_model("shape68")


@pytest.fixture(scope="session")
def model(dat):
    """The .dat read once per session, exact leaf values."""
    return shape68.read_dat(dat)


@pytest.fixture(scope="session")
def npz(dat, model, tmp_path_factory):
    """The converted predictor: the default one if it was made from this .dat, else a fresh
    conversion (of the arrays already read) into a temporary folder."""
    source = shape68.file_sha256(dat)
    default = shape68.default_path()
    if default.is_file():
        try:
            if shape68.load_npz(default)["source_sha256"] == source:
                return default
        except ValueError:                      # an older format: convert afresh
            pass
    return shape68.save_npz(model, tmp_path_factory.mktemp("shape68") / "shape68.npz", source)


@pytest.fixture(scope="session")
def predictor(npz):
    return shape68.ShapePredictor68(npz, "cpu")


@pytest.fixture(scope="session")
def dlib():
    return pytest.importorskip("dlib")


@pytest.fixture(scope="session")
def dlib_predictor(dlib, dat):
    return dlib.shape_predictor(str(dat))


def _images(mode: str) -> list[np.ndarray]:
    """The Yale faces (and, in RGB, the demo photos) as uint8 arrays."""
    files = sorted(YALE.iterdir()) + (sorted(DEMO.rglob("*.jpg")) if mode == "RGB" else [])
    return [np.asarray(Image.open(f).convert(mode)) for f in files]


def _faces(dlib, images: list[np.ndarray]) -> tuple[list[int], np.ndarray]:
    """(image index, box (left, top, right, bottom)) of every face dlib's HOG detector finds,
    each with BOXES_PER_FACE - 1 randomly shifted copies of its box. Weak detections are left
    out: the one in the demo photos is the astronaut's mission patch, where dlib's own fit is
    unstable (summing its exact leaves in another order moves points by up to 10 px)."""
    detector = dlib.get_frontal_face_detector()
    rng = np.random.default_rng(0)
    owners, rects = [], []
    for i, image in enumerate(images):
        found, scores, _ = detector.run(image, 0, 0.0)
        for r, score in zip(found, scores):
            if score < MIN_HOG_SCORE:
                continue
            box = np.array([r.left(), r.top(), r.right(), r.bottom()])
            for k in range(BOXES_PER_FACE):
                owners.append(i)
                rects.append(box + (rng.integers(-JITTER, JITTER + 1, 4) if k else 0))
    return owners, np.array(rects)


def _dlib_points(dlib, dlib_predictor, images, owners, rects) -> np.ndarray:
    return np.array([[(p.x, p.y) for p in dlib_predictor(images[i], dlib.rectangle(*map(int, r))).parts()]
                     for i, r in zip(owners, rects)], dtype=np.float32)


def _stack(images: list[np.ndarray]) -> torch.Tensor:
    """The images zero-padded at the right and bottom to a common size, stacked."""
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    out = np.zeros((len(images), h, w) + images[0].shape[2:], np.uint8)
    for k, image in enumerate(images):
        out[k, :image.shape[0], :image.shape[1]] = image
    return torch.from_numpy(out)


def _differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    d = np.abs(ours - theirs)
    dist = np.linalg.norm(ours - theirs, axis=-1)
    stats = {"faces": len(d), "max": float(d.max()), "mean": float(d.mean()),
             "differing": float((d > 0).mean()), "far": float((dist > 1.5).mean()),
             "faces_exact": float((d.reshape(len(d), -1).max(1) == 0).mean())}
    print(" ".join(f"{k}={v:.4g}" for k, v in stats.items()))
    return stats


def _assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    s = _differences(ours, theirs)
    assert s["mean"] < MAX_MEAN_PX
    assert s["differing"] < MAX_DIFFERING
    assert s["far"] < MAX_FAR
    assert s["max"] <= MAX_PX


# ---------------------------------------------------------------------------------------
# The file


def test_read_dat_gives_dlibs_model(model):
    assert model["initial_shape"].shape == (136,)
    assert model["split_idx1"].shape == model["split_thresh"].shape == (15, 500, 15)
    assert model["leaf_values"].shape == (15, 500, 16, 136)
    assert model["anchor_idx"].shape == (15, 500) and model["deltas"].shape == (15, 500, 2)
    assert 0 <= model["initial_shape"].min() and model["initial_shape"].max() < 1.2
    assert model["anchor_idx"].max() == 67 and model["split_idx1"].max() == 499


def test_converted_file_is_small_and_close(npz, dat, model):
    assert npz.stat().st_size < MAX_NPZ_BYTES
    loaded = shape68.load_npz(npz)
    assert loaded["source_sha256"] == shape68.file_sha256(dat)
    for key in ("initial_shape", "split_idx1", "split_idx2", "split_thresh", "anchor_idx", "deltas"):
        np.testing.assert_array_equal(loaded[key], model[key])
    err = np.abs(loaded["leaf_values"] - model["leaf_values"])
    # rounding each of 136 orthonormal coefficients by at most half a step
    assert err.max() <= math.sqrt(136) * shape68.LEAF_STEP / 2


# ---------------------------------------------------------------------------------------
# Against dlib


def test_gray_faces_match_dlib(predictor, dlib, dlib_predictor):
    images = _images("L")
    owners, rects = _faces(dlib, images)
    assert len(owners) >= 30
    ours = predictor.predict(_stack(images)[owners], rects).numpy()
    _assert_close(ours, _dlib_points(dlib, dlib_predictor, images, owners, rects))


def test_rgb_faces_of_different_sizes_match_dlib(predictor, dlib, dlib_predictor):
    """Colour photos of four sizes in one batch (zero-padded), intensity from RGB."""
    images = _images("RGB")
    owners, rects = _faces(dlib, images)
    assert len(owners) >= 45 and len({images[i].shape for i in owners}) >= 4
    gray = predictor.intensity(_stack(images))[owners]
    ours = predictor.predict(gray, torch.from_numpy(rects)).numpy()
    _assert_close(ours, _dlib_points(dlib, dlib_predictor, images, owners, rects))


def test_boxes_partly_outside_the_image(predictor, dlib, dlib_predictor):
    """Boxes hanging over each edge: dlib reads 0 for the pixels outside."""
    images = _images("L")[:4]
    owners, rects = [], []
    for i, image in enumerate(images):
        h, w = image.shape
        size = 150
        for left, top in [(-60, 40), (40, -60), (w - 90, 50), (60, h - 90), (-40, -40)]:
            owners.append(i)
            rects.append([left, top, left + size, top + size])
    rects = np.array(rects)
    ours = predictor.predict(_stack(images)[owners], rects).numpy()
    theirs = _dlib_points(dlib, dlib_predictor, images, owners, rects)
    assert (theirs < 0).any() and (theirs[..., 0] >= images[0].shape[1]).any()
    _assert_close(ours, theirs)


def test_exact_leaves_match_dlib_closer(model, dlib, dlib_predictor):
    """With the .dat's own leaf values only the order of the additions differs from dlib."""
    exact = shape68.ShapePredictor68.from_arrays(model)
    images = _images("L")
    owners, rects = _faces(dlib, images)
    ours = exact.predict(_stack(images)[owners], rects).numpy()
    s = _differences(ours, _dlib_points(dlib, dlib_predictor, images, owners, rects))
    assert s["mean"] < EXACT_LEAVES_MAX_MEAN_PX


def test_points_before_rounding(predictor, dlib, dlib_predictor):
    images = _images("L")
    owners, rects = _faces(dlib, images)
    gray = _stack(images)[owners]
    fine = predictor.predict(gray, rects, round_points=False).numpy()
    np.testing.assert_array_equal(np.floor(fine + 0.5), predictor.predict(gray, rects).numpy())
    theirs = _dlib_points(dlib, dlib_predictor, images, owners, rects)
    assert (np.abs(fine - theirs) <= 0.5 + 1e-4).mean() > 1 - MAX_DIFFERING


def test_intensity_is_dlibs(predictor, dlib, dlib_predictor):
    """(r + g + b) // 3 for either channel order, and dlib fits an RGB photo as it fits that
    grey image."""
    rgb = _images("RGB")[-1]
    nhwc = torch.from_numpy(rgb[None].copy())
    gray = predictor.intensity(nhwc)
    np.testing.assert_array_equal(gray[0].numpy(), rgb.astype(np.int32).sum(2) // 3)
    np.testing.assert_array_equal(predictor.intensity(nhwc.permute(0, 3, 1, 2)), gray)
    r = dlib.get_frontal_face_detector()(rgb, 0)[0]
    as_rgb = dlib_predictor(rgb, r).parts()
    as_gray = dlib_predictor(np.ascontiguousarray(gray[0].numpy()), r).parts()
    assert [(p.x, p.y) for p in as_rgb] == [(p.x, p.y) for p in as_gray]


def test_rejects_wrong_shapes(predictor):
    with pytest.raises(ValueError):
        predictor.predict(torch.zeros(2, 10, 10, 3, dtype=torch.uint8), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        predictor.predict(torch.zeros(2, 10, 10, dtype=torch.uint8), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        predictor.intensity(torch.zeros(2, 10, 10, dtype=torch.uint8))


def test_load_takes_the_file_named_by_the_environment(npz, predictor, monkeypatch):
    monkeypatch.setenv(shape68.NPZ_ENV, str(npz))
    assert shape68.default_path() == npz
    loaded = shape68.ShapePredictor68.load("cpu")
    gray = torch.from_numpy(_images("L")[0][None].copy())
    rect = np.array([[90, 60, 230, 200]])
    torch.testing.assert_close(loaded.predict(gray, rect), predictor.predict(gray, rect))


# ---------------------------------------------------------------------------------------
# A small predictor written here in dlib's format: the parser, the tool, and dlib reading it


def _int(v: int) -> bytes:
    magnitude = abs(int(v)).to_bytes(8, "little").rstrip(b"\0") or b"\0"
    return bytes([len(magnitude) | (0x80 if v < 0 else 0)]) + magnitude


def _float(x: float) -> bytes:
    mantissa, exponent = math.frexp(float(x))
    return _int(int(mantissa * 2 ** 24)) + _int(exponent - 24)


def _vector(values) -> bytes:
    return _int(-len(values)) + _int(-1) + b"".join(_float(v) for v in values)


def _small_model(seed: int = 0) -> dict[str, np.ndarray]:
    """4 parts, 3 cascades of 6 trees of depth 2, 12 feature pixels each."""
    rng = np.random.default_rng(seed)
    c, t, s, p, k = 3, 6, 3, 12, 8
    return {"initial_shape": rng.uniform(0.2, 0.8, k).astype(np.float32),
            "split_idx1": rng.integers(0, p, (c, t, s)), "split_idx2": rng.integers(0, p, (c, t, s)),
            "split_thresh": rng.uniform(-40, 40, (c, t, s)).astype(np.float32),
            "leaf_values": rng.normal(0, 0.02, (c, t, s + 1, k)).astype(np.float32),
            "anchor_idx": rng.integers(0, k // 2, (c, p)),
            "deltas": rng.normal(0, 0.1, (c, p, 2)).astype(np.float32)}


def _write_dat(m: dict[str, np.ndarray], path) -> None:
    c, t, s = m["split_thresh"].shape
    out = [_int(1), _vector(m["initial_shape"]), _int(c)]
    for ci in range(c):
        out.append(_int(t))
        for ti in range(t):
            out.append(_int(s))
            for si in range(s):
                out += [_int(m["split_idx1"][ci, ti, si]), _int(m["split_idx2"][ci, ti, si]),
                        _float(m["split_thresh"][ci, ti, si])]
            out.append(_int(s + 1))
            out += [_vector(leaf) for leaf in m["leaf_values"][ci, ti]]
    out.append(_int(c))
    for ci in range(c):
        out += [_int(len(m["anchor_idx"][ci]))] + [_int(a) for a in m["anchor_idx"][ci]]
    out.append(_int(c))
    for ci in range(c):
        out += [_int(len(m["deltas"][ci]))] + [_float(v) for v in m["deltas"][ci].ravel()]
    path.write_bytes(b"".join(out))


def test_small_predictor_in_dlibs_format(tmp_path, dlib, monkeypatch, capsys):
    written = _small_model()
    dat_file = tmp_path / "small.dat"
    _write_dat(written, dat_file)
    read = shape68.read_dat(dat_file)
    for key, value in written.items():
        np.testing.assert_array_equal(read[key], value)

    # the chunked scan, with chunks small enough to have many, and its fallback
    data = np.zeros(dat_file.stat().st_size + 16, np.uint8)
    data[:-16] = np.frombuffer(dat_file.read_bytes(), np.uint8)
    n = len(data) - 16
    expected = shape68._token_starts_one_by_one(data, n)
    monkeypatch.setattr(shape68, "_CHUNK", 64)
    monkeypatch.setattr(shape68, "_SYNC", 48)
    np.testing.assert_array_equal(shape68._token_starts(data, n), expected)
    monkeypatch.setattr(shape68, "_SYNC", 1)         # too short to fall into step: fallback
    np.testing.assert_array_equal(shape68._token_starts(data, n), expected)
    monkeypatch.undo()

    # dlib reads the file too, and fits a face as our predictor does
    image = _images("L")[0]
    rect = np.array([[90, 60, 230, 200]])
    theirs = [(p.x, p.y) for p in dlib.shape_predictor(str(dat_file))(image, dlib.rectangle(*rect[0])).parts()]
    ours = shape68.ShapePredictor68.from_arrays(read).predict(torch.from_numpy(image[None].copy()), rect)
    np.testing.assert_allclose(ours[0].numpy(), np.array(theirs, np.float32), atol=1)

    # the tool converts it
    from tools.convert_shape_predictor import main
    out = tmp_path / "small.npz"
    assert main(["--dat", str(dat_file), "--out", str(out)]) == 0
    assert "sha256" in capsys.readouterr().out
    small = shape68.ShapePredictor68(out)
    np.testing.assert_allclose(small.predict(torch.from_numpy(image[None].copy()), rect), ours, atol=1)
