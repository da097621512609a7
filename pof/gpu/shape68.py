"""dlib's 68-point shape predictor in torch, batched over faces, from a compact ``.npz``.

What: ``ShapePredictor68.predict`` gives, for N faces at once, the points that
``dlib.shape_predictor("shape_predictor_68_face_landmarks.dat")(image, rect)`` gives for
each; ``convert`` turns that 99.7 MB ``.dat`` (from the ``face_recognition_models`` package)
into a 23 MB ``.npz``, which is all ``ShapePredictor68`` needs. Nothing here imports dlib.

Why: pof's GPU engine fits landmarks to hundreds of faces per batch on machines without dlib,
where at most ~24 MB of converted model can be carried.

The model (dlib/image_processing/shape_predictor.h): a mean shape of 68 points in the unit
box and 15 cascades, each with 500 feature pixels (a landmark and an offset from it, in the
mean shape's frame) and 500 regression trees of depth 4 (15 splits, breadth first; 16
leaves of 136 values, the shape increment).

How it follows dlib (``shape_predictor::operator()``), rule by rule:

- The shape starts as the mean shape. Per cascade, dlib takes the similarity transform from
  the mean shape to the current shape (``find_similarity_transform``: Umeyama, in float64
  over the float32 points) and keeps its 2 x 2 part, cast to float32. In 2-D that part has
  the closed form ``[[a, -b], [b, a]]``, ``a = sum(f . t) / sum|f|^2``,
  ``b = sum(f x t) / sum|f|^2`` over the centred points, which is what the SVD gives
  (reflections excluded, as dlib excludes them).
- A feature pixel is ``tform @ delta + current[anchor]`` (float32), mapped to the image by
  ``unnormalizing_tform(rect)``, which takes (0, 0) to (left, top) and (1, 1) to (right,
  bottom): the scale is ``right - left``, not the inclusive width (float64). The point is
  rounded as dlib turns a float vector into a ``point``, ``floor(v + 0.5)``
  (dlib/geometry/vector.h), and reads 0 outside the image (``get_rect(img).contains``:
  0 <= x <= W - 1, 0 <= y <= H - 1), else the pixel's intensity.
- Intensity (dlib/pixel.h): a grey pixel is itself, an RGB pixel ``(r + g + b) / 3`` in
  integers (truncated).
- A tree goes left (child 2i + 1) when ``value[idx1] - value[idx2] > thresh`` (float32),
  else right (2i + 2); the leaf is the final node minus the number of splits, and every
  tree's leaf is added to the shape. Here all trees of a cascade walk at once (node indices
  (N, T), one gather per level) and their leaves are summed by one ``embedding_bag``.
- The final shape is mapped by ``unnormalizing_tform(rect)`` and rounded like the feature
  pixels: dlib's ``full_object_detection`` holds whole-pixel points.

With the ``.dat``'s exact leaf values and dlib's order of additions (one tree after the
other, in float32) this reproduces dlib bit for bit (checked on 220 faces). Two things make
it differ slightly, both unavoidable here: the order of the additions (a parallel sum) and
the compressed leaves. Tiny as they are (a median 1e-4 and 1e-2 pixel at the points before
rounding), they move a feature pixel across a rounding boundary now and then; a tree may
then take the other branch, and its leaf moves a few points, by a pixel (rarely two or
three) once rounded. The tests measure the result against dlib itself.

Reading the ``.dat`` (``read_dat``): the serialized integers are located by a scan that
walks all chunks of the file at once (``_token_starts``), decoded together, and the model's
arrays sliced out of them with numpy: a few seconds for the 33 million integers.

Storage (``convert``): splits as int16 indices and float32 thresholds, offsets float32,
anchors int16, the mean shape float32. The leaves are 16.3 million of the file's 16.6
million floats, and lossless storage would not fit (float16 alone needs 32.6 MB and moves
more points than the coding below). They are transform-coded: each 136-value leaf is
expressed in the orthonormal eigenbasis of all leaves' second moments (a few shape modes
hold most of the variance, so most coefficients are small), the coefficients are rounded to
multiples of ``LEAF_STEP`` (a uniform error, the same in any orthonormal basis), zigzag-coded
and stored as four byte planes, which the ``.npz``'s deflate compresses well. ``LEAF_STEP``
= 2^-22.5 makes the file 23.2 MB, under the 24 MB that can be carried with some room (each
halving of the step adds about 2 MB). On 480 Yale faces (HOG boxes, some
shifted) 6 % of coordinates differ from dlib's, mean 0.06 px; float16 leaves (27.5 MB
compressed) gave 8.6 % / 0.09 px, int8 leaves with a scale per tree and coordinate 27 % /
0.28 px, and dlib's exact leaves summed in parallel 1.6 % / 0.016 px.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from pof.runtime.weights import MODELS

NPZ_ENV = "POF_SHAPE68_NPZ"
DEFAULT_NPZ = MODELS / "dlib_shape68" / "shape68.npz"
FORMAT_VERSION = 1              # of the .npz that ``convert`` writes
LEAF_STEP = 2.0 ** -22.5        # rounding step of the leaf coefficients (unit-box units)

# dlib's serialization (dlib/serialize.h): an integer is a control byte (bit 7: negative;
# low 4 bits: 1-8 magnitude bytes; bits 4-6: always 0) and the magnitude, little endian. A
# float is two integers, mantissa and exponent (dlib/float_details.h).
_SIZE_MASK = 0x0F
_SIGN_BIT = 0x80
_OLD_FORMAT_BITS = 0x70
_MAX_INT_BYTES = 8
_SPARE_BYTES = 16               # zero bytes after the file: the scan reads up to 16 past
_FLOAT_SPECIAL = {32000: np.inf, 32001: -np.inf, 32002: np.nan}
_MAX_EXPONENT = 1100            # beyond any float64 exponent; keeps ldexp quiet on specials
_SHAPE_PREDICTOR_VERSION = 1

# The token scan (``_token_starts``) walks the file in chunks, all chunks at once.
_CHUNK = 16384                  # bytes per walker
_SYNC = 512                     # bytes a walker may take to fall into step with the chain


# ---------------------------------------------------------------------------------------
# Reading the .dat


def _token_starts(data: np.ndarray, n: int) -> np.ndarray:
    """Byte offsets (int64) of every serialized integer in ``data[:n]``, in order (``data``
    has at least 16 spare bytes).

    An integer's length is known only from its control byte, so the offsets form one chain
    from byte 0, too long to follow in Python quickly. So a walker starts at each chunk's
    first byte (maybe inside an integer) and all walk at once through their chunk and
    ``_SYNC`` bytes of the next. Two walks that reach the same offset go on together, and a
    variable-length code falls back into step within a few integers (within 154 bytes
    over 3000 random starts in the 68-point file): so each walker records only the offsets
    from ``_SYNC`` bytes into its chunk to ``_SYNC`` bytes into the next, and is checked to
    have met its predecessor's walk (correct, by induction from chunk 0) before that. If one
    has not, the chain is followed one integer at a time instead.
    """
    step = (data & _SIZE_MASK) + np.uint8(1)
    n_chunks = -(-n // _CHUNK)
    start = np.arange(n_chunks, dtype=np.int64) * _CHUNK
    end = np.minimum(start + _CHUNK + _SYNC, n)
    record_from = np.minimum(start + _SYNC, end)
    record_from[0] = 0                                  # chunk 0 starts on the chain
    sink = n_chunks * _CHUNK + _SYNC                    # where idle walkers write
    mark = np.zeros(sink + 1, bool)                     # the recorded offsets
    early = np.zeros(n_chunks * _SYNC + 1, bool)        # offsets before recording, per chunk
    early_at = np.arange(n_chunks) * _SYNC - start
    pos = start.copy()
    while (before := pos < record_from).any():
        early[np.where(before, pos + early_at, n_chunks * _SYNC)] = True
        pos += step[pos] * before
    while (live := pos < end).any():
        mark[np.where(live, pos, sink)] = True
        pos += step[pos] * live
    met = (early[:-1].reshape(n_chunks, _SYNC)
           & mark[:n_chunks * _CHUNK].reshape(n_chunks, _CHUNK)[:, :_SYNC]).any(1)
    if not met[1:].all() or pos[-1] != n:
        return _token_starts_one_by_one(data, n)
    return np.flatnonzero(mark[:n])


def _token_starts_one_by_one(data: np.ndarray, n: int) -> np.ndarray:
    """``_token_starts`` the slow, obvious way."""
    raw, starts, pos = data.tobytes(), [], 0
    while pos < n:
        starts.append(pos)
        pos += (raw[pos] & _SIZE_MASK) + 1
    if pos != n:
        raise ValueError("not a dlib-serialized file: its last integer runs past the end")
    return np.array(starts, np.int64)


def _decode_ints(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The integers whose control bytes are at ``starts`` (int32 when all fit, else int64)."""
    ctrl = data[starts]
    size = ctrl & _SIZE_MASK
    bad = (ctrl & _OLD_FORMAT_BITS != 0) | (size == 0) | (size > _MAX_INT_BYTES)
    if bad.any():
        at = int(starts[np.argmax(bad)])
        raise ValueError(f"bad integer control byte {int(data[at]):#x} at byte {at}")
    longest = int(size.max())
    value = np.zeros(len(starts), np.int32 if longest < 4 else np.int64)
    for k in range(longest):                           # magnitude bytes, little endian
        byte = data[1 + k:][starts]
        byte[size <= k] = 0
        value |= byte.astype(value.dtype) << (8 * k)
    np.negative(value, out=value, where=ctrl >= _SIGN_BIT)
    return value


class _Tokens:
    """The file's integers in order, read with a cursor."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.pos = 0

    def take(self, k: int) -> np.ndarray:
        if self.pos + k > len(self.values):
            raise ValueError("unexpected end of the shape predictor file")
        out = self.values[self.pos:self.pos + k]
        self.pos += k
        return out

    def peek(self, offset: int) -> int:
        if self.pos + offset >= len(self.values):
            raise ValueError("unexpected end of the shape predictor file")
        return int(self.values[self.pos + offset])

    def int(self) -> int:
        return int(self.take(1)[0])

    def expect(self, what: str, expected: int) -> None:
        got = self.int()
        if got != expected:
            raise ValueError(f"shape predictor file: {what} is {got}, expected {expected}")


def _floats(pairs: np.ndarray) -> np.ndarray:
    """float32 values of (..., 2) (mantissa, exponent) integer pairs, as dlib rebuilds them:
    ``ldexp((float) mantissa, exponent)``, exponents 32000-32002 meaning inf, -inf, nan."""
    mantissa, exponent = pairs[..., 0], pairs[..., 1]
    exponent_in_range = np.clip(exponent, -_MAX_EXPONENT, _MAX_EXPONENT)
    out = np.ldexp(mantissa.astype(np.float64), exponent_in_range).astype(np.float32)
    for code, value in _FLOAT_SPECIAL.items():
        out[exponent == code] = value
    return out


def _matrix_header(block: np.ndarray, rows: int, what: str) -> None:
    """Check column-vector headers (nr, nc): dlib writes -nr, -nc (older files nr, nc)."""
    if not ((np.abs(block[..., 0]) == rows) & (np.abs(block[..., 1]) == 1)).all():
        raise ValueError(f"shape predictor file: {what} is not a {rows}-vector")


def read_dat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The shape predictor in a dlib ``.dat`` file, as numpy arrays:

    ``initial_shape`` (2K,) float32 (x0, y0, x1, y1, ... in the unit box), ``split_idx1`` and
    ``split_idx2`` (C, T, S) int64 (feature pixels) and ``split_thresh`` (C, T, S) float32,
    splits breadth first,
    ``leaf_values`` (C, T, L, 2K) float32, ``anchor_idx`` (C, P) int64, ``deltas`` (C, P, 2)
    float32. Every tree must have the same depth (dlib's trainer makes them so).
    """
    raw = Path(path).read_bytes()
    data = np.zeros(len(raw) + _SPARE_BYTES, np.uint8)
    data[:len(raw)] = np.frombuffer(raw, np.uint8)
    tok = _Tokens(_decode_ints(data, _token_starts(data, len(raw))))
    tok.expect("version", _SHAPE_PREDICTOR_VERSION)
    head = tok.take(2)
    size = int(abs(head[0]))
    _matrix_header(head, size, "initial_shape")
    if size % 2:
        raise ValueError(f"shape predictor file: a mean shape of {size} values is not 2-D points")
    initial = _floats(tok.take(2 * size).reshape(size, 2))
    n_cascades = tok.int()
    idx1, idx2, thresh, leaves = [], [], [], []
    for _ in range(n_cascades):
        n_trees = tok.int()
        n_splits = tok.peek(0)
        n_leaves = tok.peek(1 + 4 * n_splits)
        if n_leaves != n_splits + 1 or n_leaves & (n_leaves - 1):
            raise ValueError(f"shape predictor file: {n_splits} splits and {n_leaves} leaves")
        leaf_len = 2 + 2 * size
        tree_len = 1 + 4 * n_splits + 1 + n_leaves * leaf_len
        trees = tok.take(n_trees * tree_len).reshape(n_trees, tree_len)
        if (trees[:, 0] != n_splits).any() or (trees[:, 1 + 4 * n_splits] != n_leaves).any():
            raise ValueError("shape predictor file: trees of different depths are not supported")
        splits = trees[:, 1:1 + 4 * n_splits].reshape(n_trees, n_splits, 4)
        leaf = trees[:, 2 + 4 * n_splits:].reshape(n_trees, n_leaves, leaf_len)
        _matrix_header(leaf, size, "a leaf")
        idx1.append(splits[..., 0].astype(np.int64))
        idx2.append(splits[..., 1].astype(np.int64))
        thresh.append(_floats(splits[..., 2:]))
        leaves.append(_floats(leaf[..., 2:].reshape(n_trees, n_leaves, size, 2)))
    tok.expect("anchor_idx cascades", n_cascades)
    anchors = []
    for _ in range(n_cascades):
        anchors.append(tok.take(tok.int()).astype(np.int64))
    tok.expect("deltas cascades", n_cascades)
    deltas = []
    for _ in range(n_cascades):
        deltas.append(_floats(tok.take(4 * tok.int()).reshape(-1, 2, 2)))
    if tok.pos != len(tok.values):
        raise ValueError(f"shape predictor file: {len(tok.values) - tok.pos} integers left over")
    out = {"initial_shape": initial, "split_idx1": np.stack(idx1), "split_idx2": np.stack(idx2),
           "split_thresh": np.stack(thresh), "leaf_values": np.stack(leaves),
           "anchor_idx": np.stack(anchors), "deltas": np.stack(deltas)}
    n_pixels = out["deltas"].shape[1]
    if max(out["split_idx1"].max(), out["split_idx2"].max()) >= n_pixels or \
            out["anchor_idx"].max() >= size // 2:
        raise ValueError("shape predictor file: an index is out of range")
    return out


# ---------------------------------------------------------------------------------------
# The .npz


def _encode_leaves(leaves: np.ndarray) -> dict[str, np.ndarray]:
    """Leaf values (..., K) as ``leaf_basis`` (K, K) float32, ``leaf_step`` and
    ``leaf_planes`` (4, M) uint8: the little-endian bytes of the zigzag-coded coefficients."""
    rows = leaves.reshape(-1, leaves.shape[-1]).astype(np.float64)
    _, vectors = np.linalg.eigh(rows.T @ rows)
    basis = np.ascontiguousarray(vectors[:, ::-1], dtype=np.float32)   # largest mode first
    q = np.round(rows @ basis.astype(np.float64) / LEAF_STEP).astype(np.int64)
    zigzag = np.where(q >= 0, 2 * q, -2 * q - 1)
    if zigzag.max() >= 2 ** 32:
        raise ValueError("leaf values too large for the leaf coding")
    planes = zigzag.astype("<u4").view(np.uint8).reshape(-1, 4).T
    return {"leaf_basis": basis, "leaf_step": np.float64(LEAF_STEP),
            "leaf_planes": np.ascontiguousarray(planes)}


def _decode_leaves(planes: np.ndarray, basis: np.ndarray, step: float, shape) -> np.ndarray:
    """The leaf values (float32, ``shape``) back from ``_encode_leaves``' arrays."""
    zigzag = np.ascontiguousarray(planes.T).view("<u4").ravel().astype(np.int64)
    q = (zigzag >> 1) ^ -(zigzag & 1)
    rows = q.reshape(-1, basis.shape[0]).astype(np.float64) * step
    return (rows @ basis.T.astype(np.float64)).astype(np.float32).reshape(shape)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npz(model: dict[str, np.ndarray], npz_path: str | os.PathLike, source_sha256: str) -> Path:
    """Write ``read_dat``'s arrays compactly (see the module docstring) to ``npz_path``,
    atomically (a temporary file renamed), with the source's SHA-256."""
    out = Path(npz_path)
    indices = {k: model[k] for k in ("anchor_idx", "split_idx1", "split_idx2")}
    if max(a.max() for a in indices.values()) > np.iinfo(np.int16).max:
        raise ValueError("shape predictor too large for int16 indices")
    small = {"initial_shape": model["initial_shape"].astype(np.float32),
             "deltas": model["deltas"].astype(np.float32),
             "split_thresh": model["split_thresh"].astype(np.float32),
             **{k: a.astype(np.int16) for k, a in indices.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, format_version=np.int64(FORMAT_VERSION),
                                source_sha256=np.str_(source_sha256), **small,
                                **_encode_leaves(model["leaf_values"]))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def convert(dat_path: str | os.PathLike, npz_path: str | os.PathLike) -> Path:
    """Convert dlib's ``.dat`` to the compact ``.npz`` (about 5 s); returns ``npz_path``."""
    return save_npz(read_dat(dat_path), npz_path, file_sha256(dat_path))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A converted predictor's arrays as ``read_dat`` gives them (leaf values decoded to
    float32), plus ``source_sha256``."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    version = int(arrays.pop("format_version", -1))
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format {version}, expected {FORMAT_VERSION}: convert again "
                         f"(tools/convert_shape_predictor.py)")
    n_cascades, n_trees, n_splits = arrays["split_thresh"].shape
    shape = (n_cascades, n_trees, n_splits + 1, arrays["initial_shape"].shape[0])
    arrays["leaf_values"] = _decode_leaves(arrays.pop("leaf_planes"), arrays.pop("leaf_basis"),
                                           float(arrays.pop("leaf_step")), shape)
    arrays["source_sha256"] = str(arrays["source_sha256"])
    return arrays


def default_path() -> Path:
    """Where the converted predictor lives: ``$POF_SHAPE68_NPZ``, else a cache in pof's models
    folder (not in git)."""
    return Path(os.environ.get(NPZ_ENV) or DEFAULT_NPZ)


# ---------------------------------------------------------------------------------------
# The predictor


class ShapePredictor68:
    """dlib's 68-point shape predictor on a torch device, for many faces at once."""

    def __init__(self, npz_path: str | os.PathLike, device="cpu") -> None:
        self._setup(load_npz(npz_path), torch.device(device))

    @classmethod
    def from_arrays(cls, model: dict[str, np.ndarray], device="cpu") -> ShapePredictor68:
        """The predictor from ``read_dat``'s arrays (exact leaf values), without an ``.npz``."""
        self = cls.__new__(cls)
        self._setup(model, torch.device(device))
        return self

    @classmethod
    def load(cls, device="cpu") -> ShapePredictor68:
        """The predictor at ``default_path()``, converted there first from dlib's ``.dat`` (the
        one in ``face_recognition_models``) if it is missing."""
        path = default_path()
        if not path.is_file():
            from pof.runtime.weights import dlib_model  # only here: the GPU machines have the .npz
            convert(dlib_model("shape68"), path)
        return cls(path, device)

    def _setup(self, model: dict[str, np.ndarray], device: torch.device) -> None:
        def tensor(a, dtype=None):
            return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

        self.device = device
        n_cascades, n_trees, n_splits = model["split_thresh"].shape
        self.depth = n_splits.bit_length()                  # n_splits == 2 ** depth - 1
        self.initial = tensor(model["initial_shape"], torch.float32).view(-1, 2)
        self.anchor = tensor(model["anchor_idx"], torch.long)                  # (C, P)
        self.deltas = tensor(model["deltas"], torch.float32)                   # (C, P, 2)
        self.idx1 = tensor(model["split_idx1"], torch.long).view(n_cascades, -1)   # (C, T*S)
        self.idx2 = tensor(model["split_idx2"], torch.long).view(n_cascades, -1)
        self.thresh = tensor(model["split_thresh"], torch.float32).view(n_cascades, -1)
        leaves = model["leaf_values"]
        self.leaves = tensor(leaves, torch.float32).view(n_cascades, -1, leaves.shape[-1])
        self.first_split = torch.arange(n_trees, device=device) * n_splits        # per tree
        self.leaf_offset = torch.arange(n_trees, device=device) * (n_splits + 1) - n_splits
        mean = self.initial.double()
        self._mean_centred = mean - mean.mean(0)
        self._mean_norm = (self._mean_centred ** 2).sum()

    @staticmethod
    def intensity(rgb: torch.Tensor) -> torch.Tensor:
        """dlib's intensity of RGB uint8 images (N, H, W, 3) or (N, 3, H, W) (channels last
        when the last axis has 3): ``(r + g + b) // 3``, uint8 (N, H, W)."""
        if rgb.ndim != 4 or 3 not in (rgb.shape[1], rgb.shape[-1]):
            raise ValueError(f"expected RGB images (N, H, W, 3) or (N, 3, H, W), got {tuple(rgb.shape)}")
        total = rgb.to(torch.int32).sum(3 if rgb.shape[-1] == 3 else 1)
        return torch.div(total, 3, rounding_mode="floor").to(torch.uint8)

    @torch.inference_mode()
    def predict(self, gray, rects, round_points: bool = True) -> torch.Tensor:
        """The 68 points (N, 68, 2) float32, (x, y) image pixels, of N faces.

        ``gray``: (N, H, W) intensities (uint8, or float holding whole levels; see
        ``intensity``), one image per face. Faces from images of different sizes: pad each
        image with zeros at the right and bottom to a common size; that changes nothing, as
        dlib reads 0 outside the image. ``rects``: (N, 4) whole pixels (left, top, right,
        bottom), as ``dlib.rectangle`` takes them. ``round_points``: True gives dlib's
        whole-pixel points, False the points before that rounding.
        """
        gray = torch.as_tensor(gray, device=self.device)
        rects = torch.as_tensor(np.asarray(rects) if not torch.is_tensor(rects) else rects,
                                device=self.device).to(torch.float64)
        if gray.ndim != 3 or rects.shape != (gray.shape[0], 4):
            raise ValueError(f"expected gray (N, H, W) and rects (N, 4), got {tuple(gray.shape)} "
                             f"and {tuple(rects.shape)}")
        n, height, width = gray.shape
        pixels = gray.reshape(-1)
        image_start = (torch.arange(n, device=self.device) * (height * width))[:, None]
        origin = rects[:, None, :2]                              # (N, 1, 2): left, top
        scale = rects[:, None, 2:] - origin                      # right - left, bottom - top
        shape = self.initial.expand(n, -1, -1)                   # (N, 68, 2), unit box
        for c in range(self.leaves.shape[0]):
            m = self._similarity(shape)                          # (N, 2, 2)
            dx, dy = self.deltas[c, :, 0], self.deltas[c, :, 1]  # (P,)
            anchor = shape[:, self.anchor[c]]                    # (N, P, 2)
            x = m[:, 0, 0, None] * dx + m[:, 0, 1, None] * dy + anchor[..., 0]
            y = m[:, 1, 0, None] * dx + m[:, 1, 1, None] * dy + anchor[..., 1]
            at = torch.floor(torch.stack([x, y], -1).double() * scale + origin + 0.5).long()
            px, py = at[..., 0], at[..., 1]
            inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
            flat = image_start + py.clamp(0, height - 1) * width + px.clamp(0, width - 1)
            values = torch.where(inside, pixels[flat].float(), 0.0)          # (N, P)
            node = torch.zeros(n, self.first_split.shape[0], dtype=torch.long, device=self.device)
            for _ in range(self.depth):                          # all trees, one level a step
                split = node + self.first_split
                diff = values.gather(1, self.idx1[c, split]) - values.gather(1, self.idx2[c, split])
                node = 2 * node + 1 + (diff <= self.thresh[c, split]).long()
            step = torch.nn.functional.embedding_bag(node + self.leaf_offset, self.leaves[c], mode="sum")
            shape = shape + step.view(shape.shape)
        points = shape.double() * scale + origin
        if round_points:
            points = torch.floor(points + 0.5)
        return points.float()

    def _similarity(self, shape: torch.Tensor) -> torch.Tensor:
        """The 2 x 2 part of dlib's similarity transform from the mean shape to each shape,
        (N, 2, 2) float32, computed in float64 as dlib does."""
        t = shape.double()
        t = t - t.mean(1, keepdim=True)
        f = self._mean_centred
        a = (f * t).sum((1, 2)) / self._mean_norm
        b = (f[:, 0] * t[..., 1] - f[:, 1] * t[..., 0]).sum(1) / self._mean_norm
        return torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2).float()
