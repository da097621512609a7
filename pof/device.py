"""Which compute device runs the models."""
from __future__ import annotations

from .errors import SettingError


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
