"""Convert facenet-pytorch's MTCNN weights (PNet, RNet, ONet) to ONNX, once.

The weights are the ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` state dicts shipped inside
the ``facenet-pytorch`` 2.6.0 wheel. This script builds each ONNX graph by hand with
``onnx.helper`` from the state dict (no tracing, so the graph is small and exact), then checks
that ONNX Runtime's outputs equal those of a torch re-implementation of facenet-pytorch's
modules, to within 1e-5, on random input. It writes ``pof/runtime/weights/mtcnn/{pnet,rnet,onet}.onnx``.

Torch is needed here only; run it in a throw-away venv so the project venv stays torch-free::

    python3 -m venv /tmp/convenv
    /tmp/convenv/bin/pip install torch==2.13.0 onnx onnxruntime numpy
    /tmp/convenv/bin/pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fnp
    /tmp/convenv/bin/python tools/convert_mtcnn.py \\
        --wheel /tmp/fnp/facenet_pytorch-2.6.0-py3-none-any.whl

(``--wheel`` may be left out if facenet-pytorch is installed in that venv, e.g. with
``pip install --no-deps`` of the wheel: its metadata pins an old torch.)

The models take float32 NCHW input, RGB, already normalised as ``(x - 127.5) * 0.0078125``,
with images in their natural orientation (facenet-pytorch does not transpose H and W; the
transposition of the original Caffe weights lives in RNet's and ONet's flatten, reproduced
here as a Transpose(0, 3, 2, 1) before the first dense layer). Outputs, as in facenet-pytorch:

* ``pnet.onnx``: input ``(N, 3, H, W)`` (all dynamic) -> ``reg (N, 4, h, w)``,
  ``prob (N, 2, h, w)`` (softmax over axis 1; channel 1 is "face").
* ``rnet.onnx``: input ``(N, 3, 24, 24)`` -> ``reg (N, 4)``, ``prob (N, 2)``.
* ``onet.onnx``: input ``(N, 3, 48, 48)`` -> ``reg (N, 4)``, ``landmarks (N, 10)``
  (five x then five y, relative to the box), ``prob (N, 2)``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OUT_DIR = Path(__file__).resolve().parent.parent / "pof" / "models" / "mtcnn"
OPSET = 17
WHEEL_DATA = "facenet_pytorch/data/{}.pt"

# Layer lists in facenet-pytorch's order: (kind, state-dict name or pool (kernel, stride)).
# "cprelu" is a PReLU after a conv (slope broadcast over H, W), "prelu" one after a dense layer.
PNET = [
    ("conv", "conv1"), ("cprelu", "prelu1"), ("pool", (2, 2)),
    ("conv", "conv2"), ("cprelu", "prelu2"),
    ("conv", "conv3"), ("cprelu", "prelu3"),
]
RNET = [
    ("conv", "conv1"), ("cprelu", "prelu1"), ("pool", (3, 2)),
    ("conv", "conv2"), ("cprelu", "prelu2"), ("pool", (3, 2)),
    ("conv", "conv3"), ("cprelu", "prelu3"),
    ("flatten", None), ("dense", "dense4"), ("prelu", "prelu4"),
]
ONET = [
    ("conv", "conv1"), ("cprelu", "prelu1"), ("pool", (3, 2)),
    ("conv", "conv2"), ("cprelu", "prelu2"), ("pool", (3, 2)),
    ("conv", "conv3"), ("cprelu", "prelu3"), ("pool", (2, 2)),
    ("conv", "conv4"), ("cprelu", "prelu4"),
    ("flatten", None), ("dense", "dense5"), ("prelu", "prelu5"),
]
# net -> (trunk, heads as (output name, layer kind, state-dict name, softmax?), input shape)
NETS = {
    "pnet": (PNET, [("reg", "conv", "conv4_2", False), ("prob", "conv", "conv4_1", True)],
             ["N", 3, "H", "W"]),
    "rnet": (RNET, [("reg", "dense", "dense5_2", False), ("prob", "dense", "dense5_1", True)],
             ["N", 3, 24, 24]),
    "onet": (ONET, [("reg", "dense", "dense6_2", False), ("landmarks", "dense", "dense6_3", False),
                    ("prob", "dense", "dense6_1", True)], ["N", 3, 48, 48]),
}


def load_state_dicts(wheel: Path | None) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """Read the three state dicts from the wheel, or from the installed package if ``wheel``
    is None; return them (net -> name -> array) with a provenance string."""
    sds, provenance = {}, "installed facenet_pytorch"
    if wheel is not None:
        provenance = f"{wheel.name} sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}"
        with zipfile.ZipFile(wheel) as zf:
            blobs = {net: io.BytesIO(zf.read(WHEEL_DATA.format(net))) for net in NETS}
    else:
        import facenet_pytorch  # noqa: PLC0415 (only needed when no wheel is given)

        data = Path(facenet_pytorch.__file__).parent / "data"
        blobs = {net: data / f"{net}.pt" for net in NETS}
    for net, blob in blobs.items():
        sd = torch.load(blob, weights_only=True, map_location="cpu")
        sds[net] = {k: v.numpy() for k, v in sd.items()}
    return sds, provenance


def _layer_nodes(kind: str, arg, x: str, out: str, sd: dict, inits: list) -> list:
    """ONNX nodes for one layer reading ``x`` and writing ``out``; appends initializers."""
    def init(key: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), key))
        return key

    if kind in ("conv", "dense"):
        w = init(f"{arg}.weight", sd[f"{arg}.weight"])
        b = init(f"{arg}.bias", sd[f"{arg}.bias"])
        if kind == "conv":
            return [helper.make_node("Conv", [x, w, b], [out], name=arg)]
        return [helper.make_node("Gemm", [x, w, b], [out], name=arg, transB=1)]
    if kind in ("cprelu", "prelu"):
        slope = sd[f"{arg}.weight"]
        slope = slope.reshape(-1, 1, 1) if kind == "cprelu" else slope
        return [helper.make_node("PRelu", [x, init(f"{arg}.weight", slope)], [out], name=arg)]
    if kind == "pool":
        k, s = arg
        return [helper.make_node("MaxPool", [x], [out], name=f"pool_{out}",
                                 kernel_shape=[k, k], strides=[s, s], ceil_mode=1)]
    if kind == "flatten":  # facenet-pytorch: x.permute(0, 3, 2, 1).contiguous().view(N, -1)
        shape = init("flatten_shape", np.array([0, -1], np.int64))
        return [helper.make_node("Transpose", [x], [f"{out}_t"], perm=[0, 3, 2, 1]),
                helper.make_node("Reshape", [f"{out}_t", shape], [out])]
    raise ValueError(f"unknown layer kind {kind!r}")


def build_model(net: str, sd: dict[str, np.ndarray], provenance: str) -> onnx.ModelProto:
    """The ONNX model of ``net`` ("pnet", "rnet" or "onet") with the weights ``sd``."""
    trunk, heads, in_shape = NETS[net]
    nodes, inits, x = [], [], "input"
    for i, (kind, arg) in enumerate(trunk):
        nodes += _layer_nodes(kind, arg, x, f"t{i}", sd, inits)
        x = f"t{i}"
    outputs = []
    for out_name, kind, name, softmax in heads:
        raw = f"{out_name}_logits" if softmax else out_name
        nodes += _layer_nodes(kind, name, x, raw, sd, inits)
        if softmax:
            nodes.append(helper.make_node("Softmax", [raw], [out_name], axis=1))
        channels = int(sd[f"{name}.weight"].shape[0])
        dims = ["N", channels, "h", "w"] if net == "pnet" else ["N", channels]
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, dims))
    graph = helper.make_graph(
        nodes, f"mtcnn_{net}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pof tools/convert_mtcnn.py")
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    model.doc_string = f"MTCNN {net}, facenet-pytorch 2.6.0 weights ({provenance})"
    onnx.checker.check_model(model, full_check=True)
    return model


class _Reference(nn.Module):
    """facenet-pytorch's PNet/RNet/ONet, re-stated in torch from the same layer lists."""

    def __init__(self, net: str, sd: dict[str, np.ndarray]):
        super().__init__()
        self.net, (self.trunk, self.heads, _) = net, NETS[net]
        self.sd = {k: torch.from_numpy(v) for k, v in sd.items()}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        F, sd = nn.functional, self.sd
        for kind, arg in self.trunk:
            if kind == "conv":
                x = F.conv2d(x, sd[f"{arg}.weight"], sd[f"{arg}.bias"])
            elif kind == "dense":
                x = F.linear(x, sd[f"{arg}.weight"], sd[f"{arg}.bias"])
            elif kind in ("cprelu", "prelu"):
                x = F.prelu(x, sd[f"{arg}.weight"])
            elif kind == "pool":
                x = F.max_pool2d(x, arg[0], arg[1], ceil_mode=True)
            else:
                x = x.permute(0, 3, 2, 1).contiguous().view(x.shape[0], -1)
        outs = []
        for _, kind, name, softmax in self.heads:
            layer = F.conv2d if kind == "conv" else F.linear
            y = layer(x, sd[f"{name}.weight"], sd[f"{name}.bias"])
            outs.append(F.softmax(y, dim=1) if softmax else y)
        return outs


def _facenet_module(net: str) -> nn.Module | None:
    """facenet-pytorch's own module for ``net`` if the package imports, else None."""
    try:
        from facenet_pytorch.models import mtcnn  # noqa: PLC0415
    except Exception:  # torchvision missing or incompatible: the re-statement must do
        return None
    return {"pnet": mtcnn.PNet, "rnet": mtcnn.RNet, "onet": mtcnn.ONet}[net]().eval()


def verify(net: str, model: onnx.ModelProto, sd: dict[str, np.ndarray], tol: float = 1e-5) -> None:
    """Check ONNX Runtime against torch on random inputs of several shapes; raise if off."""
    import onnxruntime as ort  # noqa: PLC0415

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = {"pnet": [(1, 3, 12, 12), (1, 3, 57, 83), (2, 3, 120, 97)],
              "rnet": [(1, 3, 24, 24), (7, 3, 24, 24)],
              "onet": [(1, 3, 48, 48), (5, 3, 48, 48)]}[net]
    refs = [_Reference(net, sd)] + [m for m in [_facenet_module(net)] if m is not None]
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        got = sess.run(None, {"input": x})
        for ref in refs:
            with torch.no_grad():
                want = [t.numpy() for t in ref(torch.from_numpy(x))]
            for g, w in zip(got, want, strict=True):
                err = float(np.abs(g - w).max())
                if g.shape != w.shape or err > tol:
                    raise SystemExit(f"{net} {shape}: ONNX differs from torch ({err:.2e})")
        print(f"{net} {shape}: ok vs {len(refs)} torch reference(s), "
              f"outputs {[o.shape for o in got]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, help="facenet_pytorch-2.6.0 wheel")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"default {OUT_DIR}")
    args = parser.parse_args()
    sds, provenance = load_state_dicts(args.wheel)
    args.out.mkdir(parents=True, exist_ok=True)
    for net, sd in sds.items():
        model = build_model(net, sd, provenance)
        verify(net, model, sd)
        path = args.out / f"{net}.onnx"
        onnx.save(model, path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
