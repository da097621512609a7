"""The GPU engine's quality stage gives the CPU pipeline's numbers: OpenCV's grey levels and
blur from the device, OpenCV's head pose from worker processes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from pof import Pipeline  # noqa: E402
from pof.stages import quality
from pof.gpu import poses as device_poses  # noqa: E402
from pof.gpu import quality as device_quality  # noqa: E402

from .conftest import DEMO, YALE  # noqa: E402

NAMES = ["subject01.normal", "subject02.glasses", "subject03.happy", "subject04.sad",
         "subject13.happy"]


@pytest.fixture(scope="module")
def faces():
    """Faces of real photos, with landmarks and crops, from the CPU pipeline."""
    pipe = Pipeline(attributes="off")
    photos = [np.asarray(Image.open(YALE / n).convert("RGB")) for n in NAMES]
    photos += [np.asarray(Image.open(p).convert("RGB")) for p in sorted((DEMO / "probes").glob("*.jpg"))]
    out = [(f, (p.shape[1], p.shape[0])) for p in photos for f in pipe.analyze(p)]
    assert len(out) >= len(photos)
    return out


def _crops(faces) -> torch.Tensor:
    return torch.from_numpy(np.stack([f.crop for f, _ in faces])).permute(0, 3, 1, 2)


def test_grey_levels_are_opencvs(faces):
    crops = _crops(faces)
    want = np.stack([cv2.cvtColor(f.crop, cv2.COLOR_RGB2GRAY) for f, _ in faces])
    got = device_quality.grey(crops).numpy()
    assert np.array_equal(got, want)
    # colour crops, where the three weights matter (Yale's are grey: R = G = B)
    assert any(np.ptp(f.crop.astype(int), axis=2).max() > 20 for f, _ in faces)


def test_blur_is_the_cpu_pipelines(faces):
    got = device_quality.blur(_crops(faces)).numpy()
    raw = []
    for f, _ in faces:
        g = cv2.cvtColor(f.crop, cv2.COLOR_RGB2GRAY)
        h, w = g.shape
        var = max(float(cv2.Laplacian(g[int(h * 0.3):int(h * 0.75), int(w * 0.2):int(w * 0.8)],
                                      cv2.CV_64F).var()), 1e-6)
        raw.append(np.clip(np.log(quality.SHARP_LAPLACIAN / var)
                           / np.log(quality.SHARP_LAPLACIAN / quality.FLAT_LAPLACIAN), 0, 1))
    np.testing.assert_allclose(got, raw, atol=1e-9)
    assert [round(float(b), 3) for b in got] == [f.blur for f, _ in faces]
    assert len(set(np.round(got, 2))) > 3        # the faces are not all alike


def test_poses_in_worker_processes_are_opencvs(faces, monkeypatch):
    """The same angles inline and from the worker processes, and the CPU pipeline's; a
    worker that dies costs nothing but time (its share is done in this process)."""
    from pof.runtime.workers import Workers

    size = faces[0][1]
    same = [f for f, s in faces if s == size]
    points = np.stack([f.landmarks68 for f in same])
    want = np.array([[f.pose.yaw, f.pose.pitch, f.pose.roll] for f in same])
    workers = Workers(2)
    poses = device_poses.Poses(workers)
    try:
        assert np.array_equal(poses.start(points, size).result(), want)    # inline
        assert workers._procs == []
        monkeypatch.setattr(device_poses, "INLINE_FACES", 0)
        assert np.array_equal(poses.start(points, size).result(), want)    # in the workers
        first = list(workers._procs)
        assert len(first) == 2 and all(p.poll() is None for p in first)
        assert np.array_equal(poses.start(points, size).result(), want)    # the same workers
        assert workers._procs == first
        first[0].kill()
        first[0].wait()
        assert np.array_equal(poses.start(points, size).result(), want)    # one new worker
        assert len(workers._procs) == 2 and workers._procs[0] is first[1]
        pending = poses.start(points, size)
        workers._procs[1].kill()
        assert np.array_equal(pending.result(), want)          # killed while at work
    finally:
        workers.close()
    assert workers._procs == [] and all(p.poll() is not None for p in first)


def test_workers_answer_in_order_and_survive_failures():
    """Shares come back in order; a function that fails in a worker is run here instead,
    where its error reaches the caller as it would without workers."""
    from pof.runtime.workers import Workers

    workers = Workers(3)
    try:
        assert workers.run("numpy:sort", np.array([], int)).result() == []
        parts = workers.run("numpy:sort", np.arange(10)[::-1]).result()
        assert [p.tolist() for p in parts] == [[6, 7, 8, 9], [2, 3, 4, 5], [0, 1]]
        with pytest.raises(TypeError):          # sorting str with None fails, here too
            workers.run("numpy:sort", np.array(["a", 1, "b", None], object)).result()
        assert len(workers._procs) == 3 and all(p.poll() is None for p in workers._procs)
    finally:
        workers.close()


def test_workers_that_cannot_start_leave_the_work_here(monkeypatch):
    from pof.runtime import workers as w

    def refuse(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(w.subprocess, "Popen", refuse)
    pool = w.Workers(2)
    parts = pool.run("numpy:sort", np.arange(5)[::-1]).result()
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3, 4]] and pool._procs == []


def test_complete_is_assess(faces):
    """``quality.complete`` with a face's own pose and blur gives what ``assess`` gave."""
    for f, size in faces:
        g = type(f)(index=f.index, box=f.box, det_score=f.det_score, landmarks5=f.landmarks5,
                    landmarks68=f.landmarks68, crop=f.crop)
        quality.complete(g, f.pose, f.blur)
        assert (g.interocular, g.pose, g.blur, g.quality) == (f.interocular, f.pose, f.blur, f.quality)


def test_blockiness_on_the_device_is_the_cpus():
    """JPEG blockiness of a batch, on the device, as ``pof.stages.restore.blockiness`` gives it, on
    photos saved at qualities from 5 (blocks plain to see) to 95, and on a photo too narrow
    for its columns to be read."""
    import io

    from pof.stages import restore
    from pof.gpu.restore import blockiness

    src = Image.open(DEMO / "probes" / "obama_joint_session_2009.jpg").convert("RGB")
    photos = []
    for q in (5, 10, 20, 50, 95):
        buf = io.BytesIO()
        src.save(buf, format="JPEG", quality=q)
        photos.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    want = [restore.blockiness(p) for p in photos]
    got = blockiness(torch.from_numpy(np.stack(photos))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] >= restore.HEAVY_BLOCKINESS > got[-1]
    thin = np.ascontiguousarray(photos[0][:, :12])
    assert blockiness(torch.from_numpy(thin[None])).item() == pytest.approx(restore.blockiness(thin), rel=1e-12)
    tiny = np.ascontiguousarray(photos[0][:12, :12])
    assert blockiness(torch.from_numpy(tiny[None])).item() == restore.blockiness(tiny) == 1.0


def test_attributes_from_worker_processes_are_the_same(faces):
    """pof build --device cuda scores a batch's attributes in the engine's worker processes:
    the same scores as in this process."""
    import copy

    from pof.stages.attributes import WORKER_MIN_FACES, AttributeStage
    from pof.runtime.workers import Workers

    batch = [copy.copy(f) for f, _ in faces] * 3
    assert len(batch) >= WORKER_MIN_FACES
    stage = AttributeStage()
    here = [copy.copy(f) for f in batch]
    stage.estimate(here)
    workers = Workers(2)
    try:
        there = [copy.copy(f) for f in batch]
        stage.estimate(there, workers=workers)
        assert len(workers._procs) == 2
    finally:
        workers.close()
    assert all(len(f.attributes) >= 15 for f in here)    # fewer on grey photos (no colour)
    assert [f.attributes for f in there] == [f.attributes for f in here]
