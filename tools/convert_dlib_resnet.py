"""Convert dlib's face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX, once.

The ``.dat`` file (from the ``face_recognition_models`` package) is read directly, in dlib's own
serialization format, by the small pure-numpy parser below; dlib itself is needed only for the
check at the end. The ONNX graph is built by hand with ``onnx.helper`` and written to
``pof/runtime/weights/dlib_resnet/dlib_face_recognition_resnet_model_v1.onnx``; its SHA-256 is printed.
Run it in the project venv::

    python tools/convert_dlib_resnet.py            # convert, then check against dlib
    python tools/convert_dlib_resnet.py --no-check # convert only

The check computes descriptors of every face chip found in ``/work/shared/testdata/yalefaces``
and ``pof/data/demo/*/*.jpg`` (``--images`` to change) with dlib and with ONNX Runtime, and fails
unless each pair has cosine similarity above 0.9999 (it prints the minimum and the largest
absolute difference).

The model: input ``chip`` float32 ``(N, 3, 150, 150)``, raw RGB 0-255 (dlib's 150 x 150 face
chip, channels first); output ``descriptor`` float32 ``(N, 128)``, exactly dlib's (not unit
length). The mean subtraction and the division by 256 of dlib's ``input_rgb_image_sized`` are
inside the graph.

dlib's network (``examples/dnn_face_recognition_ex.cpp``), written innermost last::

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>
    block<N,stride>  = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,stride,stride, X>>>>>
    ares<N>          = relu<add_prev1<block<N,1, tag1<X>>>>
    ares_down<N>     = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,2, tag1<X>>>>>>>
    alevel0 = ares_down<256>;  alevel1 = ares<256> x2 over ares_down<256>;
    alevel2 = ares<128> x2 over ares_down<128>;  alevel3 = ares<64> x3 over ares_down<64>;
    alevel4 = ares<32> x3

Conventions reproduced from dlib: a con/pool with stride 1 pads kernel/2 on each side, one
with stride > 1 does not pad; output size is ``1 + (in + 2 pad - k) // stride``. ``add_prev``
adds tensors of different shapes by zero-padding both to the larger size at the end of each
axis (more channels on the skip path of ``ares_down``; at 8 x 8 the strided conv gives 3 x 3
while the 2 x 2 average pool gives 4 x 4, and at 4 x 4 it is 1 x 1 against 2 x 2): the graph
does the same with Pad nodes.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pof" / "models" / "dlib_resnet" / "dlib_face_recognition_resnet_model_v1.onnx"
OPSET = 17
CHIP = 150
MIN_COSINE = 0.9999
IMAGES = [Path("/work/shared/testdata/yalefaces"),
          *sorted((ROOT / "pof" / "data" / "demo").glob("*/*.jpg"))]

# --------------------------------------------------------------------------------------------
# dlib's serialization format (dlib/serialize.h, dlib/float_details.h, dlib/cuda/tensor.h)


class Reader:
    """Reads dlib-serialized values from bytes, in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"unexpected end of file at byte {self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self) -> int:
        """Integer: a control byte (bit 7 = negative, low 4 bits = byte count), then that many
        bytes of the magnitude, little endian."""
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8:
            raise ValueError(f"bad integer control byte {ctrl:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        """Float: mantissa then exponent, both as integers; value = mantissa * 2**exponent
        (exponents 32000-32002 stand for inf, -inf, nan)."""
        if self.data[self.pos] & 0x70:
            raise ValueError(f"old ASCII float format at byte {self.pos}: not supported")
        mantissa, exponent = self.int(), self.int()
        special = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
        if exponent in special:
            return float(special[exponent])
        return float(np.float32(np.ldexp(float(mantissa), exponent)))

    def string(self) -> str:
        return self._take(self.int()).decode("latin-1")

    def bool(self) -> bool:
        ch = self._take(1)
        if ch not in (b"0", b"1"):
            raise ValueError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        """resizable_tensor: version 2, num_samples, k, nr, nc, then raw little-endian float32."""
        self.expect_version("tensor", self.int(), (2,))
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """alias_tensor: version 1 and a shape (num_samples, k, nr, nc); no data."""
        self.expect_version("alias_tensor", self.int(), (1,))
        return tuple(self.int() for _ in range(4))

    def expect_version(self, what: str, got, allowed) -> None:
        if got not in allowed:
            raise ValueError(f"{what}: unexpected version {got!r} before byte {self.pos}")


# --------------------------------------------------------------------------------------------
# The architecture, outermost layer first (dlib's layer<0> is the fc).


@dataclass
class Layer:
    kind: str                      # fc, avg_pool, max_pool, con, affine, relu, add_prev, tag, skip
    args: tuple = ()    # con: (filters, k, stride); pools: (k, stride); tag, skip, add_prev: (id,)
    params: dict = field(default_factory=dict)   # filled by the parser


def _block(n: int, stride: int) -> list[Layer]:
    return [Layer("affine"), Layer("con", (n, 3, 1)), Layer("relu"),
            Layer("affine"), Layer("con", (n, 3, stride))]


def _ares(n: int) -> list[Layer]:
    return [Layer("relu"), Layer("add_prev", (1,)), *_block(n, 1), Layer("tag", (1,))]


def _ares_down(n: int) -> list[Layer]:
    return [Layer("relu"), Layer("add_prev", (2,)), Layer("avg_pool", (2, 2)), Layer("skip", (1,)),
            Layer("tag", (2,)), *_block(n, 2), Layer("tag", (1,))]


def architecture() -> list[Layer]:
    """dlib's anet_type as a flat list, outermost first."""
    levels = [*_ares_down(256),                                         # alevel0
              *_ares(256), *_ares(256), *_ares_down(256),               # alevel1
              *_ares(128), *_ares(128), *_ares_down(128),               # alevel2
              *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),      # alevel3
              *_ares(32), *_ares(32), *_ares(32)]                       # alevel4
    return [Layer("fc", (128,)), Layer("avg_pool", (0, 0)), *levels,
            Layer("max_pool", (3, 2)), Layer("relu"), Layer("affine"), Layer("con", (32, 7, 2))]


# --------------------------------------------------------------------------------------------
# Parsing. add_layer<L, SUBNET> writes: version, SUBNET, L's details, three bools and some
# (usually empty) tensors; so the file holds the versions outermost first, then the input
# layer, then the details innermost first. tag and skip layers write only a version.


def _pool(r: Reader, layer: Layer, name: str) -> None:
    r.expect_version(name, r.string(), (name + "2",))
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    k, s = layer.args if layer.args != (0, 0) else (0, 1)     # avg_pool_everything: <0,0,1,1>
    if (nr, nc, sy, sx) != (k, k, s, s) or (py, px) != ((k // 2, k // 2) if s == 1 else (0, 0)):
        raise ValueError(f"{name}: found {nr}x{nc} stride {sy},{sx} padding {py},{px}; "
                         f"expected {k}x{k} stride {s}")


def _con(r: Reader, layer: Layer) -> None:
    version = r.string()
    r.expect_version("con_", version, ("con_4", "con_5", "con_6"))
    params = r.tensor()
    num_filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
    filters, biases = r.alias_tensor(), r.alias_tensor()
    [r.float() for _ in range(4)]                           # learning-rate / decay multipliers
    use_bias = r.bool() if version in ("con_5", "con_6") else True
    use_relu = r.bool() if version == "con_6" else False
    n, k, s = layer.args
    pad = k // 2 if s == 1 else 0
    if (num_filters, nr, nc, sy, sx, py, px) != (n, k, k, s, s, pad, pad) or use_relu:
        raise ValueError(f"con: found {num_filters} filters {nr}x{nc} stride {sy} padding {py}; "
                         f"expected {n} filters {k}x{k} stride {s} padding {pad}")
    flat = params.ravel()
    w_size = int(np.prod(filters))
    layer.params["weight"] = flat[:w_size].reshape(filters)            # (out, in, kh, kw)
    layer.params["pad"] = pad
    if use_bias:
        layer.params["bias"] = flat[w_size:w_size + int(np.prod(biases))].copy()


def _affine(r: Reader, layer: Layer) -> None:
    version = r.string()
    r.expect_version("affine_", version, ("affine_", "affine_2"))
    params = r.tensor().ravel()
    gamma, beta = r.alias_tensor(), r.alias_tensor()
    mode = r.int()
    disabled = r.bool() if version == "affine_2" else False
    if mode != 0 or disabled:
        raise ValueError(f"affine: mode {mode} disabled {disabled}; expected conv mode (0)")
    g = int(np.prod(gamma))
    layer.params["gamma"] = params[:g].copy()
    layer.params["beta"] = params[g:g + int(np.prod(beta))].copy()


def _fc(r: Reader, layer: Layer) -> None:
    version = r.string()
    r.expect_version("fc_", version, ("fc_2", "fc_3"))
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().ravel()
    _weights, _biases = r.alias_tensor(), r.alias_tensor()
    bias_mode = r.int()
    [r.float() for _ in range(4)]
    if version == "fc_3":
        r.bool()
    if bias_mode != 1 or num_outputs != layer.args[0]:
        raise ValueError(f"fc: {num_outputs} outputs, bias mode {bias_mode}; expected 128, no bias")
    layer.params["weight"] = params[:num_inputs * num_outputs].reshape(num_inputs, num_outputs)


def _details(r: Reader, layer: Layer) -> None:
    if layer.kind == "con":
        _con(r, layer)
    elif layer.kind == "affine":
        _affine(r, layer)
    elif layer.kind == "fc":
        _fc(r, layer)
    elif layer.kind in ("max_pool", "avg_pool"):
        _pool(r, layer, layer.kind + "_")
    elif layer.kind == "relu":
        version = r.string()
        r.expect_version("relu_", version, ("relu_", "relu_2"))
        if version == "relu_2" and r.bool():
            raise ValueError("relu: disabled layer found")
    elif layer.kind == "add_prev":
        r.expect_version("add_prev_", r.string(), ("add_prev_",))


def _input(r: Reader) -> np.ndarray:
    r.expect_version("input", r.string(), ("input_rgb_image_sized",))
    mean = np.array([r.float(), r.float(), r.float()], dtype=np.float32)   # R, G, B
    nr, nc = r.int(), r.int()
    if (nr, nc) != (CHIP, CHIP):
        raise ValueError(f"input: {nr}x{nc} chips; expected {CHIP}x{CHIP}")
    return mean


def parse(path: Path) -> tuple[list[Layer], np.ndarray]:
    """(layers outermost first with their parameters, the input's RGB mean)."""
    r = Reader(path.read_bytes())
    r.expect_version("add_loss_layer", r.int(), (1,))
    loss = r.string()
    r.expect_version("loss", loss, ("loss_metric_", "loss_metric_2"))
    if loss == "loss_metric_2":
        r.float(), r.float()                                  # margin, distance threshold
    layers = architecture()
    versions = []
    for layer in layers:                                      # outermost first
        v = r.int()
        allowed = (1,) if layer.kind in ("tag", "skip") else (1, 2, 3)
        r.expect_version(f"{layer.kind} layer", v, allowed)
        versions.append(v)
    mean = _input(r)
    for i in reversed(range(len(layers))):                     # innermost first
        layer = layers[i]
        if layer.kind in ("tag", "skip"):
            continue
        _details(r, layer)
        r.bool(), r.bool(), r.bool()     # setup called, gradient stale, output disabled
        r.tensor(), r.tensor()           # x_grad, cached_output
        if i == len(layers) - 1:         # the add_layer right over the input layer
            r.tensor()                   # grad_final
            if versions[i] >= 3:
                r.int()                  # sample expansion factor
        elif versions[i] == 2:
            r.tensor()                   # params_grad
    if r.pos != len(r.data):
        raise ValueError(f"{len(r.data) - r.pos} bytes left over after the network")
    return layers, mean


# --------------------------------------------------------------------------------------------
# The ONNX graph, built innermost layer first.


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _pad_to(g: GraphBuilder, x: str, shape: tuple, target: tuple) -> str:
    """Zero-pad (C, H, W) at the end of each axis up to ``target``, as dlib's tt::add does."""
    if shape == target:
        return x
    ends = [0] + [t - s for s, t in zip(shape, target)]
    pads = g.const("pads", np.array([0, 0, 0, 0] + ends, dtype=np.int64))
    return g.node("Pad", [x, pads], mode="constant")


def build(layers: list[Layer], mean: np.ndarray) -> onnx.ModelProto:
    g = GraphBuilder()
    shift = g.const("mean", mean.reshape(1, 3, 1, 1))
    scale = g.const("scale", np.full((1, 1, 1, 1), 1 / 256, dtype=np.float32))
    x = g.node("Mul", [g.node("Sub", ["chip", shift]), scale])
    shape = (3, CHIP, CHIP)                                    # (C, H, W) of x
    tags: dict[int, tuple[str, tuple]] = {}
    for layer in reversed(layers):
        kind, p = layer.kind, layer.params
        if kind == "con":
            n, k, s = layer.args
            pad = p["pad"]
            inputs = [x, g.const("w", p["weight"])]
            inputs += [g.const("b", p["bias"])] if "bias" in p else []
            x = g.node("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4)
            side = 1 + (shape[1] + 2 * pad - k) // s
            shape = (n, side, side)
        elif kind == "affine":
            c = shape[0]
            x = g.node("Mul", [x, g.const("gamma", p["gamma"].reshape(1, c, 1, 1))])
            x = g.node("Add", [x, g.const("beta", p["beta"].reshape(1, c, 1, 1))])
        elif kind == "relu":
            x = g.node("Relu", [x])
        elif kind in ("max_pool", "avg_pool") and layer.args != (0, 0):
            k, s = layer.args
            op = "MaxPool" if kind == "max_pool" else "AveragePool"
            x = g.node(op, [x], kernel_shape=[k, k], strides=[s, s])
            side = 1 + (shape[1] - k) // s
            shape = (shape[0], side, side)
        elif kind == "avg_pool":                              # avg_pool_everything
            x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
            shape = (shape[0],)
        elif kind == "tag":
            tags[layer.args[0]] = (x, shape)
        elif kind == "skip":
            x, shape = tags[layer.args[0]]
        elif kind == "add_prev":
            other, oshape = tags[layer.args[0]]
            target = tuple(max(a, b) for a, b in zip(shape, oshape))
            x = g.node("Add", [_pad_to(g, x, shape, target), _pad_to(g, other, oshape, target)])
            shape = target
        elif kind == "fc":
            x = g.node("MatMul", [x, g.const("fc", p["weight"])], out="descriptor")
            shape = (layer.args[0],)
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chip", TensorProto.FLOAT, ["N", 3, CHIP, CHIP])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", shape[0]])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pof tools/convert_dlib_resnet.py")
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------------
# The check against dlib on real face chips.


def real_chips(paths: list[Path]) -> np.ndarray:
    """Every face chip (N, 150, 150, 3) uint8 RGB that the pof pipeline finds in ``paths``
    (image files, or folders: every file directly inside)."""
    from pof.stages.embed.dlib_resnet import chip
    from pof.errors import ImageError
    from pof.stages.load import load_image
    from pof.pipeline import Pipeline
    p = Pipeline()
    files = [f for path in paths for f in (sorted(path.iterdir()) if path.is_dir() else [path])]
    chips = []
    for f in files:
        try:
            pixels = load_image(f).pixels
        except ImageError as e:
            print(f"skip: {e}", file=sys.stderr)
            continue
        chips += [chip(pixels, face) for face in p.analyze(pixels, with_crops=False)]
    return np.stack(chips)


def check(model_path: Path, dat_path: Path, chips: np.ndarray) -> tuple[float, float]:
    """(min cosine, max abs difference) of ONNX Runtime vs dlib descriptors over ``chips``."""
    import dlib
    import onnxruntime as ort
    net = dlib.face_recognition_model_v1(str(dat_path))
    ref = np.array([net.compute_face_descriptor(c) for c in chips], dtype=np.float32)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    nchw = chips.transpose(0, 3, 1, 2).astype(np.float32)
    got = np.concatenate([sess.run(None, {"chip": nchw[i:i + 32]})[0]
                          for i in range(0, len(chips), 32)])
    cos = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return float(cos.min()), float(np.abs(ref - got).max())


def main(argv: list[str] | None = None) -> int:
    from pof.runtime.weights import dlib_model
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dat", type=Path, default=None,
                    help="the .dat file (default: the one in face_recognition_models)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--no-check", action="store_true", help="skip the comparison with dlib")
    ap.add_argument("--images", type=Path, nargs="*", default=IMAGES,
                    help="image files or folders for the check")
    args = ap.parse_args(argv)
    dat = args.dat or dlib_model("resnet")
    layers, mean = parse(dat)
    model = build(layers, mean)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    args.out.write_bytes(data)
    n_conv = sum(layer.kind == "con" for layer in layers)
    print(f"{args.out}: {len(layers)} layers ({n_conv} conv), input mean {mean.tolist()}")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")
    if args.no_check:
        return 0
    chips = real_chips(args.images)
    cos, diff = check(args.out, dat, chips)
    ok = cos > MIN_COSINE
    print(f"check on {len(chips)} real chips: min cosine {cos:.8f}, max abs diff {diff:.3g}: "
          f"{'OK' if ok else 'FAILED'}")
    return 0 if ok and len(chips) >= 100 else 1


if __name__ == "__main__":
    sys.exit(main())
