"""Speed and memory of `pof search` on videos.

    python -m bench video_speed [--seconds 8] [--work DIR]

Clips are made from the test photos (tests/data/yale, pof/data/demo): a face panning and
zooming in, cut to the next person every 4 seconds, at 25 fps, H.264 (PyAV). Reported:

- decoding alone, PyAV and OpenCV's VideoCapture, frames per second (every frame to RGB);
- `pof search --json` end to end on a 640 x 360 and a 1280 x 720 clip: wall time against the
  clip's duration, frames read and analysed per second of wall time;
- peak RSS of `pof search` for a short and a 5x longer 640 x 360 clip (memory should not grow
  with the length: frames are streamed and each track keeps at most 16 faces).

The dataset is the tests' one (Yale subjects 01-03, normal and happy, and the demo persons),
built once under the work folder. Prints Markdown tables; the figures also go to
bench/results/video_speed.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.harness import DEMO, REPO, WORK, parser, save, small_dataset
from tests.videokit import frame, photo, write_clip

FPS = 25
PEOPLE = ["subject01.glasses", "subject04.normal", "subject02.glasses",
          str(DEMO / "gallery" / "obama_official_portrait_2012.jpg")]


def people() -> list[np.ndarray]:
    """The photos as RGB, each at most 400 px high."""
    from PIL import Image
    out = []
    for p in PEOPLE:
        im = Image.fromarray(photo(p))
        if im.height > 400:
            im = im.resize((round(im.width * 400 / im.height), 400))
        out.append(np.asarray(im))
    return out


def scenes(size: tuple[int, int], seconds: float):
    """Frames of ``seconds`` at FPS: each person for 4 s, panning and zooming, then a cut."""
    faces = people()
    w, h = size
    per = 4 * FPS
    for i in range(int(seconds * FPS)):
        k, j = divmod(i, per)
        face = faces[k % len(faces)]
        base = 0.8 * h / face.shape[0]
        scale = base * (0.8 + 0.2 * j / per)
        x = int(w * 0.1 + j * (w * 0.4) / per)
        yield frame(size, (60, 150, 200, 110)[k % 4], face, x, int(h * 0.05), scale)


def make(work: Path, size, seconds) -> Path:
    path = work / f"clip_{size[0]}x{size[1]}_{seconds:g}s.mp4"
    if not path.exists():
        write_clip(path, scenes(size, seconds), fps=FPS, size=size)
    return path


def decode_pyav(path: Path) -> int:
    import av
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for f in c.decode(s):
            f.to_ndarray(format="rgb24")
            n += 1
    return n


def decode_opencv(path: Path) -> int:
    import cv2
    cap = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def run_search(dataset: Path, clip: Path, work: Path) -> tuple[float, dict, float]:
    """Wall seconds, the JSON result and the peak RSS (MiB) of one `pof search --json`."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out_path, err_path = work / "search.out", work / "search.err"
    t = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pof", "search", str(dataset), str(clip),
                                 "--json"], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)       # this child's own peak memory
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        raise SystemExit(f"pof search failed ({code}): {err_path.read_text()[-500:]}")
    return wall, json.loads(out_path.read_text().splitlines()[-1]), usage.ru_maxrss / 1024


def decoding(clips: list[Path]) -> tuple[list[dict], str]:
    rows = []
    lines = ["| decoding (every frame to RGB) | PyAV frames/s | OpenCV frames/s |", "|---|---|---|"]
    for clip in clips:
        ta, na = timed(decode_pyav, clip)
        tb, nb = timed(decode_opencv, clip)
        rows.append({"clip": clip.name, "frames": na, "pyav_fps": round(na / ta), "opencv_fps": round(nb / tb)})
        lines.append(f"| {clip.name} ({na} frames) | {na / ta:.0f} | {nb / tb:.0f} |")
    return rows, "\n".join(lines)


def searching(dataset: Path, clips: list[Path], work: Path) -> tuple[list[dict], str]:
    rows = []
    lines = ["| `pof search --json` | duration s | wall s | wall / duration | frames read/s | "
             "frames analysed/s | tracks | peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for clip in clips:
        wall, res, rss = run_search(dataset, clip, work)
        rows.append({"clip": clip.name, "duration_s": res["duration"], "wall_s": round(wall, 1),
                     "frames_read": res["frames_read"], "frames_analysed": res["frames_analysed"],
                     "tracks": len(res["tracks"]), "peak_rss_mib": round(rss)})
        lines.append(f"| {clip.name} | {res['duration']:.1f} | {wall:.1f} | {wall / res['duration']:.2f} | "
                     f"{res['frames_read'] / wall:.0f} | {res['frames_analysed'] / wall:.1f} | "
                     f"{len(res['tracks'])} | {rss:.0f} |")
    return rows, "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--seconds", type=float, default=8, help="length of the short clips")
    ap.add_argument("--work", type=Path, default=WORK / "video")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    dataset = args.work / "dataset"
    if not (dataset / "catalog.sqlite").exists():
        small_dataset(args.work, ("01", "02", "03"), ("normal", "happy"))

    small = make(args.work, (640, 360), args.seconds)
    large = make(args.work, (1280, 720), args.seconds)
    long = make(args.work, (640, 360), args.seconds * 5)

    print(f"Machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; clips {FPS} fps H.264")
    print()
    dec, dec_table = decoding([small, large])
    print(dec_table)
    print()
    found, search_table = searching(dataset, [small, large, long], args.work)
    print(search_table)
    save("video_speed", {"fps": FPS, "decoding": dec, "search": found}, dec_table + "\n\n" + search_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
