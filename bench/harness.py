"""What every study shares: paths, the machine it ran on, CPU pinning, argument parsing, where
results go, and the small inputs several studies make for themselves (a dataset from the test
photos, made-up 1024 x 768 photos with real faces in them).

Nothing here runs at import time; the heavy imports (pof, OpenCV) are made inside functions.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"            # sets and caches the studies make (ignored by git)
RESULTS = BENCH / "results"      # result JSON and Markdown (ignored by git)
YALE = REPO / "tests" / "data" / "yale"
DEMO = REPO / "pof" / "data" / "demo"
PASSWORD = "a long benchmark password"

# the libraries whose versions a result records (read from the installed metadata: torch is
# not imported to learn its version)
LIBRARIES = ("numpy", "onnxruntime", "openvino", "torch", "opencv-python-headless", "faiss-cpu")


# ----------------------------------------------------------------------------- paths and files

def rel(p) -> str:
    """A path as passed on a command line: relative to the repository root when it is inside."""
    p = Path(p).resolve()
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        return str(p)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def require(paths, hint: str) -> None:
    """Stop with one clear line on stderr (exit status 2) unless every path exists."""
    missing = [Path(p) for p in paths if not Path(p).exists()]
    if missing:
        print(f"error: {missing[0]} is missing; {hint}", file=sys.stderr)
        raise SystemExit(2)


PEER_HINT = "the peer is needed: pip install --no-deps -r bench/requirements.txt"
GPU_HINT = "PyTorch is needed: pip install -e '.[gpu]'"


def need(module: str, hint: str) -> None:
    """Stop with one clear line on stderr (exit status 2) unless ``module`` can be imported."""
    import importlib.util
    if importlib.util.find_spec(module) is None:
        print(f"error: no module {module!r}; {hint}", file=sys.stderr)
        raise SystemExit(2)


# ----------------------------------------------------------------------------- the machine

def pin_cores(n: int) -> list[int]:
    """Pin this process (and so every child process) to ``n`` cores; returns the cores."""
    try:
        cores = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, set(cores))
        return cores
    except (AttributeError, OSError):
        return []


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _proc_field(path: str, key: str):
    try:
        for line in open(path):
            if line.lower().startswith(key.lower()):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def versions(names=LIBRARIES) -> dict:
    """Installed versions of ``names`` (None where one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine_info(cores: list[int] | None = None) -> dict:
    """CPU model and count, memory, load, Python and library versions, thread settings."""
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return {"nproc": nproc, "cpu_count": os.cpu_count(),
            "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
            "pinned_cores": cores if cores is not None else [], "loadavg_at_start": loadavg(),
            "mem_total": _proc_field("/proc/meminfo", "MemTotal"), "platform": platform.platform(),
            "python": sys.version.split()[0], "executable": sys.executable,
            "versions": versions(),
            "thread_env": {k: os.environ.get(k) for k in
                           ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}


def commit() -> str | None:
    """``git describe`` of the checkout measured, or None outside git."""
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip() or None
    except OSError:
        return None


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- arguments

def study_name(module: str) -> str:
    """``bench.core`` -> ``core`` (and the script's name when a study runs as a script)."""
    if module == "__main__":
        return Path(sys.argv[0]).stem
    return module.rpartition(".")[2]


def parser(module: str, doc: str | None, **kw) -> argparse.ArgumentParser:
    """The argument parser of a study: its command as the program name, the first line of its
    docstring as the description and the rest as the epilog."""
    head, _, rest = (doc or "").strip().partition("\n")
    return argparse.ArgumentParser(prog=f"python -m bench {study_name(module)}", description=head,
                                   epilog=rest.strip() or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


def add_cores(ap: argparse.ArgumentParser, default: int = 2) -> None:
    ap.add_argument("--cores", type=int, default=default,
                    help="pin everything to this many cores (default %(default)s)")


def add_workers(ap: argparse.ArgumentParser, default: int = 2, help: str | None = None) -> None:
    ap.add_argument("--workers", type=int, default=default,
                    help=help or "pof worker processes (default %(default)s)")


# ----------------------------------------------------------------------------- results

def save(name: str, result: dict, table: str | None = None, out: Path | None = None,
         machine: dict | None = None) -> Path:
    """Write ``result`` as JSON (to ``out``, default bench/results/NAME.json) with the machine
    it ran on under "machine" (unless it has one), and ``table`` as Markdown beside it (same
    name, .md). Returns the JSON's path."""
    out = Path(out) if out is not None else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if "machine" not in result:
        result = {**result, "machine": machine or machine_info()}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    os.replace(tmp, out)
    if table is not None:
        out.with_suffix(".md").write_text(table.rstrip("\n") + "\n")
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table from a header and rows of cells."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- inputs

def demo_manifest(path: Path) -> Path:
    """pof's demo gallery manifest with absolute image paths, written to ``path``."""
    manifest = (DEMO / "manifest.csv").read_text().replace("gallery/", f"{DEMO / 'gallery'}/")
    path.write_text(manifest)
    return path


def test_people(folder: Path, subjects=("01", "02", "03", "04"), conditions=None) -> Path:
    """Yale test photos of ``subjects`` copied into PERSON/IMAGE folders under ``folder``:
    every photo of each, or only ``conditions`` (e.g. normal, happy)."""
    for s in subjects:
        if conditions is None:
            files = sorted(YALE.glob(f"subject{s}.*"))
        else:
            files = [YALE / f"subject{s}.{c}" for c in conditions]
        for f in files:
            person = folder / f.name.split(".")[0]
            person.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, person / f.name)
    return folder


def small_dataset(work: Path, subjects=("01", "02", "03", "04"), conditions=None,
                  command_line: bool = False) -> Path:
    """A dataset of Yale test subjects (see ``test_people``) and pof's demo gallery, built
    under ``work``/dataset with one worker, in this process or (``command_line``) by
    ``pof build``. Returns the dataset's folder."""
    src = test_people(work / "people", subjects, conditions)
    manifest = demo_manifest(work / "demo.csv")
    out = work / "dataset"
    if command_line:
        subprocess.run([sys.executable, "-m", "pof", "build", str(src), str(manifest),
                        "--out", str(out), "--workers", "1", "--quiet"], check=True)
    else:
        from pof.dataset.build import Builder
        Builder(out, workers=1).run([str(src), str(manifest)], progress=False)
    return out


def viewer_token(ds: Path, name: str = "bench") -> str:
    """A viewer account in ``ds`` with an API token (fast password hashing); returns the token."""
    from pof.casework.accounts import Accounts, fast_hasher
    from pof.dataset.catalog import Catalog

    with Catalog(ds) as cat:
        acc = Accounts(cat.db, fast_hasher())
        acc.add(name, "viewer", PASSWORD)
        return acc.new_token(name)


def viewer_session(ds: Path, name: str = "bench") -> tuple[str, str]:
    """A viewer account in ``ds`` signed in: (session id, CSRF token)."""
    from pof.casework.accounts import Accounts, fast_hasher
    from pof.dataset.catalog import Catalog

    with Catalog(ds) as cat:
        acc = Accounts(cat.db, fast_hasher())
        acc.add(name, "viewer", PASSWORD)
        return acc.new_session(name)


PHOTO_W, PHOTO_H = 1024, 768
PHOTO_JPEG_QUALITY = 90


def face_sources():
    """RGB photos with one face each: the Yale test images and the demo portraits."""
    import numpy as np
    from PIL import Image
    files = sorted(YALE.glob("subject*"))
    files += sorted(DEMO.rglob("*.jpg"))
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def make_photo(sources, seed: int):
    """One 1024 x 768 RGB photo: a blurred background and 1-4 pasted face photos."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    bg = sources[rng.integers(len(sources))]
    photo = cv2.GaussianBlur(cv2.resize(bg, (PHOTO_W, PHOTO_H)), (0, 0), 8)
    for _ in range(int(rng.integers(1, 5))):
        src = sources[rng.integers(len(sources))]
        # the source's face is about half its width: paste so the face is 60-260 px wide
        width = int(rng.uniform(60, 260)) * 2
        height = int(width * src.shape[0] / src.shape[1])
        if height >= PHOTO_H or width >= PHOTO_W:
            continue
        x, y = int(rng.integers(0, PHOTO_W - width)), int(rng.integers(0, PHOTO_H - height))
        photo[y:y + height, x:x + width] = cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)
    return photo


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` made-up photos (``make_photo``, seeds 0..count-1) as JPEGs in ``folder``."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2
    sources = face_sources()
    paths = [folder / f"photo{i:05d}.jpg" for i in range(count)]

    def write(i: int) -> None:
        bgr = cv2.cvtColor(make_photo(sources, i), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(paths[i]), bgr, [cv2.IMWRITE_JPEG_QUALITY, PHOTO_JPEG_QUALITY])

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, range(count)))
    return paths


def in_own_process(study: str, args: list[str], what: str) -> dict | None:
    """``python -m bench STUDY ARGS`` in a process of its own (so its peak memory is its own):
    the JSON object of its last output line, or None after printing why ``what`` failed."""
    r = subprocess.run([sys.executable, "-m", "bench", study, *args],
                       capture_output=True, text=True, cwd=REPO)
    if r.returncode:
        print(f"{what} failed: {r.stderr[-800:]}")
        return None
    row = json.loads(r.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    return row
