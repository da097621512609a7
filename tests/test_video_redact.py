"""Redacting videos: every frame of the copy is free of faces pof can find, and the copy keeps
the clip's frames, rate, duration and (unless told not to) its sound."""
from __future__ import annotations

import shutil
from fractions import Fraction

import pytest

from pof.redact import Checker
from pof.video.reader import Video

from .conftest import YALE, run_pof
from .videokit import frame, pan, photo, write_clip

SIZE = (480, 270)


def two_people(n: int):
    """Two Yale faces side by side, panning right at different speeds."""
    a, b = photo("subject01.normal"), photo("subject02.happy")
    for i in range(n):
        f = frame(SIZE, 90, a, 10 + 4 * i, 40, 0.6)
        y0 = 60
        small = frame((200, 150), 90, b, 0, 0, 0.6)
        x0 = 250 + 2 * i
        w = min(small.shape[1], SIZE[0] - x0)
        f[y0:y0 + 150, x0:x0 + w] = small[:, :w]
        yield f


def clip_with_sound(path, frames, fps=10, sound=True):
    """An MP4 of ``frames`` (H.264) with, if ``sound``, a 440 Hz sine (AAC) as long as it, and
    metadata a copy must not carry."""
    return write_clip(path, frames, fps, size=SIZE, sine_hz=440 if sound else None,
                      metadata={"creation_time": "2026-05-01T12:00:00Z",
                                "location": "+48.8566+002.3522/", "title": "march"})


def streams(path):
    import av
    with av.open(str(path)) as c:
        return len(c.streams.video), len(c.streams.audio), dict(c.metadata)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clip_with_sound(tmp_path_factory.mktemp("clip") / "march.mp4", two_people(30))


def test_every_frame_covered_and_clip_kept(clip, tmp_path, pipeline):
    checker = Checker(pipeline)
    with Video(clip) as v:
        src = [checker.faces(f.rgb(), equalise=False) for f in v.frames()]
        fps, dur = v.fps, v.duration
    assert sum(len(b) >= 2 for b in src) >= 20        # the clip does show two faces
    assert streams(clip)[2].get("location")           # and says where it was filmed
    r = run_pof("redact", clip, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "march.redacted.mp4"
    assert "MP4, H.264" in r.stdout and "sound kept" in r.stdout, r.stdout
    with Video(out) as v:
        frames = list(v.frames())
        assert len(frames) == len(src)
        assert v.fps == pytest.approx(fps) and v.duration == pytest.approx(dur, abs=0.15)
        for f in frames:       # every frame, not a sample: no face left for pof's check
            assert checker.faces(f.rgb(), equalise=False) == [], f.number
    nv, na, meta = streams(out)
    assert (nv, na) == (1, 1) and not {"creation_time", "location", "title"} & set(meta)

    r = run_pof("redact", clip, "--out", tmp_path / "quiet", "--no-audio")
    assert r.returncode == 0, r.stderr
    assert streams(tmp_path / "quiet" / "march.redacted.mp4")[:2] == (1, 0)


def test_mixed_inputs_and_a_corrupt_clip(clip, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    broken = folder / "broken.mp4"
    data = clip.read_bytes()
    broken.write_bytes(data[:48] + b"\0" * 4000)          # the header promises a clip, the rest is gone
    shutil.copy(YALE / "subject03.normal", folder / "face.png")
    write_clip(folder / "clip.jpg", pan(photo("subject02.happy"), 8), fmt="matroska")  # a video by its bytes
    r = run_pof("redact", folder, clip, "--out", tmp_path / "out")
    assert r.returncode == 3, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0] and "Traceback" not in r.stderr
    assert (tmp_path / "out" / "face.redacted.png").exists()
    assert (tmp_path / "out" / "march.redacted.mp4").exists()
    assert not (tmp_path / "out" / "broken.redacted.mp4").exists()
    assert (tmp_path / "out" / "clip.redacted.mkv").exists() and "(Matroska, H.264, 8 frames" in r.stdout


def crossing(n: int):
    """Two faces crossing the frame fast (12 and 6 px a frame), the first entering from the edge."""
    a, b = photo("subject01.normal"), photo("subject04.normal")
    for i in range(n):
        f = frame(SIZE, 90, a, -60 + 12 * i, 30, 0.55)
        x0 = 300 - 6 * i
        f[100:240, x0:x0 + 180] = frame((180, 140), 90, b, 0, 0, 0.55)[:, :SIZE[0] - x0]
        yield f


def test_sparse_detector_frames_are_filled_by_tracks_and_the_check(tmp_path, pipeline):
    """The detector on one frame in 10 only: carried boxes, boxes the check adds and
    escalation still leave no frame with a face."""
    from pof.video.redact import redact_video
    src = clip_with_sound(tmp_path / "fast.mp4", crossing(30), fps=25, sound=False)
    checker = Checker(pipeline)
    r = redact_video(pipeline, src, tmp_path / "out", set(), stride=10, checker=checker)
    assert r.error is None and r.still_found == 0 and len(r.steps) == len(r.faces) >= 2
    with Video(r.output) as v:
        left = [f.number for f in v.frames() if checker.faces(f.rgb(), equalise=False)]
    assert left == []
    with Video(src) as v:
        assert sum(bool(checker.faces(f.rgb(), equalise=False)) for f in v.frames()) == 30


def test_variable_frame_rate_times_kept(tmp_path, pipeline):
    """A phone's variable-rate clip: each frame of the copy shows at the time it did."""
    import av
    from pof.video.redact import redact_video
    src = tmp_path / "vfr.mp4"
    ticks = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 30]          # in 1/30 s, with gaps
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=30)
        v.width, v.height = SIZE
        v.pix_fmt = "yuv420p"
        v.codec_context.time_base = Fraction(1, 30)
        for t, px in zip(ticks, pan(photo("subject01.normal"), len(ticks))):
            f = av.VideoFrame.from_ndarray(px, format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 30)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    r = redact_video(pipeline, src, tmp_path / "out", set())
    assert r.error is None and r.still_found == 0
    with Video(r.output) as v:
        times = [round(f.time * 30) for f in v.frames()]
    assert times == ticks
