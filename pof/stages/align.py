"""Geometry of the align stage, as pure functions with named constants.

Two outputs per face: (a) the dataset crop, CROP_W x CROP_H = 200 x 280 pixels, one face
centred, made by the similarity transform that best maps the face's 5 landmarks onto
CROP_TEMPLATE; (b) the recognizer's 150 x 150 chip, made by dlib's own ``get_face_chip`` from
the 68 landmarks (see ``pof.stages.embed.dlib_resnet``).
"""
from __future__ import annotations

import cv2
import numpy as np

from pof.stages.arrays import as_type, device, namespace

CROP_W, CROP_H = 200, 280
# ``warp`` area-averages the photo down first where the transform scales by less than this
AREA_SHRINK_BELOW = 0.5

# ArcFace's 112 x 112 five-point template, the de facto standard face layout.
_ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
CROP_INTEROCULAR = 60.0   # eye-centre distance in the crop, pixels
CROP_EYE_Y = 118.0        # height of the eye line in the crop, pixels (leaves room for hair)


def _scaled_template(interocular: float, centre_x: float, eye_y: float) -> np.ndarray:
    t = _ARCFACE_112.copy()
    eyes = t[:2].mean(axis=0)
    scale = interocular / np.linalg.norm(t[1] - t[0])
    return ((t - eyes) * scale + [centre_x, eye_y]).astype(np.float32)


CROP_TEMPLATE = _scaled_template(CROP_INTEROCULAR, CROP_W / 2, CROP_EYE_Y)

# The upright frame in which the 68-point predictor runs: eyes level, fixed scale.
FRAME_SIZE = 256
FRAME_TEMPLATE = _scaled_template(64.0, FRAME_SIZE / 2, FRAME_SIZE * 0.40)


def similarity_matrix(src, dst):
    """Least-squares similarity (rotation, uniform scale, shift) taking ``src`` points onto
    ``dst`` points (Umeyama's method): src (K, 2) -> a 2 x 3 matrix, or src (N, K, 2) -> (N,
    2, 3), each face fitted on its own; dst (K, 2) or shaped as src. float64, numpy arrays or
    torch tensors (``pof.stages.arrays``)."""
    xp = namespace(src)
    src = as_type(src, "float64")
    dst = as_type(dst, "float64", like=src)
    k = src.shape[-2]
    mu_s, mu_d = src.mean(axis=-2), dst.mean(axis=-2)
    s, d = src - mu_s[..., None, :], dst - mu_d[..., None, :]
    cov = d.swapaxes(-1, -2) @ s / k
    u, sig, vt = xp.linalg.svd(cov)
    # a reflection is turned into a rotation by flipping the smaller axis
    sign = xp.ones(sig.shape, dtype=xp.float64, device=device(src))
    sign[..., 1] = xp.where(xp.linalg.det(u) * xp.linalg.det(vt) < 0, -1.0, 1.0)
    rot = u @ (sign[..., :, None] * vt)
    var = (s ** 2).sum(axis=(-2, -1)) / k
    flat = var > 0
    scale = xp.where(flat, (sig * sign).sum(axis=-1) / xp.where(flat, var, 1.0), 1.0)
    m = xp.zeros(rot.shape[:-2] + (2, 3), dtype=xp.float64, device=device(src))
    m[..., :2] = scale[..., None, None] * rot
    m[..., 2] = mu_d - (m[..., :2] @ mu_s[..., :, None])[..., 0]
    return m


def transform_points(points, matrix):
    """Apply a 2 x 3 affine matrix to points (K, 2), or (N, 2, 3) matrices to (N, K, 2):
    float32 points."""
    pts = as_type(points, "float64", like=matrix)
    out = pts @ matrix[..., :2].swapaxes(-1, -2) + matrix[..., None, :, 2]
    return as_type(out, "float32")


def invert(matrix):
    """Inverse of a 2 x 3 affine matrix, or of each of (N, 2, 3), float64: the formula of
    OpenCV's ``invertAffineTransform`` (a singular matrix gives zeros)."""
    xp = namespace(matrix)
    m = as_type(matrix, "float64")
    det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    r = xp.where(det != 0, 1.0 / xp.where(det != 0, det, 1.0), 0.0)
    inv = xp.zeros(m.shape, dtype=xp.float64, device=device(m))
    inv[..., 0, 0], inv[..., 1, 1] = m[..., 1, 1] * r, m[..., 0, 0] * r
    inv[..., 0, 1], inv[..., 1, 0] = -m[..., 0, 1] * r, -m[..., 1, 0] * r
    inv[..., 0, 2] = -inv[..., 0, 0] * m[..., 0, 2] - inv[..., 0, 1] * m[..., 1, 2]
    inv[..., 1, 2] = -inv[..., 1, 0] * m[..., 0, 2] - inv[..., 1, 1] * m[..., 1, 2]
    return inv


def linear_scale(matrix):
    """How much an affine matrix (2 x 3, or (N, 2, 3)) scales areas, as a length factor:
    sqrt(|det|) of its linear part."""
    xp = namespace(matrix)
    m = as_type(matrix, "float64")
    return xp.sqrt(xp.abs(m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]))


def shrink_plan(matrix, width: int, height: int):
    """How ``warp`` resamples a ``width`` x ``height`` photo through ``matrix`` (2 x 3, or
    (N, 2, 3)): (shrunk, small, factor). Where the transform scales by less than
    AREA_SHRINK_BELOW (``shrunk``), the photo is first area-averaged down by f = 1 / (2 scale)
    to whole pixels, ``small`` (w, h) int64, and the matrix is stretched by ``factor`` =
    (width, height) / small, so large faces do not alias; elsewhere small is the photo's size
    and factor 1. numpy arrays."""
    scale = np.asarray(linear_scale(np.asarray(matrix, np.float64)))
    shrunk = scale < AREA_SHRINK_BELOW
    f = 1.0 / (2.0 * np.where(shrunk, scale, 1.0))
    small = np.stack([np.maximum(1, (width / f).astype(np.int64)),
                      np.maximum(1, (height / f).astype(np.int64))], -1)
    small[~shrunk] = (width, height)
    return shrunk, small, np.array([width, height]) / small


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` through ``matrix`` (source -> output) into ``size`` = (w, h).

    When the transform shrinks by more than 2x the source is first area-averaged down, so
    large faces do not alias (``shrink_plan``).
    """
    shrunk, small, (fx, fy) = shrink_plan(matrix, image.shape[1], image.shape[0])
    if shrunk:
        image = cv2.resize(image, tuple(int(v) for v in small), interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.array([[fx, 0, 0], [0, fy, 0], [0, 0, 1]], np.float64)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 200 x 280 dataset crop of one face. Returns (crop uint8 (280, 200, 3), matrix 2 x 3
    mapping source pixels to crop pixels)."""
    m = crop_matrix(landmarks5)
    return warp(image, m, (CROP_W, CROP_H)), m


def crop_matrix(landmarks5):
    """2 x 3 matrix (or (N, 2, 3) for (N, 5, 2) landmarks) taking source pixels to the
    dataset crop."""
    return similarity_matrix(landmarks5, CROP_TEMPLATE)


def frame_matrix(landmarks5):
    """2 x 3 matrix (or (N, 2, 3) for (N, 5, 2) landmarks) taking source pixels to the
    upright FRAME_SIZE square frame."""
    return similarity_matrix(landmarks5, FRAME_TEMPLATE)


def roll_degrees(landmarks5: np.ndarray) -> float:
    """In-plane tilt of the eye line, degrees, + clockwise in the image."""
    d = np.asarray(landmarks5[1], np.float64) - landmarks5[0]
    return float(np.degrees(np.arctan2(d[1], d[0])))
