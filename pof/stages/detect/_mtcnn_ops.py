"""Numpy building blocks of the MTCNN cascade (no model inference here).

They follow facenet-pytorch 2.6.0's ``models/utils/detect_face.py`` closely, so that the ONNX
port gives the same boxes: its pixel conventions (boxes are ``x1, y1, x2, y2`` floats whose
crops cover rows ``floor(y1) - 1 .. floor(y2) - 1``), its two NMS flavours and its two box
regressions. Box arrays are float32/float64 of shape (N, 5+): x1, y1, x2, y2, score, extras.
The box rules are written for numpy arrays and torch tensors alike (``pof.stages.arrays``):
the batched cascade of ``pof.gpu.mtcnn`` calls them on tensors.
"""
from __future__ import annotations

import cv2
import numpy as np

from pof.stages.arrays import as_type, device, is_tensor, namespace

PNET_STRIDE = 2  # PNet's output cell step in input pixels
PNET_CELL = 12  # PNet's receptive field (input pixels) = smallest face it sees at scale 1
NORM_MEAN = 127.5
NORM_SCALE = 0.0078125  # 1 / 128
# Second-look crops for rejected candidates: (shift x, shift y) in box sizes, and scale;
# the first RESCUE_SHIFTS are tried first (see MTCNNDetector._tries)
RESCUE_SHIFTS = 4
RESCUE_JITTERS = ((0.1, 0.0, 1.0), (-0.1, 0.0, 1.0), (0.0, 0.1, 1.0), (0.0, -0.1, 1.0),
                  (0.0, 0.0, 0.9), (0.0, 0.0, 1.12))


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which PNet's 12-px window matches faces from ``min_face_size`` up to the
    shorter image side, each ``factor`` times the previous one."""
    scale = PNET_CELL / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def integral(image: np.ndarray) -> np.ndarray:
    """Summed-area table of a uint8 (H, W, 3) image: (H + 1, W + 1, 3) int32, half the bytes
    of float64, so the gathers that resample from it run faster (a 320 x 243 photo's table,
    pyramid and crops 3.0 ms instead of 4.0; a 4000 x 3000 photo's pyramid 404 ms instead of
    878).

    Past 8.4 megapixels the running sums wrap around 2**32 (OpenCV's int32 integral wraps,
    as two's complement adds do). Every block sum taken from the table, its four corners
    added and subtracted in int32 (numpy wraps the same way), is still exact as long as the
    block itself sums below 2**31, i.e. holds fewer than 8.4 million pixels; the cells of
    pyramid levels and candidate crops hold at most tens of thousands. For such large images
    the wrap is checked (the table's last corner against the image's total modulo 2**32) and
    a float64 table, exact without wrapping, is the fallback.

    A tensor of same-sized images (B, H, W, 3) gives their tables (B, H + 1, W + 1, 3), by
    torch's cumulative sums: int32 up to 8.4 megapixels, float64 above (exact either way)."""
    if is_tensor(image):
        return _tensor_integral(image)
    table = cv2.integral(image, sdepth=cv2.CV_32S)
    if image.shape[0] * image.shape[1] * 255 >= 2**31:
        total = np.array(cv2.sumElems(image)[:3], np.uint64) % 2**32   # exact in float64
        if not np.array_equal(table[-1, -1].view(np.uint32), total.astype(np.uint32)):
            return cv2.integral(image, sdepth=cv2.CV_64F)
    return table


def _tensor_integral(images):
    import torch
    b, h, w, c = images.shape
    dtype = torch.int32 if h * w * 255 < 2**31 else torch.float64
    table = torch.zeros((b, h + 1, w + 1, c), dtype=dtype, device=images.device)
    table[:, 1:, 1:] = images.to(dtype).cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)
    return table


def area_bins(n_in, n_out: int, like=None):
    """First and last-plus-one input index of each output cell of torch's adaptive average
    pooling (``interpolate(mode="area")``), for input length(s) ``n_in``: (..., n_out);
    arrays of ``like``'s module and device (numpy by default)."""
    xp = namespace(n_in, like)
    i = xp.arange(n_out, device=device(like))
    n = xp.asarray(n_in, device=device(like))[..., None]
    return (i * n) // n_out, -((-(i + 1) * n) // n_out)


def _take(flat, idx):
    """flat[idx] for an index array of any shape: rows (..., C) (np.take is numpy's fast gather)."""
    return flat[idx] if is_tensor(flat) else np.take(flat, idx, axis=0)


def pyramid_level(table, scale: float):
    """The image resized for ``scale`` as facenet-pytorch does it (size ``int(side * scale +
    1)``, torch's "area" resampling: each pixel the plain mean of an input block), from its
    summed-area table (H + 1, W + 1, 3), or every image of a batch of same-sized ones from
    their tables (B, H + 1, W + 1, 3). Returns (1 or B, 3, h, w) normalised float32, PNet's
    input; numpy or torch."""
    xp = namespace(table)
    batch = table.shape[0] if table.ndim == 4 else 1
    height, width = table.shape[-3] - 1, table.shape[-2] - 1
    ys, ye = area_bins(height, int(height * scale + 1), like=table)
    xs, xe = area_bins(width, int(width * scale + 1), like=table)
    # block sums from the four corners, exact in the table's type; flat indices of whole
    # pixels into the table (for numpy, np.take is the fast gather: 10% faster than summing
    # rows first)
    stride = width + 1
    flat = table.reshape(-1, table.shape[-1])
    top, bottom = (ys * stride)[:, None], (ye * stride)[:, None]
    if table.ndim == 4:         # each photo's table starts (H + 1) (W + 1) rows further on
        start = (xp.arange(batch, device=device(table)) * ((height + 1) * stride))[:, None, None]
        top, bottom = top + start, bottom + start
    sums = _take(flat, bottom + xe)                      # (h, w, 3) or (B, h, w, 3)
    sums -= _take(flat, top + xe)
    sums -= _take(flat, bottom + xs)
    sums += _take(flat, top + xs)
    # mean = sum / block area, normalised as the networks expect ((x - NORM_MEAN) * NORM_SCALE)
    if is_tensor(table):
        gain = NORM_SCALE / as_type((ye - ys)[:, None] * (xe - xs)[None, :], "float32")
        out = as_type(sums, "float32").reshape(batch, *sums.shape[-3:]) * gain[None, :, :, None]
        return (out - NORM_MEAN * NORM_SCALE).permute(0, 3, 1, 2).contiguous()
    # written channel by channel into the (B, 3, h, w) float32 result: the same numbers as
    # converting the sums to float32 first (exact up to 2**24; a float64 table above that
    # is rounded here, off by < 0.001 level), in 10% less time than a float32 pass and a
    # transposing copy
    sums = sums.reshape(batch, *sums.shape[-3:])
    gain = (NORM_SCALE / ((ye - ys)[:, None] * (xe - xs)[None, :])).astype(np.float32)
    out = np.empty((batch, 3) + sums.shape[1:3], np.float32)
    for c in range(3):
        np.multiply(sums[..., c], gain, out=out[:, c], casting="unsafe")
    out -= np.float32(NORM_MEAN * NORM_SCALE)
    return out


def generate_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """PNet's output map -> candidate boxes in image pixels.

    reg: (4, h, w) box offsets; prob: (h, w) face probability. Returns (N, 9):
    x1, y1, x2, y2, score, and the four offsets (applied later, after NMS).
    """
    ys, xs = np.nonzero(prob >= threshold)
    return np.concatenate([cell_corners(xs, ys, scale), prob[ys, xs][:, None], reg[:, ys, xs].T],
                          axis=1).astype(np.float32)


def cell_corners(xs, ys, scale: float):
    """Where PNet output cells (columns ``xs``, rows ``ys``) of the level at ``scale`` lie in
    the image: (N, 4) x1, y1, x2, y2 float32 whole pixels; numpy or torch."""
    xp = namespace(xs)
    cells = as_type(xp.stack([xs, ys], axis=1), "float32")
    top_left = xp.floor((PNET_STRIDE * cells + 1) / scale)
    bottom_right = xp.floor((PNET_STRIDE * cells + PNET_CELL) / scale)
    return xp.concatenate([top_left, bottom_right], axis=1)


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression on ``boxes`` (N, 5+), by score (column 4).

    method "union": drop boxes whose IoU with a kept one exceeds ``threshold`` (areas
    without the +1, as torchvision's nms). "min": overlap divided by the smaller area, with
    the +1 pixel convention (facenet-pytorch's final ONet NMS). Returns kept indices, best
    first.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    one = 1.0 if method == "min" else 0.0
    area = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-boxes[:, 4], kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = iw * ih
        if method == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def pair_iou(boxes, others):
    """The IoU of each of ``boxes`` (N, 4+) with each of ``others`` (M, 4+): (N, M); numpy or
    torch."""
    xp = namespace(boxes)
    a, b = boxes[:, None, :4], others[None, :, :4]
    iw = xp.clip(xp.minimum(a[..., 2], b[..., 2]) - xp.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = xp.clip(xp.minimum(a[..., 3], b[..., 3]) - xp.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / xp.clip(area_a + area_b - inter, 1e-9, None)


def max_iou(boxes, others):
    """For each of ``boxes`` (N, 4+), its highest IoU with any of ``others`` (M, 4+): (N,)."""
    return namespace(boxes).amax(pair_iou(boxes, others), axis=1)


def regress(boxes, reg, plus_one: bool = True):
    """Shift box corners by ``reg`` (N, 4) times the box size; returns a new (N, 5) array.
    Written for numpy arrays and torch tensors alike (pof.gpu.mtcnn uses it too).

    facenet-pytorch measures the size as ``x2 - x1 + 1`` (``plus_one``) except after PNet.
    """
    out = boxes[:, :5] + 0   # a copy, for numpy arrays and torch tensors alike
    one = 1.0 if plus_one else 0.0
    w = boxes[:, 2] - boxes[:, 0] + one
    h = boxes[:, 3] - boxes[:, 1] + one
    for i, size in enumerate((w, h, w, h)):
        out[:, i] += reg[:, i] * size
    return out


def square(boxes):
    """Grow each box to a square around its centre (side = the longer side)."""
    out = boxes + 0
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = (w >= h) * w + (w < h) * h   # the larger, exactly (max without np/torch calls)
    out[:, 0] = boxes[:, 0] + 0.5 * (w - side)
    out[:, 1] = boxes[:, 1] + 0.5 * (h - side)
    out[:, 2:4] = out[:, :2] + side[:, None]
    return out


def crop_patches(table, boxes, size: int, photo=None):
    """Crop each box from the image whose summed-area table is ``table`` (H + 1, W + 1, 3),
    or from images of a batch (tables (B, H + 1, W + 1, 3), ``photo`` (N,): the image of
    each box), resized to ``size`` x ``size`` by torch's "area" resampling, all boxes at
    once; numpy or torch.

    The crop covers columns ``floor(x1) - 1`` up to (excluding) ``floor(x2)``, as in
    facenet-pytorch. Where a box leaves the image, the outside counts as black, as in the
    original MTCNN (facenet-pytorch instead clips the box and stretches what remains; both
    agree for boxes inside the image). Returns (N, 3, size, size) normalised float32.
    """
    xp = namespace(table)
    height, width = table.shape[-3] - 1, table.shape[-2] - 1
    corners = as_type(xp.floor(boxes[:, :4]), "int64")
    x0, y0 = corners[:, 0] - 1, corners[:, 1] - 1  # first column / row of each crop
    cw = xp.clip(corners[:, 2] - x0, 1, None)
    ch = xp.clip(corners[:, 3] - y0, 1, None)
    ys, ye = (b + y0[:, None] for b in area_bins(ch, size, like=table))  # (N, size) image rows
    xs, xe = (b + x0[:, None] for b in area_bins(cw, size, like=table))
    area = (ye - ys)[:, :, None] * (xe - xs)[:, None, :]
    # block sums from the four corners, exact in the table's type; clipping the corners to
    # the image sums only the inside (the outside adds 0). Flat indices into the table.
    stride = width + 1
    ys, ye = (xp.clip(v, 0, height)[:, :, None] * stride for v in (ys, ye))
    xs, xe = (xp.clip(v, 0, width)[:, None, :] for v in (xs, xe))
    if photo is not None:       # each photo's table starts (H + 1) (W + 1) rows further on
        start = (as_type(photo, "int64") * ((height + 1) * stride))[:, None, None]
        ys, ye = ys + start, ye + start
    flat = table.reshape(-1, table.shape[-1])
    sums = _take(flat, ye + xe)  # (N, size, size, 3)
    sums -= _take(flat, ys + xe)
    sums -= _take(flat, ye + xs)
    sums += _take(flat, ys + xs)
    # the mean, normalised as the networks expect, in float64 and then rounded to float32
    gain = NORM_SCALE / as_type(area, "float64")
    if is_tensor(table):
        norm = as_type(sums, "float64") * gain[..., None] - NORM_MEAN * NORM_SCALE
        return as_type(norm, "float32").permute(0, 3, 1, 2).contiguous()
    # written channel by channel into the (N, 3, size, size) result (no transposing copy:
    # 25-30% less time than normalising all channels at once, the same numbers)
    out = np.empty((len(boxes), 3, size, size), np.float32)
    mean = np.empty(gain.shape, np.float64)
    for c in range(3):
        np.multiply(sums[..., c], gain, out=mean)
        np.subtract(mean, NORM_MEAN * NORM_SCALE, out=out[:, c], casting="unsafe")
    return out


def jitter(boxes, jitters: tuple):
    """Shifted and rescaled copies of ``boxes`` (N, 5+): (N, len(jitters), 5), numpy or torch.

    Each jitter (dx, dy, s) moves the centre by (dx * width, dy * height) and scales the
    size by s; the score column is copied. Sizes and centres are taken in the boxes' type,
    the moves in float64, the result in the boxes' type.
    """
    xp = namespace(boxes)
    dx, dy, s = (as_type(v, "float64", like=boxes)[None, :] for v in zip(*jitters, strict=True))
    w = as_type((boxes[:, 2] - boxes[:, 0])[:, None], "float64")
    h = as_type((boxes[:, 3] - boxes[:, 1])[:, None], "float64")
    cx = as_type((boxes[:, 0:1] + boxes[:, 2:3]) / 2, "float64") + dx * w
    cy = as_type((boxes[:, 1:2] + boxes[:, 3:4]) / 2, "float64") + dy * h
    score = xp.broadcast_to(as_type(boxes[:, 4:5], "float64"), cx.shape)
    out = xp.stack([cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2, score], axis=-1)
    return as_type(out, str(boxes.dtype).rpartition(".")[2])


def landmarks_in_box(boxes: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """ONet's landmark output (N, 10: five x then five y, in box units) -> (N, 5, 2) pixels."""
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    xs = w * rel[:, :5] + boxes[:, 0:1] - 1
    ys = h * rel[:, 5:] + boxes[:, 1:2] - 1
    return as_type(namespace(boxes).stack([xs, ys], axis=2), "float32")


def clip_boxes(boxes, width: int, height: int):
    """Final boxes (N, 5+) x1, y1, x2, y2 clipped to a ``width`` x ``height`` image, and
    which of them keep an area there (N,) bool; numpy or torch."""
    xp = namespace(boxes)
    out = boxes + 0
    for i, limit in enumerate((width, height, width, height)):
        out[:, i] = xp.clip(boxes[:, i], 0, limit)
    return out, (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
