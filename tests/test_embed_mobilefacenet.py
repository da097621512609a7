"""MobileFaceNet in ONNX Runtime and pof's default descriptor, dlib + MobileFaceNet, on real
Yale faces."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from pof.stages.embed import backend, create
from pof.stages.embed.dlib_resnet import chip as dlib_chip
from pof.stages.embed.mobileface import chip
from pof.stages.embed.mobilefacenet import DLIB_WEIGHT, MobileFaceNet
from pof.stages.embed.onnx_resnet import OnnxResNet
from pof.errors import PofError
from pof.settings import defaults


@pytest.fixture(scope="module")
def faces(yale_faces):
    return yale_faces


def test_it_is_the_default_descriptor():
    assert defaults()["embedder"] == "dlib+mobilefacenet-onnx"
    fused = backend("dlib+mobilefacenet-onnx")
    assert fused.SECOND is MobileFaceNet and fused.WEIGHT == DLIB_WEIGHT and fused.dim == 320


def test_mobilefacenet_tells_people_apart(faces):
    vecs = MobileFaceNet().embed_chips(np.stack([chip(p, f) for _, p, f in faces]))
    assert vecs.shape == (len(faces), 192) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    persons = np.array([p for p, _, _ in faces])
    s = vecs @ vecs.T
    same = s[(persons[:, None] == persons[None, :]) & ~np.eye(len(faces), dtype=bool)]
    diff = s[persons[:, None] != persons[None, :]]
    # an ArcFace-style network: impostors near 0, the same person far above
    assert same.min() > diff.max()
    assert abs(diff.mean()) < 0.3 and same.mean() > diff.mean() + 0.3


def test_batch_and_single_chips_agree(faces):
    net = MobileFaceNet()
    chips = np.stack([chip(p, f) for _, p, f in faces[:3]])
    together = net.embed_chips(chips)
    alone = np.concatenate([net.embed_chips(c[None]) for c in chips])
    assert np.allclose(together, alone, atol=1e-5)
    assert net.embed_chips(chips[:0]).shape == (0, 192)


@pytest.mark.parametrize("name", ["dlib+mobilefacenet-onnx", "dlib+mobileface-onnx"])
def test_fused_score_is_the_weighted_sum_of_both_cosines(faces, name):
    cls = backend(name)
    fused, w = create(name), cls.WEIGHT
    (_, pa, fa), (_, pb, fb) = faces[0], faces[-1]
    fa, fb = copy.copy(fa), copy.copy(fb)       # the session's faces keep their own descriptors
    fused.embed(pa, [fa])
    da = fa.descriptor.copy()
    fused.embed(pb, [fb])
    db = fb.descriptor.copy()
    assert da.shape == (cls.dim,) and abs(np.linalg.norm(da) - 1) < 1e-5
    dl = OnnxResNet().embed_chips(np.stack([dlib_chip(pa, fa), dlib_chip(pb, fb)]))
    mf = cls.SECOND().embed_chips(np.stack([chip(pa, fa), chip(pb, fb)]))
    expected = w * float(dl[0] @ dl[1]) + (1 - w) * float(mf[0] @ mf[1])
    assert float(da @ db) == pytest.approx(expected, abs=1e-5)
    assert np.allclose(da[:128], math.sqrt(w) * dl[0], atol=1e-5)
    assert np.allclose(da[128:], math.sqrt(1 - w) * mf[0], atol=1e-5)


def test_wrong_chips_are_refused():
    with pytest.raises(PofError, match="112"):
        MobileFaceNet().embed_chips(np.zeros((1, 150, 150, 3), np.uint8))


def test_a_changed_model_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "mobilefacenet.onnx"
    bad.write_bytes(MobileFaceNet.MODEL.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(MobileFaceNet, "MODEL", bad)
    with pytest.raises(PofError, match="convert_mobilefacenet"):
        MobileFaceNet().embed_chips(np.zeros((1, 112, 112, 3), np.uint8))


def test_verifier_has_a_reference_for_it():
    from pof.matching.calibrate import reference_impostors
    from pof.matching.verify import Verifier
    for mirror in (False, True):
        assert len(reference_impostors("dlib+mobilefacenet-onnx", mirror)) > 400_000
    t = Verifier(1e-3, "dlib+mobilefacenet-onnx").threshold
    assert 0.5 < t < Verifier(1e-3, "dlib-resnet-onnx").threshold


def test_openvino_and_onnx_runtime_give_the_same_descriptors(faces):
    pytest.importorskip("openvino")
    from pof.runtime.sessions import OpenVinoSession
    chips = np.stack([chip(p, f) for _, p, f in faces])
    ov_net, ort_net = MobileFaceNet(runtime="openvino"), MobileFaceNet(runtime="onnxruntime")
    a, b = ov_net.embed_chips(chips), ort_net.embed_chips(chips)
    assert isinstance(ov_net.session, OpenVinoSession)
    assert not isinstance(ort_net.session, OpenVinoSession)
    assert (a * b).sum(1).min() > 0.99999
    # "auto" outside long jobs is ONNX Runtime (no OpenVINO start-up for one photo)
    assert not isinstance(MobileFaceNet(runtime="auto").session, OpenVinoSession)


def test_without_openvino_it_warns_and_runs_on_onnx_runtime(faces, monkeypatch):
    import pof.runtime.sessions

    def broken(*args, **kwargs):
        raise RuntimeError("no OpenVINO here")
    monkeypatch.setattr(pof.runtime.sessions, "OpenVinoSession", broken)
    monkeypatch.setattr(pof.runtime.sessions, "cpu_runtime", lambda name, long_job=False: "openvino")
    net = MobileFaceNet(runtime="openvino")
    with pytest.warns(RuntimeWarning, match="ONNX Runtime instead"):
        vecs = net.embed_chips(np.stack([chip(p, f) for _, p, f in faces[:2]]))
    assert vecs.shape == (2, 192)
