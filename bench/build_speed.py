"""Photos per second of `pof build` against the face_recognition library, one run, same cores.

    python -m bench build_speed [--pof-only] [--big N] [--sample N] [--device D] [SOURCE_DIR ...]

SOURCE_DIR are PERSON/IMAGE folders (default: the five probe folders of the core set, 605
photos of 320 x 243, made by ``python -m bench make_core_set``). ``--big N`` times N made-up
1024 x 768 JPEGs instead (bench/harness.py's photos: one to four real faces pasted on a blurred
photo), built from a manifest without person labels, so that every face is enrolled.
``--sample N``: N photos of the SOURCE_DIRs drawn at random (seed 7), linked into PERSON/IMAGE
folders of a temporary one (for example 240 of the public set's LFW photos, news photos with
1.3 faces each on average).
pof: the wall time of `pof build` into a fresh folder (start-up, every worker's model
loading and the dataset export included). Peer: in-process load_image_file + face_locations
(HOG, upsample 1) + face_encodings of every photo (its import and model loading excluded).
Faces per second count the faces each system enrolled. Peak memory: pof's, the largest sum
of the proportional set sizes (PSS, shared pages split between the processes that share
them) of `pof build` and its worker processes, sampled every 50 ms in a second, untimed
build (sampling costs CPU); the peer's, the peak resident size of this process, in which it
runs after pof's builds (before it, this process only starts pof, and with ``--big`` makes
the photos). ``--pof-only`` times pof
alone (quick A/B runs of pof changes; POF_RUNTIME=onnxruntime or openvino picks the
detector's runtime). ``--device cuda``: `pof build --device cuda`, the GPU engine's build
(bench/gpu_device_run.sh runs it on a lent GPU machine; with --pof-only). The figures are
printed as JSON and written to bench/results/build_speed.json.
"""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import PEER_HINT, WORK, make_photos, need, parser, require, save


def big_photos(folder: Path, count: int) -> tuple[list[str], list[Path]]:
    """``count`` 1024 x 768 JPEGs in ``folder`` and a manifest listing them (no person)."""
    photos = make_photos(folder, count)
    manifest = folder / "manifest.csv"
    manifest.write_text("path\n" + "".join(f"{p.name}\n" for p in photos))
    return [str(manifest)], photos


def _pss_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parent[int(d)] = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def run_pof(cmd: list[str], sample: bool = False) -> tuple[float, int]:
    """(seconds, peak PSS of the process tree in MB, or 0 unless ``sample``) of one
    `pof build` run."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while sample and proc.poll() is None:
        peak = max(peak, sum(_pss_kb(p) for p in _tree(proc.pid)))
        time.sleep(0.05)
    err = proc.communicate()[1]
    seconds = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"pof build failed: {err[-500:]}")
    return seconds, peak // 1024


def inputs(args, work: Path) -> tuple[list[str], list[Path]]:
    """(what `pof build` is given, the photos in it) for these arguments."""
    if args.big:
        (work / "photos").mkdir()
        return big_photos(work / "photos", args.big)
    core = WORK / "core" / "probes"
    if not args.sources:
        require([core], "run python -m bench make_core_set first, or name SOURCE_DIRs or --big N")
    dirs = args.sources or sorted(p for p in core.iterdir() if p.is_dir())
    sources = [str(d) for d in dirs]
    photos = sorted(f for s in dirs for f in s.glob("*/*") if f.is_file())
    if args.sample:
        photos = sorted(random.Random(7).sample(photos, args.sample))
        for f in photos:
            (work / "sample" / f.parent.name).mkdir(parents=True, exist_ok=True)
            (work / "sample" / f.parent.name / f.name).symlink_to(f.resolve())
        sources = [str(work / "sample")]
        photos = sorted((work / "sample").glob("*/*"))
    return sources, photos


def time_pof(sources: list[str], photos: list[Path], work: Path, device: list[str]) -> dict:
    """One timed `pof build`, then one untimed with its memory sampled."""
    out = work / "ds"
    pof_s, _ = run_pof([sys.executable, "-m", "pof", "build", *sources, "--out", str(out), "--quiet", *device])
    _, pof_mb = run_pof([sys.executable, "-m", "pof", "build", *sources, "--out", str(work / "ds2"),
                         "--quiet", *device], sample=True)
    pof_faces = len(json.loads((out / "metadata.json").read_text()))
    return {"device": device[1] if device else "cpu", "seconds": round(pof_s, 2), "faces": pof_faces,
            "photos_per_s": round(len(photos) / pof_s, 2), "peak_pss_mb": pof_mb}


def time_peer(photos: list[Path]) -> dict:
    """The peer in this process over the same photos (its warm-up outside the timing)."""
    import face_recognition as fr
    fr.face_encodings(fr.load_image_file(str(photos[0])))
    t, peer_faces = time.perf_counter(), 0
    for f in photos:
        img = fr.load_image_file(str(f))
        peer_faces += len(fr.face_encodings(img, fr.face_locations(img, 1)))
    peer_s = time.perf_counter() - t
    return {"seconds": round(peer_s, 2), "faces": peer_faces,
            "photos_per_s": round(len(photos) / peer_s, 2)}


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("sources", nargs="*", type=Path, metavar="SOURCE_DIR")
    ap.add_argument("--pof-only", action="store_true", help="time pof alone")
    ap.add_argument("--big", type=int, default=0, metavar="N", help="N made-up 1024 x 768 JPEGs")
    ap.add_argument("--sample", type=int, default=0, metavar="N",
                    help="N photos of the SOURCE_DIRs drawn at random (seed 7)")
    ap.add_argument("--device", help="pof build --device (e.g. cuda)")
    args = ap.parse_args(argv)
    device = ["--device", args.device] if args.device else []
    if not args.pof_only:
        need("face_recognition", PEER_HINT)
    work = Path(tempfile.mkdtemp())
    sources, photos = inputs(args, work)
    pof = time_pof(sources, photos, work, device)
    if args.pof_only:
        shutil.rmtree(work)
        res = {"photos": len(photos), "pof": pof}
        print(json.dumps(res))
        save("build_speed", res)
        return 0
    peer = time_peer(photos)
    shutil.rmtree(work)
    peer["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    res = {"photos": len(photos), "pof": pof, "peer": peer}
    res["ratio_photos_per_s"] = round(res["pof"]["photos_per_s"] / res["peer"]["photos_per_s"], 2)
    print(json.dumps(res, indent=1))
    save("build_speed", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
