"""Photos per second of pof's GPU engine, end to end on 1-megapixel JPEGs.

    python -m bench gpu_throughput [--device cuda] [--photos 2048] [--batch 64] [--half]
                                   [--threads 16] [--photo-dir DIR]
                                   [--out bench/results/gpu_throughput.json]

The photos are made first (not timed): 1024 x 768 JPEGs (quality 90), each a blurred,
enlarged photo as background with one to four real faces pasted in at widths of 60 to 260
pixels, the faces taken from the Yale images in tests/data/yale and the colour portraits in
pof/data/demo (``bench.harness.make_photos``: the benchmark needs nothing outside this
repository). Timed, end to end:
reading each file, decoding it (OpenCV, in a thread pool, one batch ahead of the device),
and ``pof.gpu.engine.GpuEngine.analyze`` (detection, 68 landmarks, crops, chips, both
recognizers, quality): every face ready to be written to a dataset. Writing the dataset
(SQLite, JPEG crops) and attributes are not part of it. The first batch warms up and is not
timed.

Also printed: how fast the thread pool decodes the photos alone, each stage's share of the device time (one extra pass with the device
synchronised between stages), the recognizers alone (descriptors per second), peak GPU
memory, and, on a GPU, how close its descriptors are to the same engine's on the CPU.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from bench.harness import GPU_HINT, PHOTO_H, PHOTO_W, RESULTS, make_photos, need, parser, save


def decode(path: Path) -> np.ndarray:
    """Read and decode one JPEG to RGB (what pof's load stage does for a JPEG)."""
    data = np.frombuffer(path.read_bytes(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def run(engine, paths: list[Path], batch: int, threads: int, progress: bool = True) -> tuple[float, int]:
    """Seconds for reading, decoding and analysing every photo after the first batch, and
    the number of faces found in them."""
    from tqdm import tqdm

    batches = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    faces = 0
    with ThreadPoolExecutor(threads) as pool:
        engine.analyze(list(pool.map(decode, batches[0])))   # warm-up, not timed
        start = time.perf_counter()
        ahead = [pool.submit(decode, p) for p in batches[1]] if len(batches) > 1 else []
        for k in tqdm(range(1, len(batches)), desc="photos", unit="batch", disable=not progress):
            photos = [f.result() for f in ahead]
            ahead = [pool.submit(decode, p) for p in batches[k + 1]] if k + 1 < len(batches) else []
            faces += sum(len(f) for f in engine.analyze(photos))
        seconds = time.perf_counter() - start
    return seconds, faces


def stage_times(engine, photos: list[np.ndarray]) -> dict[str, float]:
    """Milliseconds per photo of each stage, the device synchronised between stages."""
    import torch

    from pof.gpu import quality
    from pof.runtime import workers

    sync = (lambda: torch.cuda.synchronize()) if engine.device.type == "cuda" else (lambda: None)
    times: dict[str, float] = {}
    originals = {name: getattr(engine, name) for name in ("_detect", "_landmarks", "_embed")}
    # blur on the device, and the wait for the pose workers (their work overlaps the device's;
    # groups of fewer than pof.gpu.poses.INLINE_FACES faces are fitted in this process, then)
    functions = [(quality, "blur", "blur"), (workers.Pending, "result", "pose wait")]
    saved = [getattr(owner, attr) for owner, attr, _ in functions]

    def timed(name, fn):
        def wrapper(*a, **k):
            sync()
            t = time.perf_counter()
            r = fn(*a, **k)
            sync()
            times[name] = times.get(name, 0.0) + time.perf_counter() - t
            return r
        return wrapper

    for name, fn in originals.items():
        setattr(engine, name, timed(name, fn))
    for (owner, attr, name), fn in zip(functions, saved):
        setattr(owner, attr, timed(name, fn))
    try:
        sync()
        t = time.perf_counter()
        engine.analyze(photos)
        sync()
        total = time.perf_counter() - t
    finally:
        for name in originals:
            delattr(engine, name)
        for (owner, attr, _), fn in zip(functions, saved):
            setattr(owner, attr, fn)
    times["other (upload, crops, download, records)"] = total - sum(times.values())
    return {k.lstrip("_"): round(1000 * v / len(photos), 3) for k, v in times.items()}


def descriptor_rate(engine, count: int = 1024, repeats: int = 5) -> dict[str, float]:
    """Chips per second through each recognizer alone (random pixels: speed only)."""
    import torch

    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    out = {}
    for name, model, shape in (("dlib_resnet", engine.dlib, (count, 3, 150, 150)),
                               (engine.fused.SECOND.name, engine.mobile, (count, 112, 112, 3))):
        x = torch.randint(0, 256, shape, device=engine.device).to(engine.dtype)
        with torch.inference_mode():
            model(x)
            sync()
            t = time.perf_counter()
            for _ in range(repeats):
                model(x)
            sync()
        out[name] = round(count * repeats / (time.perf_counter() - t), 1)
    return out


def photos_for(args) -> list[Path]:
    """The photos, made in --photo-dir (or a temporary folder) unless enough are there."""
    folder = args.photo_dir or Path(tempfile.mkdtemp(prefix="pof-gpu-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    paths = sorted(folder.glob("photo*.jpg"))[:args.photos]
    if len(paths) < args.photos:
        paths = make_photos(folder, args.photos)
    print(f"made {len(paths)} photos of {PHOTO_W} x {PHOTO_H} in {time.perf_counter() - t:.1f} s", flush=True)
    return paths


def measure(args, paths: list[Path]) -> dict:
    """The engine end to end, the decoding alone, the stages, the recognizers, memory and
    (on a GPU) agreement with the CPU."""
    import torch

    from pof.gpu.engine import GpuEngine

    t = time.perf_counter()
    engine = GpuEngine(args.device, half=args.half)
    load_s = time.perf_counter() - t
    seconds, faces = run(engine, paths, args.batch, args.threads)
    timed_photos = len(paths) - min(args.batch, len(paths))
    sample = [decode(p) for p in paths[:args.batch]]
    t = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        decoded = sum(1 for _ in pool.map(decode, paths))
    decode_rate = decoded / (time.perf_counter() - t)
    result = {
        "device": torch.cuda.get_device_name() if engine.device.type == "cuda" else "cpu",
        "torch": torch.__version__, "cpu_threads": args.threads, "batch": args.batch,
        "half": args.half, "photos_timed": timed_photos, "seconds": round(seconds, 3),
        "photos_per_s": round(timed_photos / seconds, 1) if seconds else None,
        "faces": faces, "faces_per_s": round(faces / seconds, 1) if seconds else None,
        "model_load_s": round(load_s, 2),
        "decode_only_photos_per_s": round(decode_rate, 1),
        "stage_ms_per_photo": stage_times(engine, sample),
        "descriptors_per_s": descriptor_rate(engine, count=256 if engine.device.type == "cpu" else 1024),
    }
    if engine.device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["cpu_vs_gpu"] = cpu_agreement(engine, sample[:8], args.half)
    engine.close()
    return result


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--photos", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--half", action="store_true", help="recognizers in float16")
    ap.add_argument("--photo-dir", type=Path, help="make the photos here, or reuse those made before")
    ap.add_argument("--out", type=Path, default=RESULTS / "gpu_throughput.json")
    args = ap.parse_args(argv)
    need("torch", GPU_HINT)

    import torch

    if args.device.startswith("cuda"):
        # the models run on the GPU: torch's own CPU threads would only spin against the
        # decoding threads and the pose workers
        torch.set_num_threads(1)
    result = measure(args, photos_for(args))
    save("gpu_throughput", result, out=args.out)
    print(json.dumps(result, indent=2))
    return 0


def cpu_agreement(engine, photos: list[np.ndarray], half: bool) -> dict:
    """The same photos through the engine on the CPU: faces found by both, and the lowest
    cosine between their descriptors."""
    from pof.gpu.engine import GpuEngine

    gpu = engine.analyze(photos)
    cpu = GpuEngine("cpu").analyze(photos)
    cos, same = [], 0
    for g, c in zip(gpu, cpu):
        if len(g) == len(c):
            same += 1
            cos += [float(a.descriptor @ b.descriptor) for a, b in zip(g, c)]
    return {"photos": len(photos), "same_face_count": same,
            "min_cosine": round(min(cos), 6) if cos else None}



if __name__ == "__main__":
    sys.exit(main())
