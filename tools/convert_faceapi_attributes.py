"""Convert face-api's age-gender and expression networks (TF.js weights) to one ONNX file, once.

Source: the npm package ``@vladmandic/face-api`` 1.7.15 (MIT licence; the networks are
Vincent Mühler's face-api.js models). Its ``model/`` folder holds each network as a weights
manifest (JSON: names, shapes, uint8 quantisation) and one binary shard. This script reads
them from the npm tarball (``npm pack @vladmandic/face-api@1.7.15``, or ``--tarball FILE``),
dequantises the weights (value = q * scale + min), rebuilds both networks with
``onnx.helper`` and writes ``pof/runtime/weights/faceapi/faceapi_attributes.onnx``::

    python tools/convert_faceapi_attributes.py [--tarball vladmandic-face-api-1.7.15.tgz]

Then check it against the original runtime, TF.js in node running face-api's own code on the
same inputs (the 34 faces of the demo photos and Yale's happy and surprised photos)::

    python tools/convert_faceapi_attributes.py --dump-inputs inputs.json
    node tools/check_faceapi.mjs inputs.json tfjs.json      # see that file for its setup
    python tools/convert_faceapi_attributes.py --check-against tfjs.json

The graph: input ``face`` float32 (N, 3, 112, 112), raw RGB 0-255, channels first (face-api's
input: the 68-landmark box padded by 20%, padded to a square with black, resized to 112);
outputs ``age`` (N, 1) in years, ``gender`` (N, 2) softmax (male, female), ``expression``
(N, 7) softmax over neutral, happy, sad, angry, fearful, disgusted, surprised.

The networks, as in face-api's sources (``src/xception/TinyXception.ts``,
``src/ageGenderNet/AgeGenderNet.ts``, ``src/faceFeatureExtractor/denseBlock.ts``):
both subtract the mean RGB (122.782, 117.001, 104.298) and divide by 255.
Age-gender: TinyXception(2): relu(conv3x3/2) -> reduction block (input not activated) ->
reduction block -> 2 main blocks -> reduction block -> relu(separable conv) -> avg pool 7 ->
two fully connected heads. Expression: 4 dense blocks (first conv plain, the rest separable,
each scaling down by 2) -> avg pool 7 -> fully connected -> softmax. TF's 'same' padding is
ONNX's SAME_UPPER.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pof" / "models" / "faceapi" / "faceapi_attributes.onnx"
PACKAGE = "@vladmandic/face-api@1.7.15"
OPSET = 17
MEAN_RGB = (122.782, 117.001, 104.298)
YALE = Path("/work/shared/testdata/yalefaces")
CHECK_IMAGES = [*sorted((ROOT / "pof" / "data" / "demo").glob("*/*.jpg")),
                *(YALE / f"subject{i:02d}.{c}" for i in range(1, 16) for c in ("happy", "surprised"))]


def read_weights(tar: tarfile.TarFile, model: str) -> dict[str, np.ndarray]:
    """Dequantised float32 weights of one face-api model, by name, in TF layouts."""
    manifest = json.load(tar.extractfile(f"package/model/{model}-weights_manifest.json"))
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join(tar.extractfile(f"package/model/{p}").read() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            q = w.get("quantization")
            if q:
                dt = np.dtype(q["dtype"])
                raw = np.frombuffer(data, dt, n, pos)
                pos += n * dt.itemsize
                vals = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                vals = np.frombuffer(data, np.float32, n, pos)
                pos += n * 4
            out[w["name"]] = vals.reshape(w["shape"]).astype(np.float32)
        if pos != len(data):
            raise ValueError(f"{model}: read {pos} of {len(data)} bytes")
    return out


class Graph:
    """A tiny builder of ONNX nodes from TF-layout weights."""

    def __init__(self, w: dict[str, np.ndarray], prefix: str) -> None:
        self.w, self.prefix = w, prefix
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def _name(self, hint: str) -> str:
        self.n += 1
        return f"{self.prefix}{hint}_{self.n}"

    def const(self, arr: np.ndarray, hint: str) -> str:
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        out = self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(self, x: str, key: str, stride: int) -> str:
        """tf.conv2d(x, key/filters, stride, 'same') + key/bias."""
        f = self.w[f"{key}/filters"].transpose(3, 2, 0, 1)
        return self.op("Conv", [x, self.const(f, "w"), self.const(self.w[f"{key}/bias"], "b")],
                       strides=[stride, stride], auto_pad="SAME_UPPER")

    def sep(self, x: str, key: str, stride: int) -> str:
        """tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias."""
        dw = self.w[f"{key}/depthwise_filter"]                  # (3, 3, C, 1)
        c = dw.shape[2]
        d = self.op("Conv", [x, self.const(dw.transpose(2, 3, 0, 1), "dw")], group=c,
                    strides=[stride, stride], auto_pad="SAME_UPPER")
        pw = self.w[f"{key}/pointwise_filter"].transpose(3, 2, 0, 1)
        return self.op("Conv", [d, self.const(pw, "pw"), self.const(self.w[f"{key}/bias"], "b")])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def fc(self, x: str, key: str) -> str:
        return self.add(self.op("MatMul", [x, self.const(self.w[f"{key}/weights"], "fcw")]),
                        self.const(self.w[f"{key}/bias"], "fcb"))

    def pooled(self, x: str) -> str:
        """tf.avgPool(x, 7, 2, 'valid') on a 7 x 7 map, flattened to (N, C)."""
        return self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)


def normalized(g: Graph, x: str) -> str:
    mean = np.array(MEAN_RGB, np.float32).reshape(1, 3, 1, 1)
    return g.op("Div", [g.op("Sub", [x, g.const(mean, "mean")]), g.const(np.array(255.0, np.float32), "s")])


def age_gender(g: Graph, x: str) -> tuple[str, str]:
    def reduction(x: str, key: str, activate: bool = True) -> str:
        out = g.relu(x) if activate else x
        out = g.sep(out, f"{key}/separable_conv0", 1)
        out = g.sep(g.relu(out), f"{key}/separable_conv1", 1)
        out = g.op("MaxPool", [out], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
        return g.add(out, g.conv(x, f"{key}/expansion_conv", 2))

    def main(x: str, key: str) -> str:
        out = g.sep(g.relu(x), f"{key}/separable_conv0", 1)
        out = g.sep(g.relu(out), f"{key}/separable_conv1", 1)
        out = g.sep(g.relu(out), f"{key}/separable_conv2", 1)
        return g.add(out, x)

    out = g.relu(g.conv(normalized(g, x), "entry_flow/conv_in", 2))
    out = reduction(out, "entry_flow/reduction_block_0", activate=False)
    out = reduction(out, "entry_flow/reduction_block_1")
    for i in range(2):
        out = main(out, f"middle_flow/main_block_{i}")
    out = reduction(out, "exit_flow/reduction_block")
    out = g.relu(g.sep(out, "exit_flow/separable_conv", 1))
    pooled = g.pooled(out)
    age = g.fc(pooled, "fc/age")                              # (N, 1)
    gender = g.op("Softmax", [g.fc(pooled, "fc/gender")], axis=1)
    return age, gender


def expression(g: Graph, x: str) -> str:
    def dense4(x: str, key: str, first: bool) -> str:
        out1 = g.relu(g.conv(x, f"{key}/conv0", 2) if first else g.sep(x, f"{key}/conv0", 2))
        out2 = g.sep(out1, f"{key}/conv1", 1)
        in3 = g.relu(g.add(out1, out2))
        out3 = g.sep(in3, f"{key}/conv2", 1)
        in4 = g.relu(g.add(out1, g.add(out2, out3)))
        out4 = g.sep(in4, f"{key}/conv3", 1)
        return g.relu(g.add(out1, g.add(out2, g.add(out3, out4))))

    out = normalized(g, x)
    for i in range(4):
        out = dense4(out, f"dense{i}", first=i == 0)
    return g.op("Softmax", [g.fc(g.pooled(out), "fc")], axis=1)


def build(tar: tarfile.TarFile) -> onnx.ModelProto:
    ga = Graph(read_weights(tar, "age_gender_model"), "ag_")
    age, gender = age_gender(ga, "face")
    ge = Graph(read_weights(tar, "face_expression_model"), "ex_")
    expr = expression(ge, "face")
    nodes = ga.nodes + ge.nodes
    nodes += [helper.make_node("Identity", [age], ["age"]), helper.make_node("Identity", [gender], ["gender"]),
              helper.make_node("Identity", [expr], ["expression"])]
    graph = helper.make_graph(
        nodes, "faceapi_attributes",
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N", 1]),
         helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("expression", TensorProto.FLOAT, ["N", 7])],
        ga.inits + ge.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pof tools/convert_faceapi_attributes.py")
    model.ir_version = 8
    model.doc_string = (f"face-api age-gender and expression networks from npm {PACKAGE} "
                        "(MIT; face-api.js by Vincent Muehler), converted by pof")
    onnx.checker.check_model(model)
    return model


def _tarball(path: str | None) -> Path:
    if path:
        return Path(path)
    tmp = Path(tempfile.mkdtemp())
    subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True, capture_output=True)
    return next(tmp.glob("*.tgz"))


def check(expected_json: Path) -> None:
    """Compare with outputs of TF.js (tools/check_faceapi.mjs) on the same 112 x 112 inputs."""
    import onnxruntime as ort
    ref = json.loads(expected_json.read_text())
    x = np.array(ref["inputs"], np.float32).transpose(0, 3, 1, 2)     # NHWC -> NCHW
    sess = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
    age, gender, expr = sess.run(None, {"face": x})
    for name, ours, theirs in (("age", age, ref["age"]), ("gender", gender, ref["gender"]),
                               ("expression", expr, ref["expression"])):
        diff = float(np.abs(ours - np.array(theirs, np.float32)).max())
        print(f"{name}: largest absolute difference to TF.js over {len(x)} faces: {diff:.2e}")
        if diff > 1e-3:
            sys.exit(f"{name} differs from TF.js")


def dump_inputs(path: Path) -> None:
    """Cut the network input of every face pof finds in CHECK_IMAGES and write them as JSON."""
    sys.path.insert(0, str(ROOT))
    from pof import Pipeline
    from pof.stages.attributes import FaceView
    from pof.stages.attributes.faceapi import face_input
    pipe = Pipeline(attributes="off")
    inputs = []
    for img in CHECK_IMAGES:
        for f in pipe.analyze_file(img):
            v = FaceView.of(f)
            inputs.append(face_input(v.crop, v.points).tolist())
    path.write_text(json.dumps({"inputs": inputs}))
    print(f"wrote {len(inputs)} inputs to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tarball", help="the npm tarball (default: npm pack " + PACKAGE + ")")
    ap.add_argument("--check-against", type=Path, help="JSON written by tools/check_faceapi.mjs")
    ap.add_argument("--dump-inputs", type=Path, help="write the network inputs of CHECK_IMAGES")
    args = ap.parse_args()
    if args.dump_inputs:
        dump_inputs(args.dump_inputs)
        return
    if args.check_against:
        check(args.check_against)
        return
    with tarfile.open(_tarball(args.tarball)) as tar:
        model = build(tar)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    onnx.save(model, buf)
    OUT.write_bytes(buf.getvalue())
    print(f"wrote {OUT.relative_to(ROOT)} ({len(buf.getvalue()) / 1e6:.1f} MB), "
          f"sha256 {hashlib.sha256(buf.getvalue()).hexdigest()}")


if __name__ == "__main__":
    main()
