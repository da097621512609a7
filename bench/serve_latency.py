"""How long `pof serve` takes to answer one photo search (POST /api/search), by detector runtime.

    python -m bench serve_latency [--photos 20] [--rounds 3]

Builds a small dataset (pof's demo gallery and four Yale people), then, for each detector
runtime (OpenVINO, what `pof serve` uses where installed, and ONNX Runtime), creates the app
in this process, warms it with one search, and times ``--rounds`` passes over ``--photos``
made-up 1024 x 768 JPEGs (bench/harness.py's: one to four real faces on a blurred photo) sent
one at a time, as a phone at a protest would: upload, detection, every face's landmarks and
descriptor, the open-set search, the bystander-blurred copy the page shows.
Prints the median and 95th percentile of the request time (the whole request, in process:
no network). The two runtimes alternate, round by round, so a busy machine hurts both alike.
The app uses every core for each model (the ``threads`` setting's automatic value in
`pof serve`); ``POF_THREADS=1`` measures one thread a model. Results also go to
bench/results/serve_latency.json.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench.harness import make_photos, markdown_table, parser, save, small_dataset, viewer_token

RUNTIMES = ("openvino", "onnxruntime")


def search(client, hdr: dict, data: bytes):
    r = client.post("/api/search", headers=hdr, files={"image": ("p.jpg", data, "image/jpeg")})
    r.raise_for_status()
    return r


def start_apps(ds: Path, first: bytes, hdr: dict) -> dict:
    """One app per runtime, each warmed by one search: runtime -> (client, first search s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from pof.casework.accounts import fast_hasher
    from pof.web.app import create_app
    from pof.web.state import WebConfig

    config = WebConfig(hasher=fast_hasher(), search_rate=(10**6, 60.0))
    clients = {}
    for runtime in RUNTIMES:
        os.environ["POF_RUNTIME"] = runtime       # read when the app makes its pipeline
        client = TestClient(create_app(ds, config))
        t = time.perf_counter()
        search(client, hdr, first)
        clients[runtime] = (client, time.perf_counter() - t)
    return clients


def measure(clients: dict, hdr: dict, photos: list[bytes], rounds: int) -> tuple[dict, dict]:
    """Request seconds and faces found per runtime, the runtimes alternating round by round."""
    times: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    faces = {r: 0 for r in RUNTIMES}
    for _ in range(rounds):
        for runtime in RUNTIMES:
            client = clients[runtime][0]
            for data in photos:
                t = time.perf_counter()
                r = client.post("/api/search", headers=hdr, files={"image": ("p.jpg", data, "image/jpeg")})
                times[runtime].append(time.perf_counter() - t)
                r.raise_for_status()
                faces[runtime] += len(r.json()["faces"])
    return times, faces


def report(args, clients: dict, times: dict, faces: dict) -> tuple[dict, str]:
    out = {"photos": args.photos, "rounds": args.rounds, "load_average": os.getloadavg()}
    rows = []
    for runtime in RUNTIMES:
        ms = np.array(times[runtime]) * 1000
        row = {"first_s": round(clients[runtime][1], 2), "p50_ms": round(float(np.median(ms)), 1),
               "p95_ms": round(float(np.percentile(ms, 95)), 1),
               "faces_per_photo": round(faces[runtime] / len(ms), 2)}
        out[runtime] = row
        rows.append([runtime, f"{row['first_s']} s", f"{row['p50_ms']} ms", f"{row['p95_ms']} ms",
                     row["faces_per_photo"]])
    table = markdown_table(["runtime", "first search (models load)", "median", "95th percentile",
                            "faces a photo"], rows)
    return out, table


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp())
    try:
        ds = small_dataset(work)
        hdr = {"Authorization": f"Bearer {viewer_token(ds)}"}
        (work / "photos").mkdir()
        photos = [p.read_bytes() for p in make_photos(work / "photos", args.photos)]
        clients = start_apps(ds, photos[0], hdr)
        times, faces = measure(clients, hdr, photos, args.rounds)
        out, table = report(args, clients, times, faces)
        print(table)
        print(json.dumps(out))
        save("serve_latency", out, table)
    finally:
        os.environ.pop("POF_RUNTIME", None)
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
