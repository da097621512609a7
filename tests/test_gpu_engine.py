"""The GPU engine, run on the CPU, gives what the CPU pipeline gives; asked for a GPU where
there is none, it says so clearly."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from pof import Pipeline  # noqa: E402
from pof.errors import ImageError, SettingError  # noqa: E402

from .conftest import DEMO, YALE  # noqa: E402

YALE_NAMES = ["subject01.normal", "subject01.happy", "subject02.glasses", "subject03.normal",
              "subject04.sad", "subject02.normal"]


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def engine():
    from pof.gpu.engine import GpuEngine
    return GpuEngine("cpu")


def _heavy_jpeg(path) -> np.ndarray:
    """The photo saved at JPEG quality 5: its blocks show, so both paths smooth it first."""
    import io
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="JPEG", quality=5)
    return _rgb(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def photos():
    obama = DEMO / "probes" / "obama_joint_session_2009.jpg"
    return [_rgb(YALE / n) for n in YALE_NAMES] + [_rgb(obama), _heavy_jpeg(obama)]


@pytest.fixture(scope="module")
def both(engine, photos):
    """(engine's faces, the CPU pipeline's faces) per photo."""
    cpu = Pipeline(attributes="off")
    return engine.analyze(photos), [cpu.analyze(p) for p in photos]


def test_same_faces_as_the_cpu_pipeline(both):
    """The same faces in the same order: counts, indices and boxes rounded to whole pixels
    exactly; boxes and five landmarks as floats to 0.05 px (measured: 6e-5 px and 5e-5 px
    on an AMD EPYC CPU; the nearest box edge to a half pixel was 0.04 px away from it)."""
    got, want = both
    assert [len(f) for f in got] == [len(f) for f in want]
    assert sum(len(f) for f in got) >= len(YALE_NAMES) + 1
    for g_faces, w_faces in zip(got, want):
        assert [g.index for g in g_faces] == [w.index for w in w_faces] == list(range(len(w_faces)))
        for g, w in zip(g_faces, w_faces):
            assert np.round(g.box).tolist() == np.round(w.box).tolist()
            np.testing.assert_allclose(g.box, w.box, atol=0.05)
            np.testing.assert_allclose(g.landmarks5, w.landmarks5, atol=0.05)
            assert g.extra.get("detected_on") == w.extra.get("detected_on")


def test_heavily_compressed_photos_are_restored_alike(both):
    """The JPEG-blocky photo is smoothed and mirror-described by both, the others by neither."""
    from pof.stages.restore import NAME
    got, want = both
    for g_faces, w_faces in zip(got, want):
        for g, w in zip(g_faces, w_faces):
            assert g.extra.get("restored") == w.extra.get("restored")
    assert [f.extra.get("restored") for f in got[-1]] == [NAME] * len(got[-1]) and got[-1]
    assert not any("restored" in f.extra for faces in got[:-1] for f in faces)


def test_blockiness_measured_on_the_device_picks_the_same_photos(engine, photos, monkeypatch):
    """The GPU's way (blockiness of the whole group on the device) restores the same photo."""
    from pof.stages import restore
    from pof.gpu import engine as eng
    monkeypatch.setattr(eng, "DEVICE_BLOCKINESS_ON_CPU", True)
    calls = []
    monkeypatch.setattr(restore, "heavily_compressed", lambda p: calls.append(p) or False)
    same = [p for p in photos if p.shape == photos[-1].shape]      # the portrait and its JPEG
    got = engine.analyze(same)
    assert not calls and len(same) == 2
    assert [f.extra.get("restored") for f in got[-1]] == [restore.NAME] * len(got[-1]) and got[-1]
    assert not any("restored" in f.extra for f in got[0])


def test_landmarks_crops_and_descriptors_match(both):
    """68 landmarks the same but for some points a whole frame pixel away (dlib rounds its
    points to whole pixels of the upright frame; a frame pixel one level off can send a tree
    down its other branch), crops within a level or two, and fused descriptors that score the
    same: cosine with the CPU pipeline's above 0.999 (the worst measured 0.99982 on an AMD
    EPYC CPU with torch 2.13; landmarks 0.21 px on average at worst, 1.33 px for one point,
    crops 0.0003 levels on average). Eye distance, blur and quality come from those, the
    head pose from OpenCV on those landmarks (0.6 degrees apart at worst)."""
    got, want = both
    pairs = [(g, w) for gf, wf in zip(got, want) for g, w in zip(gf, wf)]
    lm = np.array([np.abs(g.landmarks68 - w.landmarks68).mean() for g, w in pairs])
    assert lm.max() < 0.3, lm
    assert max(np.abs(g.landmarks68 - w.landmarks68).max() for g, w in pairs) < 1.5
    crop_diff = np.array([np.abs(g.crop.astype(int) - w.crop.astype(int)).mean() for g, w in pairs])
    assert crop_diff.max() < 2.0, crop_diff
    cos = np.array([float(g.descriptor @ w.descriptor) for g, w in pairs])
    assert cos.min() > 0.999, cos
    for g, w in pairs:
        assert g.descriptor.shape == w.descriptor.shape == (320,)
        assert g.interocular == pytest.approx(w.interocular, abs=0.05)
        assert g.quality == pytest.approx(w.quality, abs=0.05)


def test_photos_of_several_sizes_and_none(engine):
    """Photos of different sizes go in one call; a faceless one gives an empty list."""
    a = _rgb(YALE / "subject03.normal")
    b = np.ascontiguousarray(a[:200, :300])
    noise = np.random.default_rng(1).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    faces = engine.analyze([a, noise, b])
    assert len(faces[0]) >= 1 and faces[1] == [] and len(faces[2]) >= 1


def test_bad_photo_is_refused(engine):
    with pytest.raises(ImageError):
        engine.analyze([np.zeros((10, 10), np.uint8)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_fails_clearly():
    from pof.gpu import torch_device
    with pytest.raises(SettingError, match="no CUDA GPU"):
        torch_device("cuda")


def test_build_with_the_engine(tmp_path, gallery_dir, built):
    """``pof build --device cuda``'s path (the engine, here on the CPU) enrols the same faces
    (the same ids) as the CPU build, with descriptors that score the same (cosine above
    0.999; the worst measured 0.99961 on an AMD EPYC CPU) and attributes estimated."""
    from pof.dataset.build import Builder
    from pof.dataset.catalog import Catalog

    out = tmp_path / "ds"
    report = Builder(out, engine="cpu").run([str(gallery_dir)], progress=False)
    assert report.added_images == 6 and report.added_faces == 6
    with Catalog(out) as a, Catalog(built) as b:
        ga, gb = a.gallery(), b.gallery()
        fa = {r["id"]: r for r in a.faces()}
        fb = {r["id"]: r for r in b.faces()}
        assert sorted(fa) == sorted(fb)
        assert len(a.attributes()) == 6
    da = dict(zip(ga[1], ga[0]))
    db = dict(zip(gb[1], gb[0]))
    assert min(float(da[k] @ db[k]) for k in da) > 0.999
    assert (out / "metadata.json").is_file() and len(list((out / "images").glob("*.jpg"))) == 6
    # building again adds nothing
    again = Builder(out, engine="cpu").run([str(gallery_dir)], progress=False)
    assert again.added_images == 0 and again.counts["already in dataset"] == 6


def test_build_with_the_engine_in_several_batches(tmp_path, gallery_dir, built, monkeypatch):
    """Batches decoded one ahead give the outcomes of one batch, in order; a photo that
    cannot be decoded is reported and the others are enrolled."""
    import importlib
    import shutil

    from pof.dataset.catalog import Catalog

    build = importlib.import_module("pof.dataset.build")     # the module (pof.dataset.build is also a function)

    src = tmp_path / "src"
    shutil.copytree(gallery_dir, src)
    (src / "subject02" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    monkeypatch.setenv("POF_GPU_BATCH", "3")            # 7 photos: batches of 3, 3 and 1
    calls, events = [], []
    from pof.gpu import engine as eng
    original, decode = eng.GpuEngine.analyze, build.decode_image

    def analyze(self, photos):
        calls.append(len(photos))
        result = original(self, photos)
        events.append("analysed")
        return result

    monkeypatch.setattr(eng.GpuEngine, "analyze", analyze)
    monkeypatch.setattr(build, "decode_image", lambda *a: events.append("decoded") or decode(*a))
    out = tmp_path / "ds"
    report = build.Builder(out, engine="cpu").run([str(src)], progress=False)
    assert calls == [2, 3, 1]        # the first batch holds the broken photo: 2 sent
    # the second batch was decoded while the first was analysed (a decode takes
    # milliseconds, an analysis on the CPU most of a second)
    assert events.index("analysed") == 6 and events.count("decoded") == 7
    assert report.added_images == 6 and report.added_faces == 6
    assert report.counts["error"] == 1
    with Catalog(out) as a, Catalog(built) as b:
        assert sorted(r["id"] for r in a.faces()) == sorted(r["id"] for r in b.faces())


def test_large_groups_are_split(engine, monkeypatch):
    """Same-sized photos beyond the pixel budget go through in several groups, with the
    same results (to float rounding: a batch's size can change the order of sums, which moves
    the 68 landmarks by a hair and so the chip; the cosine between the two descriptors was
    0.99916 on an AMD EPYC CPU with torch 2.13, above 0.9999 on Intel ones)."""
    from pof.gpu import engine as eng
    photos = [_rgb(YALE / n) for n in YALE_NAMES[:3]]
    whole = engine.analyze(photos)
    monkeypatch.setattr(eng, "MAX_GROUP_PIXELS", photos[0].shape[0] * photos[0].shape[1])
    calls = []
    original = engine._analyze_group
    monkeypatch.setattr(engine, "_analyze_group", lambda group, on_device, smoothed=None:
                        calls.append(len(group)) or original(group, on_device, smoothed))
    split = engine.analyze(photos)
    assert calls == [1, 1, 1]
    for a, b in zip(whole, split):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.box, y.box, atol=0.01)
            assert float(x.descriptor @ y.descriptor) > 0.998


def test_float32_engine_keeps_tf32_off(engine):
    # the engine made by the fixture (float32) leaves no TF32 shortcut for CUDA convolutions
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cuda.matmul.allow_tf32 is False


def test_the_engine_runs_the_fused_embedder_only():
    from pof.errors import PofError
    from pof.gpu.engine import GpuEngine
    with pytest.raises(PofError, match="fused embedders"):
        GpuEngine("cpu", embedder="dlib-resnet-onnx")
    assert GpuEngine("cpu", embedder="dlib+mobileface-onnx").fused.WEIGHT == 0.93


def test_engine_and_pipeline_are_one_analyzer(engine, photos):
    """Both are ``pof.pipeline.Analyzer``s: the same descriptor key for the same settings,
    and ``analyze_batch`` with a selection keeps the same faces (the engine analyses every
    face and then drops the others; the pipeline fills the selected ones alone)."""
    from pof.pipeline import Analyzer
    cpu = Pipeline(attributes="off")
    assert isinstance(cpu, Analyzer) and isinstance(engine, Analyzer)
    assert engine.descriptor_key() == cpu.descriptor_key() and engine.describe() == cpu.describe()
    assert cpu.batch_size == 1 and engine.batch_size == engine.settings["gpu_batch"]
    group = _rgb(DEMO / "gallery" / "obama_official_portrait_2012.jpg")    # two faces
    assert len(engine.analyze([group])[0]) == 2

    def smallest(faces):
        return [min(faces, key=lambda f: f.box[2] * f.box[3])]

    got = engine.analyze_batch([group, photos[0]], [smallest, None], with_crops=False)
    want = cpu.analyze_batch([group, photos[0]], [smallest, None], with_crops=False)
    assert [len(f) for f in got] == [len(f) for f in want] == [1, 1]
    for g, w in zip(got, want):
        assert g[0].index == w[0].index and np.round(g[0].box).tolist() == np.round(w[0].box).tolist()
        assert g[0].crop is None and w[0].crop is None
        assert float(g[0].descriptor @ w[0].descriptor) > 0.999
    engine.close()
    cpu.close()
