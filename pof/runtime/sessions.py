"""Running one ONNX file: checked against its SHA-256, in ONNX Runtime or compiled by
OpenVINO for the CPU, one session a network, made on first use (``OnnxModel``). Which device and
runtime to use is ``pof.runtime.device``'s choice."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pof.errors import PofError
from pof.runtime.device import cpu_runtime, onnx_providers


def import_openvino():
    """The ``openvino`` module, imported with its usage telemetry shut out.

    Importing openvino imports its model converter, which sends a usage event to Google
    Analytics (package ``openvino_telemetry``) unless a consent file says no, from a thread
    that forks a process to post it. pof must not report its use to anyone, and that fork,
    racing a NumPy matrix product in the main thread, once hung a ``pof search`` (OpenBLAS's
    fork handler waits on its busy threads). With ``openvino_telemetry`` marked as absent
    before the import, openvino falls back to its own no-op stub: no event, no thread, no
    file in ~/intel."""
    import sys
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)   # None: "import" raises ImportError
    import openvino
    return openvino


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, run like an ONNX Runtime session:
    ``run(output_names or None, {input_name: array}) -> list of arrays``.

    Float32 throughout: on CPUs with AMX or AVX-512 BF16, OpenVINO's default precision is
    bfloat16, which moves MTCNN's outputs by about 1% and so its boxes; in float32 they agree
    with ONNX Runtime's to about 1e-6. ``threads`` inference threads (default 1, as pof
    parallelises by process), and no pinning of threads to cores, which would put several
    worker processes on the same core. One inference request per calling thread (a request
    is not thread-safe; the web app calls from a thread pool).
    """

    def __init__(self, model: Path, threads: int = 1) -> None:
        import threading

        ov = import_openvino()
        self._compiled = ov.Core().compile_model(str(model), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads),
            "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False})
        self._outputs = [set(o.get_names()) for o in self._compiled.outputs]
        self._inputs = [set(i.get_names()) for i in self._compiled.inputs]
        self._local = threading.local()
        self._tensor = ov.Tensor

    def _index(self, names: list[set[str]], name: str, kind: str) -> int:
        for i, aliases in enumerate(names):
            if name in aliases:
                return i
        raise PofError(f"the model has no {kind} named {name!r}")

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        # the inputs set as tensors over the arrays' own memory, then a bare infer(): a
        # third less overhead a call than infer({...}) (about 20 us, on the 11 calls a photo)
        arrays = [np.ascontiguousarray(v) for v in feeds.values()]   # alive until infer ends
        for k, v in zip(feeds, arrays):
            request.set_input_tensor(self._index(self._inputs, k, "input"),
                                     self._tensor(v, shared_memory=True))
        request.infer()
        wanted = (range(len(self._outputs)) if output_names is None
                  else [self._index(self._outputs, n, "output") for n in output_names])
        # copies: the request reuses its output buffers on the next call
        return [request.get_output_tensor(i).data.copy() for i in wanted]


def checked_model(model: Path, sha256: str, converter: str) -> bytes:
    """The bytes of a model file, after checking its SHA-256 (PofError naming ``converter``,
    the tools/ script that recreates it, if it is missing or another file)."""
    import hashlib

    try:
        data = Path(model).read_bytes()
    except OSError as exc:
        raise PofError(f"model file {model} cannot be read ({exc.strerror or exc}): "
                       f"run {converter}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PofError(f"model file {model} is not the expected one (SHA-256 differs): "
                       f"rerun {converter}, or update MODEL_SHA256")
    return data


def onnx_session(model: Path, sha256: str, converter: str, device: str = "cpu", threads: int = 1):
    """An ONNX Runtime session of ``model`` after checking its SHA-256; one intra-op thread
    by default and no idle spinning (pof parallelises by process). ``converter`` names the
    tools/ script that recreates the file, for the error message."""
    import onnxruntime as ort

    providers = onnx_providers(device)
    data = checked_model(model, sha256, converter)
    return ort.InferenceSession(data, sess_options=ort_options(threads), providers=providers)


def ort_options(threads: int = 1):
    """ONNX Runtime session options as pof runs every network: ``threads`` intra-op threads,
    one inter-op thread, and no idle spinning, which would steal the core from dlib (pof
    runs one process per core, pof.runtime.workers) between calls."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def try_openvino(make, what: str):
    """``make()``, which compiles sessions with OpenVINO, or None after a RuntimeWarning
    where OpenVINO cannot load ``what`` here (an unsupported CPU, a broken install): the
    caller then runs it with ONNX Runtime, which gives the same outputs."""
    try:
        return make()
    except Exception as exc:
        warnings.warn(f"OpenVINO could not load {what} ({exc}); running it with ONNX Runtime "
                      f"instead", RuntimeWarning, stacklevel=3)
        return None


class OnnxModel:
    """Base of the backends that run one checked ONNX file (``MODEL``, ``MODEL_SHA256``,
    ``CONVERTER`` as class attributes): the session is made on first use.

    ``runtime`` as the setting of that name: a network whose class sets ``OPENVINO`` (one that
    OpenVINO runs clearly faster than ONNX Runtime on the CPU) runs with OpenVINO where
    ``cpu_runtime(runtime)`` says so; every other network, and every network on a GPU, with
    ONNX Runtime. Where OpenVINO cannot load the network, a warning and ONNX Runtime."""

    MODEL: Path
    MODEL_SHA256: str
    CONVERTER: str
    OPENVINO = False

    def __init__(self, device: str = "cpu", threads: int = 1, runtime: str = "onnxruntime") -> None:
        self.device, self.threads, self.runtime = device, threads, runtime
        self._session = None

    @property
    def session(self):
        """The ONNX Runtime (or OpenVINO) session, created on first use."""
        if self._session is None:
            if self.OPENVINO and self.device == "cpu" and cpu_runtime(self.runtime) == "openvino":
                checked_model(self.MODEL, self.MODEL_SHA256, self.CONVERTER)
                self._session = try_openvino(lambda: OpenVinoSession(self.MODEL, self.threads),
                                             self.MODEL.name)
            if self._session is None:
                self._session = onnx_session(self.MODEL, self.MODEL_SHA256, self.CONVERTER,
                                             self.device, self.threads)
        return self._session
