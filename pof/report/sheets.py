"""Redacted pictures of the crops: the redaction itself, contact sheets (animated GIF plus a
grid JPEG, ``per_sheet`` crops each) and the downsized mosaic of the whole dataset.

Every crop is 200 x 280 with its face where the align stage put it (``pof.stages.align``: eyes on
y = CROP_EYE_Y, CROP_INTEROCULAR apart, centred), so the face region is known without a
detector: the template's face box, joined with the image's own crop-space landmarks widened
by a margin, is pixelated into a few coarse blocks. Each finished sheet (and the mosaic) is
then searched with pof's own detector; any face still found is pixelated again, and a crop
where one survives two rounds is pixelated whole. A sheet is never written with a face the
detector can find.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pof.stages.align import CROP_EYE_Y, CROP_H, CROP_INTEROCULAR, CROP_W
from pof.redact import obscure
from pof.runtime.files import atomic

# The template face box in crop pixels (x0, y0, x1, y1): brows to chin, cheek to cheek, with
# room for a face that the similarity transform left turned or tilted.
TEMPLATE_FACE = (int(CROP_W / 2 - 1.3 * CROP_INTEROCULAR), int(CROP_EYE_Y - 1.15 * CROP_INTEROCULAR),
                 int(CROP_W / 2 + 1.3 * CROP_INTEROCULAR), int(CROP_EYE_Y + 2.15 * CROP_INTEROCULAR))
LANDMARK_MARGIN = 0.25        # widen the landmarks' box by this share of its size (more above: forehead)
BLOCKS = 5                    # pixel blocks across the face region
SHEET_COLS = 10               # a 100-crop sheet is 10 x 10
SHEET_SCALE = 0.5             # grid tiles are 100 x 140
FRAME_MS = 200                # GIF: how long each crop is shown
MOSAIC_MAX_SIDE = 4096        # the mosaic's longest side, pixels
MOSAIC_MAX_TILE = 40          # widest mosaic tile (the crops are downsized at least 5x)
CHECK_WINDOW = 1024           # the detector checks larger pictures in windows this wide ...
CHECK_OVERLAP = 160           # ... overlapping by more than a grid tile's height


def face_region(points: np.ndarray | None) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a crop to redact: the template face box joined with the box of the
    crop-space landmarks (N, 2), widened by LANDMARK_MARGIN (twice that upwards)."""
    x0, y0, x1, y1 = TEMPLATE_FACE
    if points is not None and len(points):
        px0, py0 = points.min(axis=0)
        px1, py1 = points.max(axis=0)
        w, h = px1 - px0, py1 - py0
        x0, y0 = min(x0, px0 - LANDMARK_MARGIN * w), min(y0, py0 - 2 * LANDMARK_MARGIN * h)
        x1, y1 = max(x1, px1 + LANDMARK_MARGIN * w), max(y1, py1 + LANDMARK_MARGIN * h)
    return (max(0, math.floor(x0)), max(0, math.floor(y0)), min(CROP_W, math.ceil(x1)), min(CROP_H, math.ceil(y1)))


def redact_crop(crop: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """A copy of one 200 x 280 RGB crop with its face region pixelated into BLOCKS blocks
    across. A crop of another size is first resized to 200 x 280."""
    if crop.shape[:2] != (CROP_H, CROP_W):
        crop = cv2.resize(crop, (CROP_W, CROP_H), interpolation=cv2.INTER_AREA)
    out = np.ascontiguousarray(crop.copy())
    obscure(out, face_region(points), "pixelate", 6 / BLOCKS)
    return out


def read_crop(path: Path) -> np.ndarray:
    """A crop file as uint8 RGB (H, W, 3). Raises OSError/ValueError if unreadable."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def grid(crops: list[np.ndarray], cols: int = SHEET_COLS, scale: float = SHEET_SCALE) -> np.ndarray:
    """Crops tiled row by row into one RGB image, each scaled by ``scale``; empty cells black."""
    tw, th = max(1, round(CROP_W * scale)), max(1, round(CROP_H * scale))
    cols = max(1, min(cols, len(crops)))
    rows = max(1, math.ceil(len(crops) / cols))
    out = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for k, c in enumerate(crops):
        r, q = divmod(k, cols)
        out[r * th:(r + 1) * th, q * tw:(q + 1) * tw] = cv2.resize(c, (tw, th), interpolation=cv2.INTER_AREA)
    return out


def faces_found(detect, pixels: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Boxes (x, y, w, h) that ``detect`` (pof's Pipeline.detect) finds in ``pixels``. A
    picture larger than CHECK_WINDOW is searched in overlapping windows, which bounds the
    detector's memory (a whole 4000 x 4000 mosaic at once takes over 4 GB)."""
    h, w = pixels.shape[:2]
    if max(h, w) <= CHECK_WINDOW + CHECK_OVERLAP:
        return [tuple(d.box) for d in detect(np.ascontiguousarray(pixels))[0]]
    step = CHECK_WINDOW - CHECK_OVERLAP
    boxes = []
    for y0 in range(0, max(1, h - CHECK_OVERLAP), step):
        for x0 in range(0, max(1, w - CHECK_OVERLAP), step):
            window = np.ascontiguousarray(pixels[y0:y0 + CHECK_WINDOW, x0:x0 + CHECK_WINDOW])
            boxes += [(d.box[0] + x0, d.box[1] + y0, d.box[2], d.box[3]) for d in detect(window)[0]]
    return boxes


def make_safe(crops: list[np.ndarray], detect, cols: int = SHEET_COLS,
              scale: float = SHEET_SCALE) -> tuple[np.ndarray, int, int]:
    """Check the grid of already-redacted ``crops`` with the detector and redact again, in
    place, wherever it still finds a face: first the found box (in every tile it touches),
    then, if a face survives, the whole tile. Returns (final grid, faces found at first,
    faces still found at the end: 0 unless the detector defeats all of that)."""
    cols = max(1, min(cols, len(crops)))
    tw, th = round(CROP_W * scale), round(CROP_H * scale)
    sheet = grid(crops, cols, scale)
    boxes = faces_found(detect, sheet)
    first = len(boxes)
    for whole in (False, True):
        if not boxes:
            break
        for x, y, w, h in boxes:
            for k in _tiles_touched((x, y, w, h), tw, th, cols, len(crops)):
                r, q = divmod(k, cols)
                rect = (0, 0, CROP_W, CROP_H) if whole else (
                    max(0, int((x - q * tw) / scale) - 10), max(0, int((y - r * th) / scale) - 10),
                    min(CROP_W, int((x + w - q * tw) / scale) + 10), min(CROP_H, int((y + h - r * th) / scale) + 10))
                obscure(crops[k], rect, "pixelate", 6 / BLOCKS if not whole else 1.5)
        sheet = grid(crops, cols, scale)
        boxes = faces_found(detect, sheet)
    return sheet, first, len(boxes)


def _tiles_touched(box, tw: int, th: int, cols: int, n: int) -> list[int]:
    x, y, w, h = box
    q0, q1 = max(0, int(x // tw)), min(cols - 1, int((x + w) // tw))
    r0, r1 = max(0, int(y // th)), int((y + h) // th)
    return [r * cols + q for r in range(r0, r1 + 1) for q in range(q0, q1 + 1) if r * cols + q < n]


def write_sheet(crops: list[np.ndarray], gif: Path, jpg: Path, detect) -> tuple[int, int]:
    """Write one contact sheet: ``gif`` cycles through the crops, one per frame, full size;
    ``jpg`` shows them all as a grid. Both redacted and checked (see make_safe). Returns
    (faces the detector found after the first redaction, faces still found at the end)."""
    sheet, found, left = make_safe(crops, detect)
    atomic(jpg, lambda tmp: Image.fromarray(sheet).save(tmp, "JPEG", quality=85))
    frames = [Image.fromarray(c) for c in crops]
    atomic(gif, lambda tmp: frames[0].save(tmp, "GIF", save_all=True, append_images=frames[1:],
                                            duration=FRAME_MS, loop=0, optimize=False))
    return found, left


class Mosaic:
    """The whole dataset downsized, one tile per crop, row by row in metadata order, filled
    one (already redacted) crop at a time so the crops are never all in memory."""

    def __init__(self, n: int) -> None:
        n = max(1, n)
        ratio = CROP_H / CROP_W
        self.cols = max(1, math.ceil(math.sqrt(n * ratio)))
        self.rows = math.ceil(n / self.cols)
        tw = min(MOSAIC_MAX_TILE, MOSAIC_MAX_SIDE // self.cols, int(MOSAIC_MAX_SIDE / (self.rows * ratio)))
        self.tw = max(2, tw)
        self.th = max(3, round(self.tw * ratio))
        self.pixels = np.full((self.rows * self.th, self.cols * self.tw, 3), 32, np.uint8)
        self.count = 0

    def add(self, crop: np.ndarray) -> None:
        if self.count >= self.rows * self.cols:
            return
        r, q = divmod(self.count, self.cols)
        self.pixels[r * self.th:(r + 1) * self.th, q * self.tw:(q + 1) * self.tw] = cv2.resize(
            crop, (self.tw, self.th), interpolation=cv2.INTER_AREA)
        self.count += 1

    def write(self, path: Path, detect) -> int:
        """Check with the detector (pixelating whatever it finds), then write a JPEG.
        Returns the faces found before that."""
        boxes = faces_found(detect, self.pixels)
        for x, y, w, h in boxes:
            h_, w_ = self.pixels.shape[:2]
            obscure(self.pixels, (max(0, int(x) - 4), max(0, int(y) - 4), min(w_, int(x + w) + 4),
                                  min(h_, int(y + h) + 4)), "pixelate", 1.5)
        img = Image.fromarray(self.pixels)
        atomic(path, lambda tmp: img.save(tmp, "JPEG", quality=88))
        return len(boxes)
