"""The four images the pipeline cuts per face, cut in torch for many faces at once.

Per face the CPU pipeline cuts: the upright 256 x 256 landmark frame and the 200 x 280 dataset
crop (``pof.stages.align.warp``: OpenCV's bilinear ``warpAffine`` with a replicated border, after an
INTER_AREA shrink of the whole photo when the face is more than twice the output's size),
MobileFace's 112 x 112 chip (``pof.stages.embed.mobileface.chip``: ``warpAffine``, black border) and
dlib's 150 x 150 chip (``pof.stages.embed.dlib_resnet.chip``: ``dlib.get_face_chip``). Here the
matrices of all faces are computed at once in numpy (float64, as the CPU code does), and
``warp`` samples every face's output from a batch of same-sized photos on any torch device,
with its own bilinear gather on the flattened batch (no per-face copy of a photo).

The samplers follow the libraries' conventions rather than approximating them:

- OpenCV (``shrink="none"`` / ``"area"``): output pixel (x, y) samples the source at
  M^-1 (x, y), integer pixel centres, no half-pixel shift; the inverse matrix and the
  coordinates are float32 and the weights float32, as OpenCV 5's ``warpAffine`` computes them.
  The INTER_AREA shrink is not resampled from a fixed pyramid: each face's shrunk pixels are
  the exact area means of its own shrink factor, read from a summed-area table of the photo
  (float64) and rounded to whole levels as ``cv2.resize`` stores them.
- dlib (``shrink="dlib"``): ``get_face_chip_details`` (dlib's mean-face template, the
  similarity fit to the rounded 68 points, padding, the chip rectangle and angle) and
  ``extract_image_chips``: the pyramid level dlib picks, dlib's ``pyramid_down<2>`` (5 x 5
  binomial filter, every other pixel, truncated to whole levels, built on the face's bounding
  box, whose position fixes which pixels each level keeps), dlib's sub-pixel mapping into that
  level (``rect_down``), its bilinear interpolation in float64 (black wherever a neighbour
  falls outside the level) and its truncation to whole levels. The pyramid is kept
  undecimated (every level at full resolution, filters dilated by 2^k), so one copy per level
  serves every face, whatever its bounding box.

Outputs are float32 0-255. OpenCV's modes are not rounded: ``torch.round`` gives OpenCV's
pixels. dlib's mode is already whole levels (dlib truncates; rounding changes nothing).

Against OpenCV 5.0 and dlib 20.0 on real faces (tests/test_gpu_chips.py) the OpenCV outputs
differ by one level on at most ~0.2% of pixels (rounding ties; float32 ulps, including those
of cv2.resize's float32 sums), pre-shrunk, turned or at the border alike; dlib's chip has
been bit-exact, pyramid levels included. OpenCV releases before warpAffine's float rewrite
(opencv PR #25984, 4.11) quantised coordinates to 1/32 pixel: against those expect a level or
two more.

Costs: a plain output pixel reads 4 source pixels; a pre-shrunk one 36 rows of a float64
summed-area table (8 bytes x (H + 1) x (W + 1) x 3 per photo with such a face); dlib's
pyramid keeps one uint8 copy of each such photo per level used. Faces are cut in runs of
about _CHUNK_PIXELS output pixels to bound the temporaries.
"""
from __future__ import annotations

import numpy as np
import torch

from pof.stages import align
from pof.stages.embed import mobileface
from pof.stages.embed.dlib_resnet import CHIP_PADDING, CHIP_SIZE
from pof.stages.landmarks import five_from_68

# dlib's mean face (dlib/image_transforms/interpolation.h, get_face_chip_details): the
# positions of iBUG points 17-67 in the unit square that get_face_chip maps a face into.
_DLIB_MEAN_FACE_X = np.array([
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689])
_DLIB_MEAN_FACE_Y = np.array([
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182])
_DLIB_MEAN_FACE_FIRST = 17
# The points dlib fits the chip to: nose, eyes, upper lip and mouth corners (it leaves out the
# jaw line, the eyebrows and the lower lip).
_DLIB_CHIP_POINTS = np.r_[27:55, 60:65]

# cv2.resize's INTER_AREA rounds halves up in its exact 2 x 2 case and to even otherwise.
_AREA_HALF_UP_FACTOR = 2.0
# dlib's pyramid_down<2>: the binomial filter (its taps sum to 16 per axis) and the offset
# of its rect_down mapping from a level to the next: p -> p / 2 - (1.25, 0.75).
_BINOMIAL5 = (1, 4, 6, 4, 1)
_PYR_DOWN_SHIFT = np.array([1.25, 0.75])
_PYR_MIN_SIDE = 9          # pyramid_down<2> gives an empty level from a side under 9 pixels
_PYR_MAX_LEVELS = 32       # deeper than any photo (guards against degenerate matrices)
# Faces per gather are limited so that one batch of samples stays near this many pixels.
_CHUNK_PIXELS = 1 << 21


# -- matrices ------------------------------------------------------------------------------

def frame_matrices(landmarks5: np.ndarray) -> np.ndarray:
    """(N, 5, 2) -> (N, 2, 3): source -> upright landmark frame, ``align.frame_matrix``."""
    return align.frame_matrix(landmarks5)


def crop_matrices(landmarks5: np.ndarray) -> np.ndarray:
    """(N, 5, 2) -> (N, 2, 3): source -> 200 x 280 dataset crop, ``align.crop_matrix``."""
    return align.crop_matrix(landmarks5)


def mobileface_matrices(landmarks68: np.ndarray) -> np.ndarray:
    """(N, 68, 2) -> (N, 2, 3): source -> MobileFace's 112 x 112 chip, from the five points
    of the 68 (``pof.stages.embed.mobileface.chip_matrix``)."""
    return mobileface.chip_matrix(five_from_68(landmarks68))


def _dlib_template(size: int, padding: float) -> np.ndarray:
    """Where get_face_chip puts the fitted points in a size x size chip: (K, 2)."""
    mean = np.stack([_DLIB_MEAN_FACE_X, _DLIB_MEAN_FACE_Y], 1)[_DLIB_CHIP_POINTS - _DLIB_MEAN_FACE_FIRST]
    return (padding + mean) / (2 * padding + 1) * size


def dlib_chip_matrices(landmarks68: np.ndarray, size: int = CHIP_SIZE,
                       padding: float = CHIP_PADDING) -> np.ndarray:
    """(N, 68, 2) -> (N, 2, 3): source -> dlib's chip, as ``dlib.get_face_chip`` places it from
    the points rounded to whole pixels (``pof.stages.embed.dlib_resnet``). dlib fits a similarity to
    its mean face, keeps its angle and scale s, and samples a square of side size * s - 1
    with size - 1 steps: the chip's scale is (size * s - 1) / (size - 1), not s."""
    points = np.round(np.asarray(landmarks68, np.float64))[:, _DLIB_CHIP_POINTS]
    fit = align.similarity_matrix(np.broadcast_to(_dlib_template(size, padding), points.shape), points)
    angle = np.arctan2(fit[:, 1, 0], fit[:, 0, 0])
    scale = np.hypot(fit[:, 0, 0], fit[:, 1, 0])
    centre = fit[:, :, :2] @ np.array([size / 2, size / 2]) + fit[:, :, 2]
    step = (size * scale - 1) / (size - 1)
    cos, sin = np.cos(angle) * step, np.sin(angle) * step
    to_source = np.empty((len(points), 2, 3))
    to_source[:, 0, 0], to_source[:, 0, 1] = cos, -sin
    to_source[:, 1, 0], to_source[:, 1, 1] = sin, cos
    half = (size - 1) / 2
    to_source[:, :, 2] = centre - to_source[:, :, :2].sum(2) * half
    return align.invert(to_source)


# -- sampling ------------------------------------------------------------------------------

def warp(images: torch.Tensor, index: torch.Tensor, matrices, size: tuple[int, int],
         border: str = "replicate", shrink: str = "area") -> torch.Tensor:
    """Each face's output, (N, 3, h, w) float32 0-255 on the images' device (channels last
    in memory).

    images: (B, 3, H, W) uint8 or float photos (a channels-last layout saves a copy); index:
    (N,) which photo each face is in; matrices: (N, 2, 3) source -> output (numpy or tensor);
    size: (w, h). border: "replicate" (``pof.stages.align.warp``) or "zero" (MobileFace's chip).
    shrink: "area": as ``pof.stages.align.warp``, a face scaled by less than 1/2 is sampled from the
    photo INTER_AREA-shrunk to twice its size; "none": plain ``cv2.warpAffine``; "dlib":
    ``dlib.get_face_chip`` for matrices from ``dlib_chip_matrices``, with dlib's own border
    (black wherever a neighbour is outside its pyramid level; pass border="zero").
    """
    if border not in ("replicate", "zero"):
        raise ValueError(f"border must be 'replicate' or 'zero', not {border!r}")
    if shrink not in ("area", "none", "dlib"):
        raise ValueError(f"shrink must be 'area', 'none' or 'dlib', not {shrink!r}")
    if shrink == "dlib" and border != "zero":
        raise ValueError("shrink='dlib' samples with dlib's own black border: pass border='zero'")
    m = matrices.detach().cpu().double().numpy() if torch.is_tensor(matrices) else np.asarray(matrices, np.float64)
    w, h = size
    out = torch.empty((len(m), h, w, images.shape[1]), dtype=torch.float32, device=images.device)
    if len(m):
        face_photo = torch.as_tensor(index, device=images.device).long()
        sampler = _DlibSampler(images, m, size) if shrink == "dlib" else \
            _OpenCvSampler(images, m, size, border == "replicate", shrink == "area")
        sampler.sample(face_photo, out)
    return out.permute(0, 3, 1, 2)


def _rows(images: torch.Tensor) -> torch.Tensor:
    """Photos (B, C, H, W) as rows of pixels (B * H * W, C), a view where the layout allows."""
    return images.permute(0, 2, 3, 1).reshape(-1, images.shape[1])


def _index_type(rows: torch.Tensor) -> torch.dtype:
    """int32 indices where they reach every row (faster), else int64."""
    return torch.int32 if len(rows) < 2 ** 31 else torch.int64


def _gather(rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """rows[idx] for an index tensor of any shape: (..., C)."""
    return torch.index_select(rows, 0, idx.reshape(-1)).view(*idx.shape, rows.shape[1])


def _mix(p00, p01, p10, p11, wx0, wx1, wy0, wy1) -> torch.Tensor:
    """wy0 (wx0 p00 + wx1 p01) + wy1 (wx0 p10 + wx1 p11), the bilinear sum in the order
    OpenCV and dlib compute it; pixels (..., C), weights (...)."""
    wx0, wx1, wy0, wy1 = (t[..., None] for t in (wx0, wx1, wy0, wy1))
    return wy0 * (wx0 * p00 + wx1 * p01) + wy1 * (wx0 * p10 + wx1 * p11)


def _chunks(count: int, size: tuple[int, int]):
    """Positions 0 .. count - 1 in runs small enough for one gather, as index arrays."""
    per = max(1, _CHUNK_PIXELS // (size[0] * size[1]))
    for start in range(0, count, per):
        yield np.arange(start, min(count, start + per))


def _map(affine: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the output pixels (x, y) of an image of ``size`` go through ``affine`` (n, 2, 3):
    two (n, h, w) tensors, a x + b y + c computed in that order, in ``affine``'s dtype."""
    w, h = size
    gx = torch.arange(w, dtype=affine.dtype, device=affine.device).view(1, 1, w)
    gy = torch.arange(h, dtype=affine.dtype, device=affine.device).view(1, h, 1)
    a = affine[:, :, :, None, None]
    return a[:, 0, 0] * gx + a[:, 0, 1] * gy + a[:, 0, 2], a[:, 1, 0] * gx + a[:, 1, 1] * gy + a[:, 1, 2]


def _limit(t: torch.Tensor, low, high) -> torch.Tensor:
    """``t`` clamped to [low, high]; bounds are numbers or tensors that broadcast."""
    return torch.minimum(torch.maximum(t, torch.as_tensor(low, dtype=t.dtype, device=t.device)),
                         torch.as_tensor(high, dtype=t.dtype, device=t.device))


class _OpenCvSampler:
    """``cv2.warpAffine`` (INTER_LINEAR), after ``pof.stages.align.warp``'s INTER_AREA shrink."""

    def __init__(self, images: torch.Tensor, m: np.ndarray, size: tuple[int, int], replicate: bool,
                 area: bool) -> None:
        self.images, self.size, self.replicate = images, size, replicate
        self.height, self.width = images.shape[2:]
        # pof.stages.align.warp's plan: shrink by f = 1 / (2 scale) to whole pixels, then
        # stretch the matrix by the factors those whole-pixel sizes give
        self.shrunk, self.small, self.factor = align.shrink_plan(m, self.width, self.height)
        if not area:
            self.shrunk = np.zeros(len(m), bool)
            self.small[:] = (self.width, self.height)
            self.factor[:] = 1.0
        stretched = m.copy()
        stretched[:, :, :2] *= self.factor[:, None, :]
        self.inverse = align.invert(stretched)

    def sample(self, face_photo: torch.Tensor, out: torch.Tensor) -> None:
        device = self.images.device
        plain = np.flatnonzero(~self.shrunk)
        if len(plain):
            pixels = _rows(self.images)
            for part in _chunks(len(plain), self.size):
                faces = torch.as_tensor(plain[part], device=device)
                out[faces] = self._plain(pixels, face_photo[faces], plain[part])
        shrunk = np.flatnonzero(self.shrunk)
        if len(shrunk):
            photos, local = torch.unique(face_photo[torch.as_tensor(shrunk, device=device)], return_inverse=True)
            table = _summed_area(self.images[photos])
            for part in _chunks(len(shrunk), self.size):
                faces = torch.as_tensor(shrunk[part], device=device)
                out[faces] = self._shrunk(table, local[torch.as_tensor(part, device=device)], shrunk[part])

    def _coordinates(self, faces: np.ndarray, width, height, dtype: torch.dtype):
        """Each output pixel's source position as whole pixels (x0, y0) of ``dtype`` and
        float32 fractions; positions far outside the source are pulled in to just outside it,
        which changes no pixel."""
        inverse = torch.as_tensor(self.inverse[faces], dtype=torch.float32, device=self.images.device)
        sx, sy = _map(inverse, self.size)
        sx, sy = _limit(sx, -2, width + 1), _limit(sy, -2, height + 1)
        x0, y0 = sx.floor(), sy.floor()
        return x0.to(dtype), y0.to(dtype), sx - x0, sy - y0

    def _weights(self, x0, y0, ax, ay, width, height):
        """Bilinear weights (wx0, wx1, wy0, wy1); with a zero border, neighbours outside the
        image weigh nothing."""
        wx0, wx1, wy0, wy1 = 1 - ax, ax, 1 - ay, ay
        if not self.replicate:
            wx0, wx1 = wx0 * ((x0 >= 0) & (x0 < width)), wx1 * ((x0 >= -1) & (x0 < width - 1))
            wy0, wy1 = wy0 * ((y0 >= 0) & (y0 < height)), wy1 * ((y0 >= -1) & (y0 < height - 1))
        return wx0, wx1, wy0, wy1

    def _plain(self, pixels: torch.Tensor, photo: torch.Tensor, faces: np.ndarray) -> torch.Tensor:
        width, height = self.width, self.height
        x0, y0, ax, ay = self._coordinates(faces, width, height, _index_type(pixels))
        xa, xb = x0.clamp(0, width - 1), (x0 + 1).clamp(0, width - 1)
        ya, yb = y0.clamp(0, height - 1), (y0 + 1).clamp(0, height - 1)
        i00 = photo.to(xa.dtype).view(-1, 1, 1) * (height * width) + ya * width + xa
        dx, dy = xb - xa, (yb - ya) * width
        p = [_gather(pixels, i).float() for i in (i00, i00 + dx, i00 + dy, i00 + dx + dy)]
        return _mix(*p, *self._weights(x0, y0, ax, ay, width, height))

    def _shrunk(self, table: torch.Tensor, photo: torch.Tensor, faces: np.ndarray) -> torch.Tensor:
        """Bilinear on the face's INTER_AREA-shrunk photo, whose pixels are area means of the
        source (from the summed-area table, in float64) rounded as cv2.resize rounds them."""
        device, width, height = self.images.device, self.width, self.height
        sw, sh = (torch.as_tensor(self.small[faces, k], device=device).view(-1, 1, 1) for k in (0, 1))
        x0, y0, ax, ay = self._coordinates(faces, sw, sh, _index_type(table))
        ja, jb = _limit(x0, 0, sw - 1), _limit(x0 + 1, 0, sw - 1)
        ia, ib = _limit(y0, 0, sh - 1), _limit(y0 + 1, 0, sh - 1)
        fx, fy = (torch.as_tensor(self.factor[faces, k], device=device).view(-1, 1, 1) for k in (0, 1))
        # The shrunk pixels' edges in the source: 3 x 3 corners cover the 2 x 2 neighbours.
        row = width + 1
        base = photo.to(ja.dtype).view(-1, 1, 1) * ((height + 1) * row)
        xs = [_edge(ja + k, fx, width) for k in range(3)]
        ys = [_edge(ia + k, fy, height) for k in range(3)]
        sums = [[_integral(table, base + yi * row + xi, tx, ty, row) for xi, tx in xs] for yi, ty in ys]
        area = (fx * fy)[..., None]

        def mean(r: int, c: int) -> torch.Tensor:
            return (sums[r + 1][c + 1] - sums[r + 1][c] - sums[r][c + 1] + sums[r][c]) / area

        same_x, same_y = (jb == ja)[..., None], (ib == ia)[..., None]
        p00 = mean(0, 0)
        p01 = torch.where(same_x, p00, mean(0, 1))
        p10 = torch.where(same_y, p00, mean(1, 0))
        p11 = torch.where(same_x, p10, torch.where(same_y, p01, mean(1, 1)))
        half_up = (self.factor[faces] == _AREA_HALF_UP_FACTOR).all(1)
        half_up = torch.as_tensor(half_up, device=device).view(-1, 1, 1, 1)
        p = [torch.where(half_up, (v + 0.5).floor(), v.round()).float() for v in (p00, p01, p10, p11)]
        return _mix(*p, *self._weights(x0, y0, ax, ay, sw, sh))


def _edge(j: torch.Tensor, factor: torch.Tensor, limit: int):
    """The source position j * factor of a shrunk pixel's edge, as the summed-area table's
    whole cell (at most limit - 1) and the float64 fraction past it."""
    x = (j.double() * factor).clamp(0, limit)
    cell = x.floor().clamp(max=limit - 1)
    return cell.to(j.dtype), x - cell


def _integral(table: torch.Tensor, idx: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
              row: int) -> torch.Tensor:
    """The source summed over [0, x) x [0, y): the summed-area table read bilinearly, which
    is exact for a photo of constant pixels."""
    t00, t01, t10, t11 = (_gather(table, i) for i in (idx, idx + 1, idx + row, idx + row + 1))
    tx = tx[..., None]
    return torch.lerp(torch.lerp(t00, t01, tx), torch.lerp(t10, t11, tx), ty[..., None])


def _summed_area(images: torch.Tensor) -> torch.Tensor:
    """Rows (B * (H + 1) * (W + 1), C) float64: the photos summed over [0, x) x [0, y)."""
    batch, channels, height, width = images.shape
    table = torch.zeros((batch, height + 1, width + 1, channels), dtype=torch.float64, device=images.device)
    sums = table[:, 1:, 1:]
    sums.copy_(images.permute(0, 2, 3, 1))
    sums.cumsum_(1).cumsum_(2)
    return table.view(-1, channels)


class _DlibSampler:
    """``dlib.extract_image_chip`` (bilinear) for chips placed by ``dlib_chip_matrices``.

    From each face's matrix it recovers dlib's chip_details (rectangle, angle, rows, cols),
    then follows extract_image_chips: the bounding box of the turned rectangle grown by
    dlib's margin, the pyramid level whose rectangle still covers more pixels than the chip,
    the chip's mapping into that level, bilinear sampling there.
    """

    def __init__(self, images: torch.Tensor, m: np.ndarray, size: tuple[int, int]) -> None:
        self.images, self.size = images, size
        height, width = images.shape[2:]
        w, h = size
        to_source = align.invert(m)
        lin = to_source[:, :, :2]
        centre = lin @ np.array([(w - 1) / 2, (h - 1) / 2]) + to_source[:, :, 2]
        angle = np.arctan2(lin[:, 1, 0], lin[:, 0, 0])
        half = np.stack([np.hypot(lin[:, 0, 0], lin[:, 1, 0]) * (w - 1) / 2,
                         np.hypot(lin[:, 0, 1], lin[:, 1, 1]) * (h - 1) / 2], 1)
        rect = np.concatenate([centre - half, centre + half], 1)     # left, top, right, bottom
        # The level: pyramid_down<2> takes a rectangle's sides to (side + 1) / 2; dlib goes
        # down while the chip has fewer pixels than the next level's rectangle.
        self.level = np.full(len(m), -1)
        sides = 2 * half + 1
        for _ in range(_PYR_MAX_LEVELS):
            sides = (sides + 1) / 2
            deeper = sides.prod(1) > w * h
            if not deeper.any():
                break
            self.level[deeper] += 1
        # The bounding box: the turned rectangle grown by 2, 6, 14, ... pixels for levels
        # -1, 0, 1, ..., clipped to the photo, rounded to whole pixels (halves away from 0).
        corners = np.einsum("nij,kj->nki", lin, np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]])) \
            + to_source[:, None, :, 2]
        grow = (2.0 ** (self.level + 3) - 2)[:, None]
        low = np.maximum(corners.min(1) - grow, 0.0)
        high = np.minimum(corners.max(1) + grow, [width - 1, height - 1])
        self.box_low = np.floor(low + 0.5).astype(np.int64)
        # The rectangle in the chosen level's pixels, and that level's size.
        rect = rect - np.tile(self.box_low, 2)
        self.level_sides = np.maximum(np.floor(high + 0.5).astype(np.int64) - self.box_low + 1, 0)
        for k in range(self.level.max() + 1):
            down = self.level >= k
            rect[down] = rect[down] / 2 - np.tile(_PYR_DOWN_SHIFT, 2)
            keeps = (self.level_sides[down] >= _PYR_MIN_SIDE).all(1, keepdims=True)
            self.level_sides[down] = np.where(keeps, (self.level_sides[down] - 3) // 2, 0)
        self.to_level = _rect_mapping(rect, angle, size)

    def sample(self, face_photo: torch.Tensor, out: torch.Tensor) -> None:
        device = self.images.device
        for level in np.unique(self.level):
            at_level = np.flatnonzero(self.level == level)
            photo = face_photo[torch.as_tensor(at_level, device=device)]
            source = self.images
            if level >= 0:      # the undecimated pyramid of just the photos that need it
                photos, photo = torch.unique(photo, return_inverse=True)
                source = source[photos]
                for k in range(level + 1):
                    source = _binomial_level(source, 2 ** k)
            pixels = _rows(source)
            for part in _chunks(len(at_level), self.size):
                faces = torch.as_tensor(at_level[part], device=device)
                out[faces] = self._sample(pixels, source.shape[2:], photo[torch.as_tensor(part, device=device)],
                                          at_level[part], int(level))

    def _sample(self, pixels: torch.Tensor, photo_size: tuple[int, int], photo: torch.Tensor,
                faces: np.ndarray, level: int) -> torch.Tensor:
        """Bilinear in the faces' pyramid level (float64), black where a neighbour is outside
        it, truncated to whole levels."""
        device = pixels.device
        u, v = _map(torch.as_tensor(self.to_level[faces], device=device), self.size)
        left, top = u.floor(), v.floor()
        sides = torch.as_tensor(self.level_sides[faces], device=device).view(-1, 1, 1, 2)
        inside = (left >= 0) & (top >= 0) & (left + 1 < sides[..., 0]) & (top + 1 < sides[..., 1])
        # Pixel j of the level of a box starting at x0 is undecimated pixel x0 + offset + stride j.
        stride, offset = (2 ** (level + 1), 2 ** (level + 2) - 2) if level >= 0 else (1, 0)
        dtype = _index_type(pixels)
        low = torch.as_tensor(self.box_low[faces] + offset, device=device).to(dtype).view(-1, 1, 1, 2)
        height, width = photo_size
        col = torch.where(inside, left, torch.zeros_like(left)).to(dtype)
        row = torch.where(inside, top, torch.zeros_like(top)).to(dtype)
        idx = (photo.to(dtype).view(-1, 1, 1) * (height * width) + (low[..., 1] + stride * row) * width
               + low[..., 0] + stride * col)
        idx = torch.where(inside, idx, torch.zeros_like(idx))
        dx, dy = stride * inside.to(dtype), stride * width * inside.to(dtype)
        p = [_gather(pixels, i).double() for i in (idx, idx + dx, idx + dy, idx + dx + dy)]
        lr, tb = u - left, v - top
        return (_mix(*p, 1 - lr, lr, 1 - tb, tb).floor() * inside[..., None]).float()


def _rect_mapping(rect: np.ndarray, angle: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, 2, 3) chip -> rectangle: chip corners (0, 0), (w - 1, 0), (0, h - 1) onto the
    rectangle's corners (left, top, right, bottom) turned by ``angle`` about its centre."""
    w, h = size
    centre = (rect[:, :2] + rect[:, 2:]) / 2
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)

    def turned(x, y):
        return np.einsum("nij,nj->ni", rot, np.stack([x, y], 1) - centre) + centre

    tl = turned(rect[:, 0], rect[:, 1])
    m = np.empty((len(rect), 2, 3))
    m[:, :, 0] = (turned(rect[:, 2], rect[:, 1]) - tl) / (w - 1)
    m[:, :, 1] = (turned(rect[:, 0], rect[:, 3]) - tl) / (h - 1)
    m[:, :, 2] = tl
    return m


def _binomial_level(images: torch.Tensor, dilation: int) -> torch.Tensor:
    """One undecimated pyramid_down<2> step: the 5 x 5 binomial filter with taps ``dilation``
    pixels apart, divided by 256 and truncated (dlib keeps whole levels), uint8 of the same
    size, channels last. A margin of 2 * dilation stays 0: dlib's levels stop short of it."""
    reach = 2 * dilation
    height, width = images.shape[2:]
    out = torch.zeros(images.shape, dtype=torch.uint8, device=images.device).to(memory_format=torch.channels_last)
    if min(height, width) <= 2 * reach:
        return out

    def taps(x: torch.Tensor, dim: int) -> torch.Tensor:
        n = x.shape[dim] - 2 * reach
        tap = [x.narrow(dim, i * dilation, n) for i in range(len(_BINOMIAL5))]
        total = tap[0] + tap[4]
        total.add_(tap[1] + tap[3], alpha=_BINOMIAL5[1]).add_(tap[2], alpha=_BINOMIAL5[2])
        return total

    filtered = taps(taps(images.float(), 3), 2)
    out[:, :, reach:height - reach, reach:width - reach] = filtered.div_(256).floor_()
    return out
