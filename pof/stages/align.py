"""Geometry of the align stage, as pure functions with named constants.

Two outputs per face: (a) the dataset crop, CROP_W x CROP_H = 200 x 280 pixels, one face
centred, made by the similarity transform that best maps the face's 5 landmarks onto
CROP_TEMPLATE; (b) the recognizer's 150 x 150 chip, made by dlib's own ``get_face_chip`` from
the 68 landmarks (see ``pof.stages.embed.dlib_resnet``).
"""
from __future__ import annotations

import cv2
import numpy as np

CROP_W, CROP_H = 200, 280

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


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) taking ``src`` points onto
    ``dst`` points, both (N, 2). Returns a 2 x 3 float64 matrix (Umeyama's method)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var = (s ** 2).sum() / len(src)
    scale = (sig * np.diag(sign)).sum() / var if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine matrix to points (N, 2); returns float32 (N, 2)."""
    pts = np.asarray(points, np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2 x 3 affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample ``image`` through ``matrix`` (source -> output) into ``size`` = (w, h).

    When the transform shrinks by more than 2x the source is first area-averaged down, so
    large faces do not alias.
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        f = 1.0 / (2.0 * scale)                     # shrink by f, leave a 2x margin for warp
        small = cv2.resize(image, (max(1, int(image.shape[1] / f)), max(1, int(image.shape[0] / f))),
                           interpolation=cv2.INTER_AREA)
        fx, fy = image.shape[1] / small.shape[1], image.shape[0] / small.shape[0]
        matrix = matrix @ np.array([[fx, 0, 0], [0, fy, 0], [0, 0, 1]], np.float64)
        image = small
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_face(image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 200 x 280 dataset crop of one face. Returns (crop uint8 (280, 200, 3), matrix 2 x 3
    mapping source pixels to crop pixels)."""
    m = similarity_matrix(landmarks5, CROP_TEMPLATE)
    return warp(image, m, (CROP_W, CROP_H)), m


def frame_matrix(landmarks5: np.ndarray) -> np.ndarray:
    """2 x 3 matrix taking source pixels to the upright FRAME_SIZE square frame."""
    return similarity_matrix(landmarks5, FRAME_TEMPLATE)


def roll_degrees(landmarks5: np.ndarray) -> float:
    """In-plane tilt of the eye line, degrees, + clockwise in the image."""
    d = np.asarray(landmarks5[1], np.float64) - landmarks5[0]
    return float(np.degrees(np.arctan2(d[1], d[0])))
