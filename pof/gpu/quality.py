"""The quality stage for the GPU engine: every face of a batch at once.

``pof.stages.quality.assess`` measures one face at a time: the eye distance, the head pose (OpenCV's
PnP fit of a generic head to six of the 68 landmarks) and the blur (the Laplacian of the
crop). Run that way from the engine's one Python process, a thread pool did not help (the
numpy around each OpenCV call holds the interpreter lock): on an H200 it cost 2.0 ms a photo,
a fifth of the engine's time (BENCHMARKS.md, "GPU engine"). Here:

- **Blur** is computed on the device for all crops together: the crop turned grey with
  OpenCV's own fixed-point weights, the 3 x 3 Laplacian of its central area with OpenCV's
  default border (reflect-101), the variance on the same log scale
  (``pof.stages.quality.blur_scale``, the one rule for both). The grey levels and the
  Laplacian are OpenCV's exactly; the variance agrees to float rounding.
- **Pose** stays OpenCV's fit (``pof.stages.quality.head_poses``), so the angles are those of the CPU
  pipeline exactly, but runs in worker processes (``pof.gpu.poses``), each fitting a share
  of the faces while the device cuts chips and runs the recognizers.
"""
from __future__ import annotations

import torch

from pof.stages import quality as cpu_quality

# OpenCV's RGB -> grey for 8-bit pixels: 15-bit fixed point, rounded (its SIMD code uses
# these; the 14-bit weights of its documentation give other levels on about 1% of pixels)
GREY_WEIGHTS = (9798, 19235, 3735)
GREY_SHIFT = 15


def grey(crops: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 RGB -> (N, H, W) int32 grey levels, as cv2.COLOR_RGB2GRAY gives."""
    c = crops.to(torch.int32)
    r, g, b = GREY_WEIGHTS
    return (c[:, 0] * r + c[:, 1] * g + c[:, 2] * b + (1 << (GREY_SHIFT - 1))) >> GREY_SHIFT


def blur(crops: torch.Tensor) -> torch.Tensor:
    """Blur 0..1 (N,) float64 of (N, 3, H, W) uint8 RGB crops, as ``pof.stages.quality.blur_of``
    before its rounding to 3 decimals."""
    levels = grey(crops)
    rows, columns = cpu_quality.centre_area(*levels.shape[1:])
    centre = levels[:, rows, columns].to(torch.float64)
    # torch's "reflect" leaves the edge pixel out, as OpenCV's reflect-101 does
    p = torch.nn.functional.pad(centre[:, None], (1, 1, 1, 1), mode="reflect")[:, 0]
    lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * centre
    return cpu_quality.blur_scale(lap.flatten(1).var(dim=1, unbiased=False))
