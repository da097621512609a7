"""The GPU engine: pof's pipeline batched across photos on a CUDA device, in PyTorch.

ONNX Runtime's CUDA build (``onnxruntime-gpu``) is one way to run pof's networks on a GPU
(``--device cuda`` with the ONNX backends); this package is the other, for throughput: the
same ONNX files and dlib models run by PyTorch (``pip install 'pof[gpu]'``), with every
stage batched across many photos so that the GPU, not Python, sets the pace. Nothing here
imports dlib: the 68-point landmark trees and the chip geometry are re-implemented in torch
and checked against dlib's own results in the tests.

Modules:
- ``onnx_torch``: runs pof's ONNX graphs as torch modules.
- ``mtcnn``: the MTCNN cascade batched across photos.
- ``shape68``: dlib's 68-point shape predictor (regression trees) batched across faces.
- ``chips``: the recognizers' chips and the dataset crop, cut on the device.
- ``quality``, ``restore``: blur and JPEG blockiness measured on the device.
- ``workers``, ``poses``: the batches' CPU work (head poses; attributes in ``pof build
  --device cuda``) shared among worker processes.
- ``engine``: photos in, Faces out.
"""
from __future__ import annotations

from pof.errors import SettingError


def torch_device(name: str):
    """The torch device for ``name`` ("cuda", "cuda:1", "cpu"); a clear SettingError when
    torch is missing or the GPU is asked for and absent."""
    try:
        import torch
    except ImportError:
        raise SettingError("the GPU engine needs PyTorch: pip install 'pof[gpu]'") from None
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingError(f"--device {name} asked for, but PyTorch sees no CUDA GPU here "
                           f"(torch {torch.__version__}); use --device cpu")
    return torch.device(name)
