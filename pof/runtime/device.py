"""Which compute device runs the models: the CPU or a CUDA GPU, and on the CPU, which
runtime (ONNX Runtime or OpenVINO). The sessions themselves are ``pof.runtime.sessions``."""
from __future__ import annotations

from pof.errors import SettingError


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


RUNTIMES = ("auto", "openvino", "onnxruntime")


def cpu_runtime(name: str = "auto", long_job: bool = False) -> str:
    """The runtime that runs pof's MTCNN networks and MobileFaceNet on the CPU: "openvino"
    or "onnxruntime".

    "auto" picks OpenVINO for long jobs (``long_job``: ``pof serve``, and ``pof build``,
    ``search``, ``verify`` and ``eval`` of ``pof.pipeline.OPENVINO_MIN_PHOTOS`` images or
    more; ``Pipeline.settle_runtime``) where it is installed, and ONNX Runtime
    otherwise. OpenVINO runs the three networks in about two thirds of ONNX Runtime's time
    on 1024 x 768 photos (a build 15-20% faster), but loading it costs each process 0.2-0.3 s,
    which a one-photo ``pof search`` would only lose (BENCHMARKS.md, "Search and
    descriptors"). Asking for "openvino" where it is not installed is a SettingError."""
    if name not in RUNTIMES:
        raise SettingError(f"runtime must be one of {', '.join(RUNTIMES)}, got {name!r}")
    if name == "onnxruntime" or (name == "auto" and not long_job):
        return "onnxruntime"
    from pof.runtime.sessions import import_openvino
    try:
        import_openvino()
    except ImportError:
        if name == "openvino":
            raise SettingError("runtime openvino asked for, but the openvino package is not "
                               "installed: pip install openvino, or use runtime onnxruntime") from None
        return "onnxruntime"
    return "openvino"
