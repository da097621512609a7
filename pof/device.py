"""Which compute device runs the models."""
from __future__ import annotations

from pathlib import Path

from .errors import PofError, SettingError


def onnx_providers(device: str) -> list[str]:
    """ONNX Runtime execution providers for ``device`` (cpu or cuda); a clear error if the
    GPU is asked for and this machine cannot use one."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    require_cuda()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def require_cuda() -> None:
    """Raise SettingError unless ONNX Runtime can run on a CUDA GPU here."""
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SettingError(
            "--device cuda asked for, but ONNX Runtime has no CUDA provider here (no GPU, or the "
            "CPU-only onnxruntime package is installed: install onnxruntime-gpu on a GPU machine)")


def build_engine() -> str | None:
    """How ``pof build --device cuda`` uses the GPU: "cuda" (pof's batched GPU engine,
    ``pof.gpu``) when PyTorch sees a CUDA GPU; None (the pipeline with ONNX Runtime's CUDA
    provider) when only onnxruntime-gpu can; a SettingError saying what to install when
    neither can."""
    try:
        import torch
        if torch.cuda.is_available():
            return "cuda"
    except ImportError:
        pass
    try:
        require_cuda()
    except SettingError:
        raise SettingError("--device cuda asked for, but no CUDA GPU can be used here: neither "
                           "PyTorch (pip install 'pof[gpu]' with a CUDA build of torch) nor ONNX "
                           "Runtime (onnxruntime-gpu) sees one; use --device cpu") from None
    return None


def onnx_session(model: Path, sha256: str, converter: str, device: str = "cpu", threads: int = 1):
    """An ONNX Runtime session of ``model`` after checking its SHA-256; one intra-op thread
    by default and no idle spinning (pof parallelises by process). ``converter`` names the
    tools/ script that recreates the file, for the error message."""
    import hashlib

    import onnxruntime as ort

    providers = onnx_providers(device)
    try:
        data = Path(model).read_bytes()
    except OSError as exc:
        raise PofError(f"model file {model} cannot be read ({exc.strerror or exc}): "
                       f"run {converter}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PofError(f"model file {model} is not the expected one (SHA-256 differs): "
                       f"rerun {converter}, or update MODEL_SHA256")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, sess_options=opts, providers=providers)


class OnnxModel:
    """Base of the backends that run one checked ONNX file (``MODEL``, ``MODEL_SHA256``,
    ``CONVERTER`` as class attributes): the session is made on first use."""

    MODEL: Path
    MODEL_SHA256: str
    CONVERTER: str

    def __init__(self, device: str = "cpu", threads: int = 1) -> None:
        self.device, self.threads = device, threads
        self._session = None

    @property
    def session(self):
        """The ONNX Runtime session, created on first use."""
        if self._session is None:
            self._session = onnx_session(self.MODEL, self.MODEL_SHA256, self.CONVERTER,
                                         self.device, self.threads)
        return self._session
