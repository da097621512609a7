"""How long `pof serve` takes to answer one photo search (POST /api/search), by detector runtime.

    python bench/serve_latency.py [--photos 20] [--rounds 3]

Builds a small dataset (pof's demo gallery and four Yale people), then, for each detector
runtime (OpenVINO, what `pof serve` uses where installed, and ONNX Runtime), creates the app
in this process, warms it with one search, and times ``--rounds`` passes over ``--photos``
made-up 1024 x 768 JPEGs (bench/gpu_throughput.py's: one to four real faces on a blurred
photo) sent one at a time, as a phone at a protest would: upload, detection, every face's
landmarks and descriptor, the open-set search, the bystander-blurred copy the page shows.
Prints the median and 95th percentile of the request time (the whole request, in process:
no network). The two runtimes alternate, round by round, so a busy machine hurts both alike.
The app uses every core for each model (the ``threads`` setting's automatic value in
`pof serve`); ``POF_THREADS=1`` measures one thread a model.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RUNTIMES = ("openvino", "onnxruntime")


def build(work: Path) -> Path:
    """A dataset of the demo gallery and Yale subjects 01-04, with one viewer account."""
    from pof.dataset.build import Builder

    src = work / "people"
    for f in sorted((ROOT / "tests" / "data" / "yale").glob("subject0*")):
        person = src / f.name.split(".")[0]
        person.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, person / f.name)
    demo = ROOT / "pof" / "data" / "demo"
    manifest = (demo / "manifest.csv").read_text().replace("gallery/", f"{demo / 'gallery'}/")
    (work / "demo.csv").write_text(manifest)
    out = work / "dataset"
    Builder(out, workers=1).run([str(src), str(work / "demo.csv")], progress=False)
    return out


def token(ds: Path) -> str:
    from pof.casework.accounts import Accounts, fast_hasher
    from pof.dataset.catalog import Catalog

    with Catalog(ds) as cat:
        acc = Accounts(cat.db, fast_hasher())
        acc.add("bench", "viewer", "a long benchmark password")
        return acc.new_token("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from gpu_throughput import make_photos

    from pof.web.app import create_app
    from pof.web.state import WebConfig
    from pof.casework.accounts import fast_hasher

    work = Path(tempfile.mkdtemp())
    try:
        ds = build(work)
        hdr = {"Authorization": f"Bearer {token(ds)}"}
        (work / "photos").mkdir()
        photos = [p.read_bytes() for p in make_photos(work / "photos", args.photos)]
        config = WebConfig(hasher=fast_hasher(), search_rate=(10**6, 60.0))
        clients = {}
        for runtime in RUNTIMES:
            os.environ["POF_RUNTIME"] = runtime       # read when the app makes its pipeline
            client = TestClient(create_app(ds, config))
            t = time.perf_counter()
            r = client.post("/api/search", headers=hdr, files={"image": ("p.jpg", photos[0], "image/jpeg")})
            r.raise_for_status()
            clients[runtime] = (client, time.perf_counter() - t)
        times: dict[str, list[float]] = {r: [] for r in RUNTIMES}
        faces = {r: 0 for r in RUNTIMES}
        for _ in range(args.rounds):
            for runtime in RUNTIMES:
                client = clients[runtime][0]
                for data in photos:
                    t = time.perf_counter()
                    r = client.post("/api/search", headers=hdr, files={"image": ("p.jpg", data, "image/jpeg")})
                    times[runtime].append(time.perf_counter() - t)
                    r.raise_for_status()
                    faces[runtime] += len(r.json()["faces"])
        out = {"photos": args.photos, "rounds": args.rounds, "load_average": os.getloadavg()}
        print("| runtime | first search (models load) | median | 95th percentile | faces a photo |")
        print("|---|---|---|---|---|")
        for runtime in RUNTIMES:
            ms = np.array(times[runtime]) * 1000
            row = {"first_s": round(clients[runtime][1], 2), "p50_ms": round(float(np.median(ms)), 1),
                   "p95_ms": round(float(np.percentile(ms, 95)), 1),
                   "faces_per_photo": round(faces[runtime] / len(ms), 2)}
            out[runtime] = row
            print(f"| {runtime} | {row['first_s']} s | {row['p50_ms']} ms | {row['p95_ms']} ms | "
                  f"{row['faces_per_photo']} |")
        print(json.dumps(out))
    finally:
        os.environ.pop("POF_RUNTIME", None)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
