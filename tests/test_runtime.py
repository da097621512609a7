"""The detector's two CPU runtimes, OpenVINO (for pof serve and long builds, where installed)
and ONNX Runtime (the rest), run the same ONNX files and must find the same faces on real
photos."""
from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from PIL import Image

from pof.dataset.build import Builder
from pof.pipeline import OPENVINO_MIN_PHOTOS
from pof.stages.detect.mtcnn import MODEL_DIR, MTCNNDetector
from pof.runtime.device import cpu_runtime
from pof.runtime.sessions import OpenVinoSession
from pof.errors import PofError, SettingError
from pof.settings import check

from .conftest import DEMO, YALE


def _photos() -> list[np.ndarray]:
    files = sorted(YALE.glob("subject*"))[:6] + sorted(DEMO.rglob("*.jpg"))[:3]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def test_openvino_and_onnxruntime_find_the_same_faces():
    ov = MTCNNDetector(runtime="openvino")
    ort = MTCNNDetector(runtime="onnxruntime")
    photos = _photos()
    total = 0
    for img in photos:
        a, b = ov.detect(img), ort.detect(img)
        assert len(a) == len(b) >= 1
        for x, y in zip(a, b):
            assert np.abs(np.subtract(x.box, y.box)).max() < 0.05
            assert np.abs(x.landmarks5 - y.landmarks5).max() < 0.05
            assert abs(x.score - y.score) < 1e-4
        total += len(a)
    assert total >= len(photos)
    assert type(ov._sessions["pnet"]).__name__ == "OpenVinoSession"
    assert type(ort._sessions["pnet"]).__name__ == "InferenceSession"


def test_session_outputs_by_name_match_onnxruntime():
    import onnxruntime

    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 48, 48)).astype(np.float32)
    ov = OpenVinoSession(MODEL_DIR / "onet.onnx")
    ref = onnxruntime.InferenceSession(str(MODEL_DIR / "onet.onnx"), providers=["CPUExecutionProvider"])
    want = dict(zip(["reg", "landmarks", "prob"], ref.run(None, {"input": x})))
    got = ov.run(["prob", "reg"], {"input": x})
    assert [g.shape for g in got] == [(5, 2), (5, 4)]
    np.testing.assert_allclose(got[0], want["prob"], atol=1e-5)
    np.testing.assert_allclose(got[1], want["reg"], atol=1e-5)
    assert len(ov.run(None, {"input": x})) == 3
    with pytest.raises(PofError, match="no output named"):
        ov.run(["age"], {"input": x})


def test_session_is_safe_across_threads():
    """The web app calls the pipeline from a thread pool: each thread gets its own request."""
    ov = OpenVinoSession(MODEL_DIR / "rnet.onnx")
    rng = np.random.default_rng(1)
    inputs = [rng.uniform(-1, 1, (n, 3, 24, 24)).astype(np.float32) for n in (3, 7, 11, 2)]
    want = [ov.run(None, {"input": x}) for x in inputs]
    got: dict[int, list] = {}

    def work(i: int) -> None:
        for _ in range(20):
            out = ov.run(None, {"input": inputs[i]})
            if any(not np.array_equal(o, w) for o, w in zip(out, want[i])):
                got[i] = out
                return
        got.setdefault(i, [])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {i: [] for i in range(len(inputs))}


def test_runtime_choice_and_errors(monkeypatch, tmp_path):
    assert cpu_runtime("auto", long_job=True) == "openvino"     # installed with pof
    assert cpu_runtime("auto") == "onnxruntime"       # one-off commands: no 0.2 s to load it
    assert cpu_runtime("onnxruntime", long_job=True) == "onnxruntime"
    assert MTCNNDetector().runtime == "auto"
    builder = Builder(tmp_path / "a")
    assert builder.runtime_for(OPENVINO_MIN_PHOTOS) == "openvino"     # a long build
    assert builder.runtime_for(OPENVINO_MIN_PHOTOS - 1) == "onnxruntime"
    assert Builder(tmp_path / "b", runtime="onnxruntime").runtime_for(10**6) == "onnxruntime"
    assert Builder(tmp_path / "b", runtime="openvino").runtime_for(1) == "openvino"
    with pytest.raises(SettingError):
        check("runtime", "tensorrt")
    with pytest.raises(SettingError, match="CPU only"):
        MTCNNDetector(runtime="openvino", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setitem(sys.modules, "openvino", None)   # as if not installed
    assert cpu_runtime("auto", long_job=True) == "onnxruntime"
    assert Builder(tmp_path / "c").runtime_for(10**6) == "onnxruntime"
    with pytest.raises(SettingError, match="pip install openvino"):
        cpu_runtime("openvino")
    with pytest.raises(SettingError, match="pip install openvino"):
        MTCNNDetector(runtime="openvino").detect(_photos()[0])
    det = MTCNNDetector()                                 # auto falls back, still finds faces
    assert det.detect(_photos()[0])
    assert type(det._sessions["pnet"]).__name__ == "InferenceSession"


def test_builds_with_either_runtime_give_the_same_faces(tmp_path):
    """Worker processes run the detector with the runtime the build picked."""
    import json
    import shutil

    src = tmp_path / "src" / "subject01"
    src.mkdir(parents=True)
    for name in ("subject01.normal", "subject01.happy", "subject02.glasses"):
        shutil.copy(YALE / name, src / name)
    found = {}
    for runtime in ("openvino", "onnxruntime"):
        builder = Builder(tmp_path / runtime, workers=2, runtime=runtime)
        report = builder.run([str(tmp_path / "src")], progress=False)
        assert builder.pipeline.settings["runtime"] == runtime
        assert report.added_faces == 3
        meta = json.loads((tmp_path / runtime / "metadata.json").read_text())
        found[runtime] = {m["id"]: m["box"] for m in meta}
    assert found["openvino"].keys() == found["onnxruntime"].keys()
    for k, box in found["openvino"].items():
        assert np.abs(np.subtract(box, found["onnxruntime"][k])).max() <= 0.1
    small = Builder(tmp_path / "auto")
    small.run([str(tmp_path / "src")], progress=False)
    assert small.pipeline.settings["runtime"] == "onnxruntime"     # 3 photos: not worth loading it


def test_serve_runs_the_detector_with_openvino_on_every_core(tmp_path, monkeypatch):
    """pof serve is a long job that analyses one photo at a time: OpenVINO, and every core
    for each model, unless the settings say otherwise."""
    import os
    import shutil

    from pof.web.app import create_app

    from .webkit import build_dataset, web_config

    ds = shutil.copytree(build_dataset(tmp_path / "build"), tmp_path / "ds")   # the app may write to it
    pipe = create_app(ds, web_config()).state.web.pipeline
    assert pipe.settings["runtime"] == "openvino"
    assert pipe.threads == (os.cpu_count() or 1)
    faces = pipe.analyze(_photos()[6], with_crops=False)        # a demo photo, one face
    assert len(faces) == 1 and faces[0].descriptor.shape == (320,)
    assert pipe.detector._sessions["pnet"]._compiled.get_property("INFERENCE_NUM_THREADS") == pipe.threads
    monkeypatch.setenv("POF_THREADS", "1")
    monkeypatch.setenv("POF_RUNTIME", "onnxruntime")
    pipe = create_app(ds, web_config()).state.web.pipeline
    assert (pipe.settings["runtime"], pipe.threads) == ("onnxruntime", 1)


def test_detector_falls_back_to_onnxruntime_where_openvino_fails(monkeypatch):
    """An OpenVINO that cannot compile here (an unsupported CPU, a broken install) costs a
    warning, never the run: ONNX Runtime finds the same faces."""
    from pof.stages.detect import mtcnn

    def broken(*args, **kwargs):
        raise RuntimeError("no CPU plugin")

    monkeypatch.setattr(mtcnn, "OpenVinoSession", broken)
    det = MTCNNDetector(runtime="openvino")
    with pytest.warns(RuntimeWarning, match="ONNX Runtime instead"):
        found = det.detect(_photos()[0])
    want = MTCNNDetector(runtime="onnxruntime").detect(_photos()[0])
    assert [f.box for f in found] == [f.box for f in want]
    assert type(det._sessions["pnet"]).__name__ == "InferenceSession"


def test_search_verify_and_eval_settle_the_runtime_by_job_size():
    from pof.pipeline import Pipeline
    pytest.importorskip("openvino")
    assert Pipeline().settle_runtime(OPENVINO_MIN_PHOTOS) == "openvino"
    assert Pipeline().settle_runtime(1) == "onnxruntime"
    assert Pipeline(runtime="onnxruntime").settle_runtime(10**6) == "onnxruntime"
    pipe = Pipeline()
    pipe.settle_runtime(OPENVINO_MIN_PHOTOS)
    assert pipe.embedder.second.runtime == "openvino"


def test_openvino_sends_no_telemetry(tmp_path):
    """Importing OpenVINO through pof starts no telemetry: no openvino_telemetry module, no
    background thread (it forks to post usage events), no consent or id file in HOME."""
    pytest.importorskip("openvino")
    code = (
        "import sys, threading\n"
        "from pof.runtime.sessions import OpenVinoSession\n"
        "from pof.stages.detect.mtcnn import MODEL_DIR\n"
        "OpenVinoSession(MODEL_DIR / 'pnet.onnx')\n"
        "assert sys.modules.get('openvino_telemetry') is None, 'telemetry imported'\n"
        "names = [t.name for t in threading.enumerate()]\n"
        "assert names == ['MainThread'], names\n"
        "print('ok')\n")
    import os
    import subprocess
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("CI", None)      # openvino's telemetry stays quiet in CI by itself; test without
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=False, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert not (tmp_path / "intel").exists()
