"""Photos per second of `pof build` against the face_recognition library, one run, same cores.

    python bench/build_speed.py [--pof-only] [SOURCE_DIR ...]

SOURCE_DIR are PERSON/IMAGE folders (default: the five probe folders of the core set, 605
photos, made by bench/make_core_set.py). pof: the wall time of `pof build` into a fresh folder
(start-up, every worker's model loading and the dataset export included). Peer: in-process
load_image_file + face_locations (HOG, upsample 1) + face_encodings of every photo (its import
and model loading excluded). Faces per second count the faces each system enrolled.
``--pof-only`` times pof alone (quick A/B runs of pof changes).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    args = sys.argv[1:]
    pof_only = "--pof-only" in args
    core = ROOT / "bench" / "work" / "core" / "probes"
    sources = [Path(a) for a in args if a != "--pof-only"] or sorted(p for p in core.iterdir() if p.is_dir())
    photos = sorted(f for s in sources for f in s.glob("*/*") if f.is_file())
    out = Path(tempfile.mkdtemp()) / "ds"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pof", "build", *map(str, sources), "--out", str(out), "--quiet"],
                       capture_output=True, text=True)
    pof_s = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"pof build failed: {r.stderr[-500:]}")
    pof_faces = len(json.loads((out / "metadata.json").read_text()))
    shutil.rmtree(out.parent)
    pof = {"seconds": round(pof_s, 2), "faces": pof_faces, "photos_per_s": round(len(photos) / pof_s, 2)}
    if pof_only:
        print(json.dumps({"photos": len(photos), "pof": pof}))
        return
    import face_recognition as fr
    fr.face_encodings(fr.load_image_file(str(photos[0])))       # warm up outside the timing
    t, peer_faces = time.perf_counter(), 0
    for f in photos:
        img = fr.load_image_file(str(f))
        peer_faces += len(fr.face_encodings(img, fr.face_locations(img, 1)))
    peer_s = time.perf_counter() - t
    res = {"photos": len(photos), "pof": pof,
           "peer": {"seconds": round(peer_s, 2), "faces": peer_faces,
                    "photos_per_s": round(len(photos) / peer_s, 2)}}
    res["ratio_photos_per_s"] = round(res["pof"]["photos_per_s"] / res["peer"]["photos_per_s"], 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
