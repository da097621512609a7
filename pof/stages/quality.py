"""The quality stage: measured, not learned.

- interocular: eye-centre distance in source pixels (resolution of the face).
- pose: yaw, pitch, roll in degrees, from the 68 landmarks and a generic 3-D face (solvePnP).
- blur: 0 (sharp) .. 1 (very blurred), from the variance of the Laplacian of the face crop, on
  a log scale (bench/blur_sweep.py: a Gaussian blur of 3% of the eye distance already divides
  the variance by 8; the log keeps the range where identification fails readable).
- quality: 0..1, the product of a size, a sharpness and a pose factor (documented below).
"""
from __future__ import annotations

import cv2
import numpy as np

from pof.stages.align import roll_degrees
from pof.stages.arrays import namespace
from pof.stages.landmarks import five_from_68
from pof.record import Face, Pose

# Generic 3-D positions (mm) of six iBUG points: nose tip 30, chin 8, eye outer corners 36
# and 45, mouth corners 48 and 54 (a common approximation of an average adult head).
_MODEL_3D = np.array([[0.0, 0.0, 0.0], [0.0, -63.6, -12.5], [-43.3, 32.7, -26.0],
                      [43.3, 32.7, -26.0], [-28.9, -28.9, -24.1], [28.9, -28.9, -24.1]])
_MODEL_IDX = [30, 8, 36, 45, 48, 54]
_EYE_SPAN_MM = float(_MODEL_3D[3, 0] - _MODEL_3D[2, 0])    # the model's eye outer corners apart

GOOD_INTEROCULAR = 40.0    # px between eye centres at which size stops limiting quality
SHARP_LAPLACIAN = 150.0    # Laplacian variance of a sharp 200 x 280 crop (blur 0)
FLAT_LAPLACIAN = 2.5       # ... of a crop blurred beyond recognition (blur 1)


def head_pose(landmarks68: np.ndarray, image_size: tuple[int, int]) -> Pose:
    """Yaw, pitch, roll (degrees) of a face from its 68 landmarks; image_size is (w, h).

    The generic head is flipped top to bottom (y up -> image y down), which mirrors it; a
    mirrored head seen from behind the camera (negative depth) projects exactly as the real
    head in front of it, so the fits that mean something are those at negative depth. OpenCV's
    iterative fit, started from its linear estimate, ends at positive depth on about 4.5% of
    LFW faces (and on Yale's subject13.happy, a frontal face it called 33 degrees nodded): a
    mirrored head, often a poor fit, whose angles mean nothing. Those faces are fitted again
    from a frontal head at the distance their eye-corner spacing gives (BENCHMARKS.md,
    "Pose")."""
    w, h = image_size
    f = float(max(w, h))
    cam = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float64)
    pts = np.asarray(landmarks68, np.float64)[_MODEL_IDX]
    pts3 = _MODEL_3D * [1, -1, 1]          # model y up -> image y down
    ok, rvec, tvec = cv2.solvePnP(pts3, pts, cam, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] > 0:
        span = max(float(np.linalg.norm(pts[3] - pts[2])), 1.0)     # eye outer corners, px
        start_r = np.array([[0.0], [0.0], [np.pi]])                  # upright, facing the camera
        start_t = np.array([[0.0], [0.0], [-f * _EYE_SPAN_MM / span]])
        ok2, rvec2, tvec2 = cv2.solvePnP(pts3, pts, cam, None, start_r, start_t, True,
                                         cv2.SOLVEPNP_ITERATIVE)
        if ok2 and tvec2[2, 0] < 0:
            ok, rvec = True, rvec2
    if not ok:
        return Pose(0.0, 0.0, 0.0)
    yaw, pitch = yaw_pitch(cv2.Rodrigues(rvec)[0])
    roll = roll_degrees(five_from_68(landmarks68))
    return Pose(round(yaw, 1), round(pitch, 1), round(roll, 1))


def yaw_pitch(rot: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch (degrees) of the head fit's 3 x 3 rotation, pitch folded into -90..90."""
    yaw = np.degrees(np.arctan2(-rot[2, 0], np.hypot(rot[0, 0], rot[1, 0])))
    pitch = (np.degrees(np.arctan2(rot[2, 1], rot[2, 2])) + 180) % 360 - 180
    if pitch > 90:
        pitch -= 180
    elif pitch < -90:
        pitch += 180
    return float(yaw), float(pitch)


def centre_area(height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of a crop's central face area, where blur is measured."""
    return slice(int(height * 0.3), int(height * 0.75)), slice(int(width * 0.2), int(width * 0.8))


def blur_of(crop: np.ndarray) -> float:
    """0 (sharp) .. 1 (very blurred) from the Laplacian variance v of the central face area:
    log(SHARP / v) / log(SHARP / FLAT), clipped. A small face upscaled to the crop, or a very
    dark one, has little detail too, and reads as blurred: for identification it is."""
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    centre = gray[centre_area(*gray.shape)]
    return round(float(blur_scale(np.float64(cv2.Laplacian(centre, cv2.CV_64F).var()))), 3)


def blur_scale(variance):
    """Blur 0..1 from Laplacian variances (a number, or an array of them; numpy or torch):
    log(SHARP / v) / log(SHARP / FLAT), clipped, v at least 1e-6 (not rounded)."""
    xp = namespace(variance)
    var = xp.clip(variance, 1e-6, None)
    span = xp.log(xp.asarray(SHARP_LAPLACIAN / FLAT_LAPLACIAN, dtype=xp.float64))
    return xp.clip(xp.log(SHARP_LAPLACIAN / var) / span, 0.0, 1.0)


def assess(face: Face, image_size: tuple[int, int]) -> None:
    """Fill interocular, pose, blur and quality of an aligned face with 68 landmarks.

    quality = size * sharpness * pose, where size = min(1, interocular / 40 px),
    sharpness = 1 - 0.7 * blur, pose = cos(yaw) * cos(pitch) (clipped at 0).
    """
    pose = head_pose(face.landmarks68, image_size) if face.landmarks68 is not None else Pose(0, 0, 0)
    blur = blur_of(face.crop) if face.crop is not None else 0.0
    complete(face, pose, blur)


def complete(face: Face, pose: Pose, blur: float) -> None:
    """Fill interocular, pose, blur and quality of a face whose pose and blur were measured
    elsewhere (the GPU engine measures them for many faces at once), as ``assess`` does."""
    face.interocular = float(np.linalg.norm(face.landmarks5[1] - face.landmarks5[0]))
    face.pose, face.blur = pose, blur
    size = min(1.0, face.interocular / GOOD_INTEROCULAR)
    cos_pose = max(0.0, np.cos(np.radians(pose.yaw)) * np.cos(np.radians(pose.pitch)))
    face.quality = round(float(size * (1.0 - 0.7 * blur) * cos_pose), 3)


def head_poses(landmarks68: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``head_pose`` of many faces (N, 68, 2) of one photo size: (N, 3) yaw, pitch, roll.
    A plain function of arrays, so that worker processes can run it (pof.gpu.poses)."""
    out = np.zeros((len(landmarks68), 3))
    for i, points in enumerate(landmarks68):
        p = head_pose(points, image_size)
        out[i] = p.yaw, p.pitch, p.roll
    return out
