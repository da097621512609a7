"""Video search with the GPU engine (run on the CPU, as tests/test_gpu_engine.py runs it): the
frames go in batches, and the tracks and decisions are those of one frame at a time."""
from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from .conftest import run_pof  # noqa: E402
from .videokit import pan, photo, write_clip  # noqa: E402
from .webkit import build_dataset  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from pof.dataset.handle import Dataset
    d = tmp_path_factory.mktemp("gpuvideo")
    ds_dir = build_dataset(d / "ds")
    # subject01 for 1.4 s, a cut, subject04 for 2 s: the cut falls inside a batch of 4
    clip = write_clip(d / "cut.mp4", itertools.chain(
        pan(photo("subject01.glasses"), 14),
        pan(photo("subject04.normal"), 20, background=200, dx=-1, scale=0.8, zoom=0.004)))
    ds = Dataset.open(ds_dir)
    return ds_dir, ds, clip


def test_batched_frames_give_the_tracks_and_decisions_of_one_frame_at_a_time(setup):
    from pof.gpu.engine import GpuEngine
    from pof.video.search import search_video
    _, ds, clip = setup
    pipeline = ds.pipeline()
    searcher = ds.searcher()
    engine = GpuEngine("cpu", settings={**pipeline.settings, "gpu_batch": 4})
    try:
        assert engine.batch_size == 4
        batched = search_video(str(clip), engine, searcher).to_json()
    finally:
        engine.close()
    single = search_video(str(clip), pipeline, searcher).to_json()
    assert batched["error"] is single["error"] is None
    assert batched["frames_read"] == single["frames_read"] == 34
    assert batched["frames_analysed"] == single["frames_analysed"]
    assert len(batched["tracks"]) == len(single["tracks"]) == 2       # the cut ended a track
    for b, s in zip(batched["tracks"], single["tracks"]):
        for key in ("track", "start", "end", "frames_used", "best_frame_time", "decision"):
            assert b[key] == s[key], key
        assert [c["person"] for c in b["candidates"]] == [c["person"] for c in s["candidates"]]
        for cb, cs in zip(b["candidates"], s["candidates"]):
            assert cb["score"] == pytest.approx(cs["score"], abs=2e-3)
        assert b["box"] == pytest.approx(s["box"], abs=0.2)
    assert batched["tracks"][0]["candidates"][0]["person"] == "subject01"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here")
def test_device_cuda_without_a_gpu_is_one_clear_line(setup):
    ds_dir, _, clip = setup
    r = run_pof("search", ds_dir, clip, "--device", "cuda")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "no CUDA GPU can be used here" in r.stderr and len(r.stderr.strip().splitlines()) == 1
