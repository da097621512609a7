"""Worker processes: results in input order, one OpenCV thread each."""
from __future__ import annotations

import cv2
import numpy as np

from pof.runtime.workers import pipeline_map
from pof.pipeline import Pipeline


def _threads(pipeline, i: int) -> tuple[int, int]:
    cv2.GaussianBlur(np.zeros((64, 64), np.uint8), (5, 5), 0)   # runs on OpenCV's pool, if any
    return i, cv2.getNumThreads()


def test_workers_keep_order_and_run_opencv_on_one_thread():
    cv2.GaussianBlur(np.zeros((512, 512), np.uint8), (5, 5), 0)   # this process's pool is started
    before = cv2.getNumThreads()
    out = list(pipeline_map(Pipeline(), _threads, ((i,) for i in range(9)), workers=2))
    assert out == [(i, 1) for i in range(9)]
    assert cv2.getNumThreads() == before


def _predictor_id(pipeline, i: int) -> tuple[int, int]:
    return i, id(pipeline._landmarks.predictor) if pipeline._landmarks is not None else 0


def test_workers_inherit_the_loaded_landmark_model():
    """dlib's 68-point model is read once by the parent and shared with the forked workers
    (one copy in memory: 100 MB less a worker), not read again by each."""
    import multiprocessing

    from pof.runtime import workers

    pipe = Pipeline()
    out = list(pipeline_map(pipe, _predictor_id, ((i,) for i in range(4)), workers=2))
    assert [i for i, _ in out] == list(range(4))
    if multiprocessing.get_start_method() == "fork":
        assert {p for _, p in out} == {id(pipe.landmarks.predictor)}
    assert workers._INHERITED == {}           # nothing kept after the map


def _square(i: int) -> int:
    return i * i


def _square_with(pipeline, i: int) -> int:
    return i * i


def test_both_pools_have_one_interface():
    """The forked pipeline pool and the GPU engine's spawned workers both map a function over
    jobs, results in order, and close."""
    from pof.runtime.workers import PipelinePool, Pool, Workers
    forked, spawned = PipelinePool(Pipeline(), 2), Workers(2)
    try:
        assert isinstance(forked, Pool) and isinstance(spawned, Pool)
        assert list(forked.map(_square_with, ((i,) for i in range(7)))) == [i * i for i in range(7)]
        assert list(spawned.map(_square, ((i,) for i in range(7)))) == [i * i for i in range(7)]
        assert list(spawned.map("tests.test_parallel:_square", [(3,)])) == [9]
        assert list(spawned.map(_square, [])) == []
    finally:
        forked.close()
        spawned.close()
