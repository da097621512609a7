"""Restoring heavily JPEG-compressed photos before their faces are described.

A JPEG saved at a very low quality (about 10 or less) carries the edges of its 8 x 8 coding
blocks. Both of pof's recognizers read those edges as detail: on the public benchmark's
compressed-and-blurred probes (JPEG quality 8 after a blur of 2 px) pof identified 75% at its
threshold, and 85% once the block edges were smoothed away. So a photo whose blocks show
(``blockiness`` at least HEAVY_BLOCKINESS) is smoothed (``deblock``) before detection,
landmarks and descriptors, and each of its descriptors is averaged with its mirror image's
(another 2 points there; end to end, ``pof search`` went from 79.5% to 91.0%). Its crop, blur
measure and attributes still come from the photo's own pixels, so the quality gates judge the
photo as it is. Each such face says so (``Face.extra["restored"]``), and so does every search
result for it.

Photos with milder compression are left alone: at quality 20 (blockiness about 1.9) the
recognizers lose nothing, and smoothing raised false matches there (BENCHMARKS.md,
"Heavily compressed photos").
"""
from __future__ import annotations

import cv2
import numpy as np

from pof.stages.arrays import as_type, device, namespace

BLOCK = 8                  # JPEG's coding block, in pixels
ROW_STEP = 4               # blockiness reads every 4th row and column
# over this, a photo's block edges are visible (see blockiness): about JPEG quality 10 on LFW
# photos (median 2.5 at quality 10, 1.9 at 20, 1.2 at 75; the benchmark's compressed probes
# 2.5-6.3, its plain photos at most 2.4)
HEAVY_BLOCKINESS = 2.5
SIGMA = 1.5                # the smoothing (Gaussian, pixels) a blocky photo gets
NAME = "deblocked"
VERSION = f"deblock-b{HEAVY_BLOCKINESS:g}-gauss{SIGMA:g}-mirror"


def blockiness(pixels: np.ndarray) -> float:
    """How much stronger the steps between neighbouring pixels are across JPEG's block
    boundaries (every 8th pixel) than elsewhere, rows and columns averaged: about 1 for a
    photo without visible blocks, 2.5 or more where they show. uint8 (H, W, 3) RGB or (H, W).
    Every ROW_STEP-th row (and column) is enough: about 1 ms for a 1024 x 768 photo."""
    g = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return float(sampled_blockiness(g[::ROW_STEP], g.T[::ROW_STEP]))


def sampled_blockiness(rows, columns):
    """``blockiness`` from every ROW_STEP-th row (R, W) and every ROW_STEP-th column, as
    rows (C, H), of a photo's grey levels, or of many same-sized photos' ((N, R, W) and
    (N, C, H)): numpy or torch, one number a photo."""
    ratios = [r for r in (_edge_ratio(rows), _edge_ratio(columns)) if r is not None]
    if not ratios:
        xp = namespace(rows)
        return xp.ones(rows.shape[:-2], dtype=xp.float64, device=device(rows))
    return sum(ratios) / len(ratios)


def _edge_ratio(rows):
    """The mean step across block boundaries over the mean step elsewhere, along the last
    axis of rows (..., R, W) of grey levels; None where the rows are too short to tell."""
    if rows.shape[-1] < 2 * BLOCK + 1:
        return None
    xp = namespace(rows)
    d = as_type(xp.abs(xp.diff(as_type(rows, "int16"), axis=-1)), "float64")   # j -> j + 1
    edge = (xp.arange(d.shape[-1], device=device(d)) % BLOCK) == BLOCK - 1
    return (d[..., edge].mean(axis=(-2, -1)) + 1e-3) / (d[..., ~edge].mean(axis=(-2, -1)) + 1e-3)


def heavily_compressed(pixels: np.ndarray) -> bool:
    """Whether a photo's JPEG blocks show enough to smooth them before description."""
    return blockiness(pixels) >= HEAVY_BLOCKINESS


def mark(face) -> None:
    """Say on a face (``Face.extra``) that it was found and described on its photo smoothed."""
    face.extra["restored"] = NAME


def deblock(pixels: np.ndarray) -> np.ndarray:
    """The photo smoothed enough to hide its block edges (uint8, same shape)."""
    return np.ascontiguousarray(cv2.GaussianBlur(pixels, (0, 0), SIGMA))
