"""The real models on real faces: detection, landmarks, descriptors, quality."""
from __future__ import annotations

import numpy as np
import pytest

from pof import Pipeline
from pof.errors import NoFaceError

from .conftest import DEMO, YALE, noise_image


def test_face_record_is_filled(pipeline):
    faces = pipeline.analyze_file(YALE / "subject01.normal")
    assert len(faces) == 1
    f = faces[0]
    x, y, w, h = f.box
    assert 80 < x < 160 and 30 < y < 120 and 90 < w < 180 and f.det_score > 0.95
    assert f.landmarks5.shape == (5, 2) and f.landmarks68.shape == (68, 2)
    le, re, nose, ml, mr = f.landmarks5
    assert le[0] < re[0] and max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])
    # the 68-point eyes agree with the detector's eyes within a few pixels
    assert np.linalg.norm(f.landmarks68[36:42].mean(0) - le) < 6
    assert f.crop.shape == (280, 200, 3)
    assert f.descriptor.shape == (320,) and abs(np.linalg.norm(f.descriptor) - 1) < 1e-5
    assert abs(f.pose.yaw) < 20 and abs(f.pose.roll) < 10 and f.quality > 0.5


def test_same_person_scores_higher(pipeline):
    d = {n: pipeline.analyze_file(YALE / n)[0].descriptor for n in
         ("subject01.normal", "subject01.glasses", "subject02.normal", "subject03.normal")}
    same = d["subject01.normal"] @ d["subject01.glasses"]
    assert same > d["subject01.normal"] @ d["subject02.normal"]
    assert same > d["subject01.normal"] @ d["subject03.normal"]


def test_no_face(pipeline, tmp_path):
    with pytest.raises(NoFaceError):
        pipeline.analyze_file(noise_image(tmp_path / "n.png"))


def test_hog_backend_fills_landmarks():
    faces = Pipeline(detector="hog").analyze_file(YALE / "subject02.normal")
    assert len(faces) == 1 and faces[0].landmarks5.shape == (5, 2)
    assert faces[0].descriptor.shape == (320,)


def test_rotated_face_same_descriptor(pipeline):
    from PIL import Image
    img = Image.open(YALE / "subject03.normal").convert("RGB")
    a = pipeline.analyze(np.asarray(img))[0]
    b = pipeline.analyze(np.asarray(img.rotate(30, resample=Image.BILINEAR, expand=True, fillcolor=(128, 128, 128))))[0]
    assert abs(b.pose.roll + 30) < 8          # rotate() turns counter-clockwise
    assert a.descriptor @ b.descriptor > 0.93


def test_portrait_photo(pipeline):
    faces = pipeline.analyze_file(DEMO / "gallery" / "obama_official_portrait_2012.jpg")
    best = faces[0]
    assert best.det_score > 0.99 and best.interocular > 50 and best.quality > 0.5
    # anything else found in the photo is a weak, small detection, far below the portrait
    assert all(f.det_score < 0.9 and f.box[2] < best.box[2] / 3 for f in faces[1:])


def test_head_pose_recovers_known_poses():
    """The generic head projected at a known pose gives that pose back."""
    import cv2

    from pof.stages import quality
    w, h, f = 640, 480, 640.0
    cam = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    full = np.zeros((68, 2))
    for yaw in (-50.0, -20.0, 0.0, 30.0, 55.0):
        # the fit's own convention: the mirrored head at negative depth (see head_pose)
        rot = cv2.Rodrigues(np.array([0.0, 0.0, np.pi]))[0] @ cv2.Rodrigues(np.array([0.0, np.radians(-yaw), 0.0]))[0]
        pts, _ = cv2.projectPoints(quality._MODEL_3D * [1, -1, 1], cv2.Rodrigues(rot)[0],
                                   np.array([0.0, 0.0, -600.0]), cam, None)
        full[quality._MODEL_IDX] = pts[:, 0]
        full[36:42], full[42:48] = full[36], full[45]       # eye centres at the corners
        pose = quality.head_pose(full, (w, h))
        assert abs(abs(pose.yaw) - abs(yaw)) < 0.2 and abs(pose.pitch) < 0.2


def test_head_pose_of_a_frontal_face_is_frontal(pipeline):
    """Yale's subject13.happy is a frontal photo; OpenCV's first fit of it is a mirrored head
    at positive depth (pitch -33.5 degrees), which head_pose now fits again."""
    for name in ("subject13.happy", "subject01.normal", "subject02.normal"):
        pose = pipeline.analyze_file(YALE / name, with_crops=False)[0].pose
        assert abs(pose.yaw) < 15 and abs(pose.pitch) < 15, (name, pose)
