"""JPEG blockiness (``pof.stages.restore.blockiness``) of many photos at once, on the device.

On the CPU it costs about 1 ms a 1024 x 768 photo, in the engine's one Python process: as
much as the GPU's whole budget a photo. Here it is a few tensor operations over a batch of
same-sized photos already on the device, with the same grey levels (OpenCV's) and the same
rows and columns read, so the same numbers to float rounding.
"""
from __future__ import annotations

import torch

from pof.stages.restore import BLOCK, ROW_STEP
from pof.gpu.quality import grey


def _ratio(rows: torch.Tensor) -> torch.Tensor | None:
    """(N,) mean step across block boundaries over mean step elsewhere, along the last axis
    of (N, R, W) grey levels; None where the rows are too short (as the CPU skips them)."""
    if rows.shape[2] < 2 * BLOCK + 1:
        return None
    d = (rows[:, :, 1:] - rows[:, :, :-1]).abs().to(torch.float64)    # d[..., j]: j -> j + 1
    edge = (torch.arange(d.shape[2], device=d.device) % BLOCK) == BLOCK - 1
    return (d[:, :, edge].mean(dim=(1, 2)) + 1e-3) / (d[:, :, ~edge].mean(dim=(1, 2)) + 1e-3)


def blockiness(photos: torch.Tensor) -> torch.Tensor:
    """Blockiness (N,) float64 of (N, H, W, 3) uint8 RGB photos on any device."""
    nchw = photos.permute(0, 3, 1, 2)
    rows = grey(nchw[:, :, ::ROW_STEP])                                 # (N, H / 4, W)
    columns = grey(nchw[:, :, :, ::ROW_STEP]).transpose(1, 2)           # (N, W / 4, H)
    ratios = [r for r in (_ratio(rows), _ratio(columns)) if r is not None]
    if not ratios:
        return torch.ones(len(photos), dtype=torch.float64, device=photos.device)
    return torch.stack(ratios).mean(dim=0)
