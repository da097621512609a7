"""JPEG blockiness (``pof.stages.restore.blockiness``) of many photos at once, on the device.

On the CPU it costs about 1 ms a 1024 x 768 photo, in the engine's one Python process: as
much as the GPU's whole budget a photo. Here the photos of a batch, already on the device,
have the rows and columns it reads turned grey (OpenCV's levels, ``pof.gpu.quality.grey``)
and are measured together by the CPU stage's own rule
(``pof.stages.restore.sampled_blockiness``), so the same numbers to float rounding.
"""
from __future__ import annotations

import torch

from pof.gpu.quality import grey
from pof.stages.restore import ROW_STEP, sampled_blockiness


def blockiness(photos: torch.Tensor) -> torch.Tensor:
    """Blockiness (N,) float64 of (N, H, W, 3) uint8 RGB photos on any device."""
    nchw = photos.permute(0, 3, 1, 2)
    rows = grey(nchw[:, :, ::ROW_STEP])                                 # (N, H / 4, W)
    columns = grey(nchw[:, :, :, ::ROW_STEP]).transpose(1, 2)           # (N, W / 4, H)
    return sampled_blockiness(rows, columns)
