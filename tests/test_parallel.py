"""Worker processes: results in input order, one OpenCV thread each."""
from __future__ import annotations

import cv2
import numpy as np

from pof.parallel import pipeline_map
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
