"""pof.gpu.onnx_torch runs each of pof's ONNX graphs as ONNX Runtime does (here on the CPU).

Every model gets real face pixels from the Yale photos, in batches, and every output must match
ONNX Runtime's to about 1e-4 of its scale; the two recognizers' descriptors must point the same
way. A few tiny hand-built graphs cover the padding paths none of the six models takes, and the
refusal of an operator the interpreter does not know.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from pof.errors import PofError  # noqa: E402
from pof.gpu import onnx_torch  # noqa: E402

from .conftest import YALE  # noqa: E402

MODELS = YALE.parents[2] / "pof" / "models"
DLIB = MODELS / "dlib_resnet" / "dlib_face_recognition_resnet_model_v1.onnx"
FACE_BOX = (100, 45, 270, 215)          # (left, top, right, bottom): the face in a Yale photo
PHOTOS = ("subject01.normal", "subject02.happy", "subject03.glasses")
MTCNN_MEAN, MTCNN_SCALE = 127.5, 128.0
RTOL, ATOL_PER_SCALE = 1e-4, 1e-4
MIN_COSINE = 0.99999
MIN_COSINE_FP16 = 0.999
TINY_IR_VERSION = 8     # the hand-built graphs' IR: old enough for any onnxruntime >= 1.17


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(YALE / name).convert("RGB"), dtype=np.float32)


def _faces(size: int, n: int = len(PHOTOS)) -> np.ndarray:
    """n face crops (N, size, size, 3) float 0-255, NHWC."""
    crops = [Image.open(YALE / name).convert("RGB").crop(FACE_BOX).resize((size, size),
                                                                           Image.BILINEAR)
             for name in PHOTOS[:n]]
    return np.stack([np.asarray(c, dtype=np.float32) for c in crops])


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _mtcnn(x: np.ndarray) -> np.ndarray:
    return (_nchw(x) - MTCNN_MEAN) / MTCNN_SCALE


def _run_both(path, x: np.ndarray, **load_kw) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ONNX Runtime's output, the torch module's output) for every output of the graph."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})
    module = onnx_torch.load(path, **load_kw).eval()
    assert module.output_names == [o.name for o in session.get_outputs()]
    dtype = load_kw.get("dtype", torch.float32)
    with torch.no_grad():
        got = module(torch.from_numpy(x).to(dtype))
    assert isinstance(got, tuple) and len(got) == len(expected)
    return [(e, g.float().numpy()) for e, g in zip(expected, got)]


def _assert_match(pairs) -> None:
    for expected, got in pairs:
        assert got.shape == expected.shape
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL_PER_SCALE * scale)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_pnet_on_whole_photos_of_odd_size():
    """PNet over two whole 243 x 320 photos: odd sizes take MaxPool's ceil_mode path."""
    x = _mtcnn(np.stack([_photo(n) for n in PHOTOS[:2]]))
    pairs = _run_both(MODELS / "mtcnn" / "pnet.onnx", x)
    assert pairs[0][0].shape == (2, 4, 117, 155)
    _assert_match(pairs)


@pytest.mark.parametrize("net, size", [("rnet", 24), ("onet", 48)])
def test_rnet_and_onet_on_face_crops(net, size):
    _assert_match(_run_both(MODELS / "mtcnn" / f"{net}.onnx", _mtcnn(_faces(size))))


@pytest.mark.parametrize("path, size, nhwc", [
    (DLIB, 150, False),
    (MODELS / "mobileface" / "mobileface.onnx", 112, True),
    (MODELS / "mobilefacenet" / "mobilefacenet.onnx", 112, True),
], ids=["dlib_resnet", "mobileface", "mobilefacenet"])
def test_recognizers_give_the_same_descriptors(path, size, nhwc):
    """Raw 0-255 chips in (the graphs normalise them); descriptors equal, row by row."""
    faces = _faces(size)
    pairs = _run_both(path, faces if nhwc else _nchw(faces))
    _assert_match(pairs)
    (expected, got), = pairs
    assert _cosines(expected, got).min() > MIN_COSINE


def test_faceapi_attributes():
    """Age, gender and expression, from raw 0-255 NCHW faces (SAME_UPPER pads, both pools)."""
    _assert_match(_run_both(MODELS / "faceapi" / "faceapi_attributes.onnx", _nchw(_faces(112))))


def test_float16_dlib_resnet_stays_close():
    """Float16 weights (as on a GPU) keep the descriptors' direction."""
    x = _nchw(_faces(150, n=2))
    try:
        (expected, got), = _run_both(DLIB, x, dtype=torch.float16)
    except RuntimeError as e:                     # an old torch without half convs on the CPU
        pytest.skip(f"this torch build cannot run float16 on the CPU: {e}")
    assert np.isfinite(got).all()
    assert _cosines(expected, got).min() > MIN_COSINE_FP16


def test_initializers_are_buffers_that_follow_the_module():
    net = onnx_torch.load(MODELS / "mtcnn" / "rnet.onnx").double()
    assert all(b.dtype == torch.float64 for b in net.buffers() if b.is_floating_point())
    x = _mtcnn(_faces(24))
    session = ort.InferenceSession(str(MODELS / "mtcnn" / "rnet.onnx"),
                                   providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = net(torch.from_numpy(x).double())
    for expected, g in zip(session.run(None, {"input": x}), got):
        assert g.dtype == torch.float64
        np.testing.assert_allclose(g.numpy(), expected, rtol=RTOL, atol=1e-5)


def _save_graph(tmp_path, nodes, x_shape, y_shape, initializers=(), opset=17):
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], list(initializers))
    path = tmp_path / "tiny.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=TINY_IR_VERSION)
    onnx.save(model, path)
    return path


def test_an_unknown_operator_is_refused_by_name(tmp_path):
    path = _save_graph(tmp_path, [helper.make_node("Sigmoid", ["x"], ["y"])], [1, 4], [1, 4])
    with pytest.raises(PofError, match="Sigmoid"):
        onnx_torch.load(path)


def test_an_unreadable_file_is_a_pof_error(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"not an ONNX model \x01\xff")
    with pytest.raises(PofError, match="cannot read"):
        onnx_torch.load(path)


@pytest.mark.parametrize("op, attrs", [
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 1],
                         count_include_pad=0)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 2, 1],
                         count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER")),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1])),
    ("Conv", dict(strides=[2, 2], auto_pad="SAME_LOWER")),
])
def test_padding_paths_the_models_do_not_take(tmp_path, op, attrs):
    """Asymmetric pads, SAME_LOWER and pads excluded from averages, checked on a tiny graph
    (with a Constant node feeding an Add, and a Conv followed by a foldable Mul)."""
    rng = np.random.default_rng(0)
    offset = helper.make_tensor("offset", TensorProto.FLOAT, [1], [0.5])
    nodes = [helper.make_node("Constant", [], ["c"], value=offset),
             helper.make_node("Add", ["x", "c"], ["xc"])]
    inits = []
    if op == "Conv":
        weight = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
        scale = rng.normal(size=(1, 4, 1, 1)).astype(np.float32)
        inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(scale, "s")]
        nodes += [helper.make_node("Conv", ["xc", "w"], ["conv"], **attrs),
                  helper.make_node("Mul", ["conv", "s"], ["y"])]
    else:
        nodes.append(helper.make_node(op, ["xc"], ["y"], **attrs))
    path = _save_graph(tmp_path, nodes, [2, 3, 11, 10], None, inits)
    x = rng.normal(size=(2, 3, 11, 10)).astype(np.float32)
    _assert_match(_run_both(path, x))
