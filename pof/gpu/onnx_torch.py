"""Run pof's ONNX graphs as PyTorch modules.

pof ships its networks (MTCNN's P/R/O-nets, dlib's face-recognition ResNet, MobileFace and
face-api's attribute net) as ONNX files for ONNX Runtime. The GPU engine needs them on CUDA,
where ONNX Runtime's GPU build often cannot be installed (it trails new CUDA releases) but
PyTorch can. This module is a small ONNX interpreter for that: ``load`` reads a graph once,
turns its initializers into registered buffers (so ``.to(device)`` and ``.half()`` move them)
and its nodes into a flat execution plan, and ``OnnxModule.forward`` walks the plan with
fused torch calls (``F.conv2d`` with bias, ``F.linear``, ``F.prelu``).

It understands exactly the operators those six graphs use, plus Constant and Identity, and
refuses anything else with a ``PofError`` naming the operator; tests/test_gpu_onnx_torch.py
checks every output of every graph against ONNX Runtime. One rewrite is made at load: a
per-channel Mul or Add by a constant right after a Conv (dlib's affine layers) is folded into
the Conv's weight and bias, saving two passes over the activations per layer.

Only ``onnx`` and ``torch`` are needed (the ``pof[gpu]`` extra); nothing runs at import time.

Example::

    net = load("pof/runtime/weights/mtcnn/rnet.onnx", "cuda")
    reg, prob = net(batch)          # outputs in the graph's order
"""
from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from pof.errors import PofError

ONNX_DOMAINS = ("", "ai.onnx")
SAME_PADS = {b"SAME_UPPER": "upper", b"SAME_LOWER": "lower"}
EXPLICIT_PADS = (b"NOTSET", b"VALID")
PAD_MODES = {b"constant": "constant", b"reflect": "reflect", b"edge": "replicate"}
SOFTMAX_PER_AXIS_OPSET = 13   # Softmax: over one axis from opset 13, "coerced to 2-D" before
SPATIAL_DIMS = 2              # only 2-D convolutions and pools (NCHW)
NO_PADS = (0,) * 2 * SPATIAL_DIMS
FOLDED = "::folded"           # suffix of a Conv's weight/bias after a Mul/Add was folded in

Kernel = Callable[..., torch.Tensor]


class Step(NamedTuple):
    """One node of the execution plan."""
    op: str
    inputs: tuple[str, ...]       # tensors read: graph values or constants
    outputs: tuple[str, ...]
    attrs: dict                   # keyword arguments of ``kernel``, resolved at load
    kernel: Kernel
    free: tuple[str, ...]         # values no later step needs


class _Node:
    """A graph node while the plan is built (mutable, unlike Step)."""

    def __init__(self, proto: onnx.NodeProto) -> None:
        self.op = proto.op_type
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs = {a.name: helper.get_attribute_value(a) for a in proto.attribute}


# -- kernels ---------------------------------------------------------------------------------
def _window_pads(x: torch.Tensor, kernel, strides, dilations, pads, same: str | None):
    """(top, left, bottom, right) padding of a 2-D window op; ``same`` ("upper"/"lower")
    derives it from x's size as ONNX's auto_pad SAME_UPPER/SAME_LOWER do."""
    if same is None:
        return pads
    begin, end = [], []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        begin.append(total // 2 if same == "upper" else total - total // 2)
        end.append(total - begin[-1])
    return (*begin, *end)


def _torch_padding(pads, kernel=None, dilations=None):
    """torch's symmetric ``padding`` for ``pads`` (top, left, bottom, right), or None when they
    must go through F.pad: asymmetric, or (pools) wider than torch allows, half the window."""
    top, left, bottom, right = pads
    if top != bottom or left != right:
        return None
    if kernel is not None and any(p > ((k - 1) * d + 1) // 2
                                  for p, k, d in zip((top, left), kernel, dilations)):
        return None
    return top, left


def _f_pad(pads) -> tuple[int, int, int, int]:
    """F.pad's argument for 2-D ``pads`` (top, left, bottom, right)."""
    top, left, bottom, right = pads
    return left, right, top, bottom


def _conv(x, w, b=None, *, strides, dilations, group, pads, same):
    pads = _window_pads(x, w.shape[2:], strides, dilations, pads, same)
    padding = _torch_padding(pads)
    if padding is None:
        x, padding = F.pad(x, _f_pad(pads)), (0, 0)
    return F.conv2d(x, w, b, strides, padding, dilations, group)


def _max_pool(x, *, kernel, strides, dilations, pads, same, ceil_mode):
    pads = _window_pads(x, kernel, strides, dilations, pads, same)
    padding = _torch_padding(pads, kernel, dilations)
    if padding is None:
        x, padding = F.pad(x, _f_pad(pads), value=-math.inf), (0, 0)
    return F.max_pool2d(x, kernel, strides, padding, dilations, ceil_mode)


def _avg_pool(x, *, kernel, strides, pads, same, ceil_mode, count_include_pad):
    unit = (1,) * SPATIAL_DIMS
    pads = _window_pads(x, kernel, strides, unit, pads, same)
    padding = _torch_padding(pads, kernel, unit)
    if padding is not None:
        return F.avg_pool2d(x, kernel, strides, padding, ceil_mode, count_include_pad)
    pool = functools.partial(F.avg_pool2d, kernel_size=kernel, stride=strides, ceil_mode=ceil_mode)
    mean = pool(F.pad(x, _f_pad(pads)))
    if count_include_pad:
        return mean
    # The explicit zeros must not count: divide by the share of real pixels in each window.
    return mean / pool(F.pad(torch.ones_like(x[:1, :1]), _f_pad(pads)))


def _global_avg_pool(x):
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


def _prelu(x, slope):
    """PRelu; F.prelu when the slope is one value or one per channel (dim 1)."""
    if slope.numel() == 1 or (x.ndim == slope.ndim + 1 and slope.shape[1:].numel() == 1):
        return F.prelu(x, slope.reshape(-1))
    return torch.where(x >= 0, x, x * slope)


def _gemm(a, b, c=None, *, alpha, beta, trans_a, trans_b):
    a = a.t() if trans_a else a
    w = b if trans_b else b.t()
    if c is not None and c.ndim == 1 and alpha == 1 and beta == 1:
        return F.linear(a, w, c)
    y = F.linear(a, w)
    y = y * alpha if alpha != 1 else y
    return y if c is None else y + beta * c


def _matmul(a, b):
    return F.linear(a, b.t()) if b.ndim == 2 else torch.matmul(a, b)


def _softmax(x, *, axis, per_axis):
    if per_axis:
        return torch.softmax(x, axis)
    rows = math.prod(x.shape[:axis % x.ndim])       # before opset 13: over all dims from axis
    return torch.softmax(x.reshape(rows, -1), 1).reshape(x.shape)


def _transpose(x, *, perm):
    return x.permute(*(perm or reversed(range(x.ndim))))


def _reshape(x, *, shape, allowzero):
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _flatten(x, *, axis):
    axis = axis + x.ndim if axis < 0 else axis     # 0..ndim, both ends included
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _div(a, b):
    if a.is_floating_point() or b.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")     # ONNX integer division truncates


def _max(*xs):
    return functools.reduce(torch.maximum, xs)


def _min(*xs):
    return functools.reduce(torch.minimum, xs)


def _identity(x):
    return x


# -- planning: per op, (node, constants, opset) -> (kernel, data inputs, kernel attrs) -------
def _attrs(node: _Node, defaults: dict) -> dict:
    """The node's attributes over ``defaults``; PofError for an attribute not in them."""
    unknown = set(node.attrs) - set(defaults)
    if unknown:
        raise PofError(f"ONNX {node.op} attribute(s) {sorted(unknown)} are not supported")
    return {**defaults, **node.attrs}


def _static(node: _Node, index: int, consts: dict, default=None):
    """The value (a list) of input ``index``, which must be a constant; ``default`` if absent."""
    if len(node.inputs) <= index or not node.inputs[index]:
        return default
    name = node.inputs[index]
    if name not in consts:
        raise PofError(f"ONNX {node.op} with a computed input {index} ({name!r}) is not supported")
    return consts[name].tolist()


WINDOW = dict(kernel_shape=None, strides=None, dilations=None, pads=None, auto_pad=b"NOTSET")


def _window_attrs(node: _Node, a: dict, kernel=None) -> dict:
    """kernel, strides, dilations, pads (top, left, bottom, right) and ``same`` of a 2-D op."""
    kernel = a["kernel_shape"] or kernel
    if kernel is None or len(kernel) != SPATIAL_DIMS:
        raise PofError(f"ONNX {node.op}: only 2-D windows are supported (kernel {kernel})")
    auto_pad = a["auto_pad"]
    if auto_pad not in SAME_PADS and auto_pad not in EXPLICIT_PADS:
        raise PofError(f"ONNX {node.op}: auto_pad {auto_pad!r} is not supported")
    pads = tuple(a["pads"] or NO_PADS) if auto_pad == b"NOTSET" else NO_PADS
    return dict(kernel=tuple(kernel), strides=tuple(a["strides"] or (1,) * SPATIAL_DIMS),
                dilations=tuple(a["dilations"] or (1,) * SPATIAL_DIMS), pads=pads,
                same=SAME_PADS.get(auto_pad))


def _plan_conv(node, consts, opset):
    a = _attrs(node, dict(WINDOW, group=1))
    weight = consts.get(node.inputs[1])
    w = _window_attrs(node, a, weight.shape[2:] if weight is not None else None)
    del w["kernel"]                            # the kernel uses its weight's own shape
    return _conv, node.inputs, dict(w, group=a["group"])


def _plan_max_pool(node, consts, opset):
    if len(node.outputs) > 1:
        raise PofError("ONNX MaxPool with an Indices output is not supported")
    a = _attrs(node, dict(WINDOW, ceil_mode=0, storage_order=0))
    return _max_pool, node.inputs, dict(_window_attrs(node, a), ceil_mode=bool(a["ceil_mode"]))


def _plan_avg_pool(node, consts, opset):
    a = _attrs(node, dict(WINDOW, ceil_mode=0, count_include_pad=0))
    w = _window_attrs(node, a)
    if w.pop("dilations") != (1,) * SPATIAL_DIMS:
        raise PofError("ONNX AveragePool with dilations is not supported")
    return _avg_pool, node.inputs, dict(w, ceil_mode=bool(a["ceil_mode"]),
                                        count_include_pad=bool(a["count_include_pad"]))


def _plan_gemm(node, consts, opset):
    a = _attrs(node, dict(alpha=1.0, beta=1.0, transA=0, transB=0))
    return _gemm, node.inputs, dict(alpha=a["alpha"], beta=a["beta"],
                                    trans_a=bool(a["transA"]), trans_b=bool(a["transB"]))


def _plan_softmax(node, consts, opset):
    per_axis = opset >= SOFTMAX_PER_AXIS_OPSET
    a = _attrs(node, dict(axis=-1 if per_axis else 1))
    return _softmax, node.inputs, dict(axis=a["axis"], per_axis=per_axis)


def _plan_transpose(node, consts, opset):
    return _transpose, node.inputs, _attrs(node, dict(perm=None))


def _plan_reshape(node, consts, opset):
    a = _attrs(node, dict(allowzero=0))
    return _reshape, node.inputs[:1], dict(shape=_static(node, 1, consts),
                                           allowzero=bool(a["allowzero"]))


def _plan_flatten(node, consts, opset):
    return _flatten, node.inputs, _attrs(node, dict(axis=1))


def _plan_pad(node, consts, opset):
    a = _attrs(node, dict(mode=b"constant"))
    if a["mode"] not in PAD_MODES:
        raise PofError(f"ONNX Pad mode {a['mode']!r} is not supported")
    if _static(node, 3, consts) is not None:
        raise PofError("ONNX Pad with an axes input is not supported")
    pads = _static(node, 1, consts)
    rank = len(pads) // 2
    torch_pads = []                                   # last dim first, (begin, end) each
    for d in reversed(range(rank)):
        torch_pads += [pads[d], pads[rank + d]]
    mode = PAD_MODES[a["mode"]]
    kwargs = dict(pad=tuple(torch_pads), mode=mode)
    if mode == "constant":
        value = np.asarray(_static(node, 2, consts, default=0.0)).reshape(-1)
        kwargs["value"] = float(value[0]) if value.size else 0.0
    return F.pad, node.inputs[:1], kwargs


def _plain(kernel: Kernel):
    """The planner of an op without attributes."""
    def plan(node, consts, opset):
        _attrs(node, {})
        return kernel, node.inputs, {}
    return plan


PLANNERS = {
    "Conv": _plan_conv, "MaxPool": _plan_max_pool, "AveragePool": _plan_avg_pool,
    "GlobalAveragePool": _plain(_global_avg_pool), "Gemm": _plan_gemm,
    "MatMul": _plain(_matmul), "Softmax": _plan_softmax, "Transpose": _plan_transpose,
    "Reshape": _plan_reshape, "Flatten": _plan_flatten, "Pad": _plan_pad,
    "PRelu": _plain(_prelu), "Relu": _plain(torch.relu), "Identity": _plain(_identity),
    "Add": _plain(torch.add), "Sub": _plain(torch.sub), "Mul": _plain(torch.mul),
    "Div": _plain(_div), "Max": _plain(_max), "Min": _plain(_min),
}


def _constant_value(node: _Node) -> np.ndarray:
    """The tensor of a Constant node."""
    if len(node.attrs) != 1:
        raise PofError(f"ONNX Constant with attributes {sorted(node.attrs)} is not supported")
    (name, value), = node.attrs.items()
    if name == "value":
        return numpy_helper.to_array(value)
    if name in ("value_float", "value_floats"):
        return np.asarray(value, dtype=np.float32)
    if name in ("value_int", "value_ints"):
        return np.asarray(value, dtype=np.int64)
    raise PofError(f"ONNX Constant with a {name} attribute is not supported")


# -- the one rewrite: Conv -> Mul/Add by per-channel constants, folded into the Conv ------------
def _channel_vector(value: np.ndarray, channels: int) -> np.ndarray | None:
    """``value`` as one float64 per channel of an NCHW tensor, or None if it is not that."""
    if value.ndim > SPATIAL_DIMS + 2 or value.dtype.kind != "f":
        return None
    shape = (1,) * (SPATIAL_DIMS + 2 - value.ndim) + value.shape
    if shape[0] != 1 or shape[1] not in (1, channels) or any(s != 1 for s in shape[2:]):
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,))


def _conv_to_fold(node: _Node, producer: dict, readers: Counter, consts: dict, keep: set[str]):
    """(the Conv, per-channel vector) when ``node`` is a Mul/Add by a constant that can be
    folded into the Conv producing its other operand; None otherwise."""
    if node.op not in ("Mul", "Add") or len(node.inputs) != 2:
        return None
    for src, other in (node.inputs, node.inputs[::-1]):
        conv = producer.get(src)
        if (conv is None or conv.op != "Conv" or other not in consts or readers[src] != 1
                or src in keep or not all(name in consts for name in conv.inputs[1:])):
            continue
        vector = _channel_vector(consts[other], consts[conv.inputs[1]].shape[0])
        if vector is not None:
            return conv, vector
    return None


def _fold_into_convs(nodes: list[_Node], consts: dict, keep: set[str]) -> list[_Node]:
    """Folds each per-channel Mul/Add by a constant that is the only reader of a Conv's output
    into that Conv's weight and bias; returns the nodes left. ``keep``: the graph outputs."""
    readers = Counter(name for n in nodes for name in n.inputs)
    producer = {out: n for n in nodes for out in n.outputs}
    kept = []
    for node in nodes:
        found = _conv_to_fold(node, producer, readers, consts, keep)
        if found is None:
            kept.append(node)
            continue
        conv, vector = found
        dtype = consts[conv.inputs[1]].dtype
        weight = consts[conv.inputs[1]].astype(np.float64)
        bias = (consts[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2
                else np.zeros(weight.shape[0]))
        if node.op == "Mul":
            weight, bias = weight * vector[:, None, None, None], bias * vector
        else:
            bias = bias + vector
        out = node.outputs[0]
        conv.inputs = [conv.inputs[0], out + FOLDED + ".w", out + FOLDED + ".b"]
        consts[conv.inputs[1]], consts[conv.inputs[2]] = weight.astype(dtype), bias.astype(dtype)
        conv.outputs = [out]
        producer[out] = conv
    return kept


class OnnxModule(torch.nn.Module):
    """An ONNX graph run by torch. ``forward(*inputs)`` takes the graph's inputs in order
    (``input_names``; tensors of the module's float dtype, on its device) and returns its
    outputs in graph order (``output_names``) as a tuple."""

    def __init__(self, model: onnx.ModelProto, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        graph = model.graph
        opset = next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)
        consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [v.name for v in graph.input if v.name not in consts]
        self.output_names = [v.name for v in graph.output]

        nodes = []
        for proto in graph.node:
            node = _Node(proto)
            if proto.domain not in ONNX_DOMAINS or node.op not in {*PLANNERS, "Constant"}:
                op = f"{proto.domain}.{node.op}" if proto.domain not in ONNX_DOMAINS else node.op
                raise PofError(f"ONNX operator {op} is not supported by pof's torch runner "
                               f"(node {proto.name or node.outputs[0]!r})")
            if node.op == "Constant":
                consts[node.outputs[0]] = _constant_value(node)
            else:
                nodes.append(node)
        nodes = _fold_into_convs(nodes, consts, set(self.output_names))

        planned = []                               # (node, kernel, data inputs, kernel attrs)
        for node in nodes:
            kernel, inputs, attrs = PLANNERS[node.op](node, consts, opset)
            inputs = list(inputs)
            while inputs and not inputs[-1]:       # absent trailing optional inputs
                inputs.pop()
            if not all(inputs):
                raise PofError(f"ONNX {node.op} with an absent middle input is not supported")
            planned.append((node, kernel, tuple(inputs), attrs))

        used = {name for _, _, inputs, _ in planned for name in inputs} | set(self.output_names)
        self._constants = []                       # (ONNX name, buffer name)
        for name in sorted(used & set(consts)):
            tensor = torch.from_numpy(np.array(consts[name]))   # a writable copy
            if tensor.is_floating_point():
                tensor = tensor.to(dtype)
            buffer = f"const{len(self._constants)}"
            self.register_buffer(buffer, tensor)
            self._constants.append((name, buffer))

        last_read = {}
        for i, (_, _, inputs, _) in enumerate(planned):
            last_read.update((name, i) for name in inputs)
        keep = set(self.output_names) | set(consts)
        self.plan = []
        for i, (node, kernel, inputs, attrs) in enumerate(planned):
            free = {n for n in inputs if last_read[n] == i} | {
                n for n in node.outputs if n not in last_read}       # never read
            self.plan.append(Step(node.op, inputs, tuple(node.outputs), attrs, kernel,
                                  tuple(sorted(free - keep))))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise PofError(f"this ONNX graph takes {len(self.input_names)} input(s) "
                           f"{self.input_names}, got {len(inputs)}")
        values = {name: getattr(self, buffer) for name, buffer in self._constants}
        values.update(zip(self.input_names, inputs))
        for step in self.plan:
            values[step.outputs[0]] = step.kernel(*[values[n] for n in step.inputs], **step.attrs)
            for name in step.free:
                del values[name]
        return tuple(values[name] for name in self.output_names)


def load(path, device="cpu", dtype: torch.dtype = torch.float32) -> OnnxModule:
    """The ONNX model at ``path`` as an OnnxModule on ``device``, its float initializers in
    ``dtype`` (float32; float16 for speed on a GPU). PofError for an unreadable file or an
    unsupported graph."""
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except (OSError, DecodeError) as e:
        raise PofError(f"cannot read the ONNX model {path}: {e}") from e
    return OnnxModule(model, dtype).to(device)
