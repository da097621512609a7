#!/usr/bin/env python
"""Core benchmark (issue 2): pof vs the face_recognition library, in one run, on the same photos.

Needs the set that ``bench/make_core_set.py`` writes under ``bench/work/core/``.

pof is driven through its command line (README, "Commands") exactly as a user would:
    pof build GALLERY --out DATASET
    pof search DATASET PROBE... --json          (batches of --batch probes per invocation)
    pof verify --pairs PAIRS.csv --root DIR --json   (falls back to: pof eval pairs ... --json)
The peer (face_recognition 1.3.0: dlib HOG detector, upsample 1, + dlib ResNet) runs in-process
with its documented tolerance 0.6 on the euclidean distance.

Writes bench/results/core.json and prints Markdown tables.

    python bench/core.py                 # both systems
    python bench/core.py --peer-only     # the peer alone (e.g. while pof's CLI does not exist)
    python bench/core.py --pof-cmd "python bench/fake_pof.py"   # harness test with a fake pof
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_ROOT = HERE / "work" / "core"
DEFAULT_OUT = HERE / "results" / "core.json"
CONDITIONS = ["plain", "masked", "eyeband", "small", "jpeg_blur"]
PEER_TOLERANCE = 0.6
# Which face of a photo both systems are scored on: "largest" here (Yale: one person a photo),
# "center" in bench/public.py (LFW photos are centred on the person they are labelled with; a
# larger face beside them is someone else's). pof's `pof.stages.select.subject` rules.
FACE_RULE = "largest"


# ----------------------------------------------------------------------------- helpers

def rel(p: Path) -> str:
    """Path as passed on the command line: relative to the repository root when possible."""
    p = Path(p).resolve()
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        return str(p)


def pin_cores(n: int) -> list[int]:
    """Pin this process (and so every child process) to ``n`` cores; returns the cores."""
    try:
        cores = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, set(cores))
        return cores
    except (AttributeError, OSError):
        return []


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(cores: list[int]) -> dict:
    model = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return {"nproc": nproc, "cpu_count": os.cpu_count(), "cpu_model": model,
            "pinned_cores": cores, "loadavg_at_start": _loadavg(), "mem_total": mem, "platform": platform.platform(),
            "python": sys.version.split()[0], "executable": sys.executable,
            "thread_env": {k: os.environ.get(k) for k in
                           ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Log:
    """Every external command, its wall time and outcome (recorded in the JSON)."""

    def __init__(self):
        self.commands: list[dict] = []

    def run(self, cmd: list[str], timeout: float, note: str = "") -> dict:
        t0 = time.perf_counter()
        rec = {"note": note, "cmd": shlex.join(cmd)}
        try:
            cp = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                                timeout=timeout)
            rec.update(rc=cp.returncode, stdout=cp.stdout, stderr=cp.stderr)
        except subprocess.TimeoutExpired as e:
            rec.update(rc=None, error=f"timeout after {timeout:.0f} s",
                       stdout=(e.stdout or b"").decode("utf-8", "replace")
                       if isinstance(e.stdout, bytes) else (e.stdout or ""),
                       stderr="")
        except OSError as e:
            rec.update(rc=None, error=f"{type(e).__name__}: {e}", stdout="", stderr="")
        rec["wall_s"] = round(time.perf_counter() - t0, 3)
        logged = {k: v for k, v in rec.items() if k not in ("stdout", "stderr")}
        if rec.get("rc") != 0:
            logged["stderr_tail"] = (rec.get("stderr") or "")[-2000:]
        self.commands.append(logged)
        return rec


# ----------------------------------------------------------------------------- pof parsing

def parse_json_lines(text: str) -> tuple[list[dict], list[str]]:
    """JSON objects, one a line; returns (objects, bad lines). Blank lines are skipped."""
    objs, bad = [], []
    for line in (text or "").splitlines():
        s = line.strip()
        if not s:
            continue
        try:
            o = json.loads(s)
        except ValueError:
            bad.append(s[:300])
            continue
        if isinstance(o, dict):
            objs.append(o)
        else:
            bad.append(s[:300])
    return objs, bad


def _box_area(face: dict) -> float:
    try:
        b = face.get("box") or [0, 0, 0, 0]
        return float(b[2]) * float(b[3])
    except (TypeError, ValueError, IndexError):
        return 0.0


def largest_face(faces) -> dict | None:
    faces = [f for f in (faces or []) if isinstance(f, dict)]
    return max(faces, key=_box_area) if faces else None


def pick_box(boxes: list, size: tuple[int, int] | None = None) -> int:
    """Index of the scored face among ``boxes`` (x, y, w, h) by FACE_RULE; "center" needs the
    photo's (width, height)."""
    if FACE_RULE == "largest":
        return max(range(len(boxes)), key=lambda i: boxes[i][2] * boxes[i][3])
    if FACE_RULE != "center" or size is None:
        raise ValueError(f"face rule {FACE_RULE!r} needs the photo size")
    from pof.stages.select import off_centre
    return min(range(len(boxes)), key=lambda i: off_centre(boxes[i], *size))


def scored_face(faces, size: tuple[int, int] | None = None) -> dict | None:
    """The face of a ``pof search --json`` object that the benchmark scores (FACE_RULE)."""
    faces = [f for f in (faces or []) if isinstance(f, dict)]
    if FACE_RULE == "largest" or not faces:
        return largest_face(faces)
    boxes = []
    for f in faces:
        try:
            boxes.append([float(v) for v in f.get("box")][:4])
        except (TypeError, ValueError):
            boxes.append([-1e9, -1e9, 0.0, 0.0])
    return faces[pick_box(boxes, size)]


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    from PIL import Image
    with Image.open(REPO / path) as im:
        return im.size


def pof_face_outcome(obj: dict, size: tuple[int, int] | None = None) -> dict:
    """One ``pof search --json`` object -> the outcome of its scored face (FACE_RULE; the
    largest, or with "center" the one nearest the centre of a photo of ``size``)."""
    if obj.get("error"):
        return {"detected": False, "error": str(obj["error"])}
    f = scored_face(obj.get("faces"), size)
    if f is None:
        return {"detected": False, "error": None}
    cands = [c for c in (f.get("candidates") or []) if isinstance(c, dict)]
    top = cands[0] if cands else None
    return {"detected": True, "error": None,
            "n_faces": len(obj.get("faces") or []),
            "top_person": None if top is None else str(top.get("person")),
            "score": None if top is None else top.get("score"),
            "fmr": None if top is None else top.get("fmr"),
            "match": f.get("decision") == "match",
            "decision": f.get("decision"),
            "fpir": f.get("fpir"), "threshold": f.get("threshold")}


def assign_search_results(paths: list[str], objs: list[dict]) -> dict[str, dict]:
    """Map the JSON objects of one ``pof search`` run back to the probe paths passed to it.

    By the ``image`` field (as passed, as an absolute path, or by a unique basename); when
    that fails for everything and the counts agree, by order.
    """
    by_abs = {os.path.normpath(str((REPO / p).resolve())): p for p in paths}
    by_name = Counter(Path(p).name for p in paths)
    name_to_path = {Path(p).name: p for p in paths}
    out: dict[str, dict] = {}
    unplaced = []
    for o in objs:
        img = o.get("image")
        key = None
        if isinstance(img, str):
            if img in paths:
                key = img
            else:
                a = os.path.normpath(str((REPO / img).resolve()))
                if a in by_abs:
                    key = by_abs[a]
                elif by_name.get(Path(img).name) == 1:
                    key = name_to_path[Path(img).name]
        if key is None or key in out:
            unplaced.append(o)
        else:
            out[key] = o
    if unplaced and not out and len(objs) == len(paths):
        out = dict(zip(paths, objs))
    return out


# ----------------------------------------------------------------------------- metrics

def ident_metrics(recs: list[dict]) -> dict:
    """Open-set identification figures over probe records.

    Each record: role (mated/nonmated), person, detected, top_person, match, failed (the
    system errored on the probe rather than finding no face).
    """
    mated = [r for r in recs if r["role"] == "mated"]
    non = [r for r in recs if r["role"] == "nonmated"]
    mdet = [r for r in mated if r["detected"]]
    correct = [r for r in mdet if r.get("top_person") == r["person"]]

    def rate(a, b):
        return None if b == 0 else round(a / b, 4)

    return {
        "n_probes": len(recs), "n_mated": len(mated), "n_nonmated": len(non),
        "n_mated_detected": len(mdet),
        # rank-1 among mated probes in which a face was found
        "rank1_detected": rate(len(correct), len(mdet)),
        # rank-1 over all mated probes, fail-to-detect counted as a miss
        "rank1_all": rate(len(correct), len(mated)),
        # detection-and-identification rate at the system's decision threshold
        "dir": rate(sum(1 for r in correct if r.get("match")), len(mated)),
        # mated probes given a confident match to the WRONG person
        "mated_wrong_match": rate(sum(1 for r in mdet if r.get("match")
                                      and r.get("top_person") != r["person"]), len(mated)),
        # nonmated probes that still got a match decision
        "fpir": rate(sum(1 for r in non if r["detected"] and r.get("match")), len(non)),
        "ftd": rate(sum(1 for r in recs if not r["detected"]), len(recs)),
        "ftd_mated": rate(sum(1 for r in mated if not r["detected"]), len(mated)),
        "n_failed": sum(1 for r in recs if r.get("failed")),
    }


def ident_by_condition(recs: list[dict]) -> dict:
    out = {c: ident_metrics([r for r in recs if r["condition"] == c]) for c in CONDITIONS
           if any(r["condition"] == c for r in recs)}
    out["overall"] = ident_metrics(recs)
    return out


def cv_accuracy(pairs: list[dict], scores: dict) -> float | None:
    """LFW-protocol 10-fold accuracy from raw scores (pof.evaluation.metrics.accuracy_10fold)."""
    if not scores:
        return None
    from pof.evaluation.metrics import accuracy_10fold
    key = lambda p: (p["file_x"], p["file_y"])  # noqa: E731
    s = np.array([scores.get(key(p), -np.inf) for p in pairs], float)
    y = np.array([p["Decision"] == "Yes" for p in pairs])
    return round(accuracy_10fold(s, y), 4)


def verif_metrics(pairs: list[dict], same: dict, failed: set, scores: dict | None = None) -> dict:
    """Pair accuracy at the system's own threshold (a pair the system could not score counts
    as "not same"), and the 10-fold accuracy of the LFW protocol from the raw scores."""
    n = len(pairs)
    gen = [p for p in pairs if p["Decision"] == "Yes"]
    imp = [p for p in pairs if p["Decision"] != "Yes"]
    key = lambda p: (p["file_x"], p["file_y"])  # noqa: E731
    ok = [p for p in pairs if key(p) not in failed]
    right = lambda p: bool(same.get(key(p), False)) == (p["Decision"] == "Yes")  # noqa: E731
    r = lambda a, b: None if b == 0 else round(a / b, 4)  # noqa: E731
    return {"n_pairs": n, "n_genuine": len(gen), "n_impostor": len(imp),
            "n_failed": len(failed),
            "accuracy": r(sum(right(p) for p in pairs), n),
            "accuracy_scored_pairs": r(sum(right(p) for p in ok), len(ok)),
            "genuine_accept_rate": r(sum(bool(same.get(key(p))) for p in gen), len(gen)),
            "false_accept_rate": r(sum(bool(same.get(key(p))) for p in imp), len(imp)),
            "accuracy_10fold": cv_accuracy(pairs, scores or {})}


# ----------------------------------------------------------------------------- pof side

def find_pof(override: str | None, log: Log) -> tuple[list[str] | None, str]:
    if override:
        return shlex.split(override), "given by --pof-cmd"
    tries = [[sys.executable, "-m", "pof"]]
    script = shutil.which("pof", path=str(Path(sys.executable).parent)) or shutil.which("pof")
    if script:
        tries.append([script])
    reasons = []
    for base in tries:
        rec = log.run(base + ["search", "--help"], timeout=120, note="probe pof CLI")
        if rec.get("rc") == 0:
            return base, "ok"
        reasons.append(f"{shlex.join(base)} search --help: rc={rec.get('rc')} "
                       f"{(rec.get('stderr') or rec.get('error') or '').strip()[-300:]}")
    return None, "; ".join(reasons)


def count_built(dataset: Path) -> int | None:
    md = dataset / "metadata.csv"
    if md.is_file():
        try:
            return len(read_csv(md))
        except (OSError, csv.Error):
            pass
    card = dataset / "pof.json"
    if card.is_file():
        try:
            c = json.loads(card.read_text()).get("counts", {})
            if isinstance(c.get("images"), int):
                return c["images"]
        except (OSError, ValueError, AttributeError):
            pass
    return None


def pof_build(base, log, src: Path, dataset: Path, n_images: int, timeout) -> dict:
    shutil.rmtree(dataset, ignore_errors=True)
    rec = log.run(base + ["build", rel(src), "--out", rel(dataset)], timeout, "pof build")
    built = count_built(dataset) if rec.get("rc") == 0 else None
    res = {"cmd": rec["cmd"], "rc": rec.get("rc"), "wall_s": rec["wall_s"],
           "images_in": n_images, "faces_built": built}
    if rec.get("rc") != 0:
        res["error"] = (f"rc={rec.get('rc')}: " + (rec.get("error") or "")
                        + (rec.get("stderr") or "").strip()[-1000:])
    else:
        # faces/s counts the images fed in (one face each); faces_built is what pof wrote
        res["faces_per_s"] = round(n_images / rec["wall_s"], 3) if rec["wall_s"] else None
    return res


def pof_search(base, log, dataset: Path, probes: list[str], batch: int, timeout,
               note="pof search") -> tuple[dict[str, dict], dict]:
    """Runs ``pof search`` over the probes in batches; returns (outcome per probe, run info)."""
    outcomes: dict[str, dict] = {}
    info = {"invocations": 0, "wall_s": 0.0, "failed_invocations": [], "bad_json_lines": 0,
            "bad_json_examples": [], "missing_results": 0, "fpir_reported": [], "thresholds": []}
    for i in range(0, len(probes), batch):
        chunk = probes[i:i + batch]
        rec = log.run(base + ["search", rel(dataset)] + chunk + ["--json"], timeout, note)
        info["invocations"] += 1
        info["wall_s"] += rec["wall_s"]
        objs, bad = parse_json_lines(rec.get("stdout", ""))
        info["bad_json_lines"] += len(bad)
        info["bad_json_examples"] += bad[: max(0, 5 - len(info["bad_json_examples"]))]
        if rec.get("rc") != 0:
            info["failed_invocations"].append(
                {"first_probe": chunk[0], "rc": rec.get("rc"),
                 "error": rec.get("error") or (rec.get("stderr") or "").strip()[-500:]})
        got = assign_search_results(chunk, objs)
        for p in chunk:
            if p in got:
                o = pof_face_outcome(got[p], image_size(p) if FACE_RULE == "center" else None)
                o["failed"] = False
                if o.get("fpir") is not None:
                    info["fpir_reported"].append(o["fpir"])
                if o.get("threshold") is not None:
                    info["thresholds"].append(o["threshold"])
            else:
                info["missing_results"] += 1
                o = {"detected": False, "failed": True,
                     "error": f"no result line (rc={rec.get('rc')})"}
            outcomes[p] = o
    info["wall_s"] = round(info["wall_s"], 3)
    n = len(probes)
    info["probes"] = n
    info["searches_per_s"] = round(n / info["wall_s"], 3) if info["wall_s"] else None
    fp = info.pop("fpir_reported")
    info["fpir_reported_median"] = float(np.median(fp)) if fp else None
    th = info.pop("thresholds")
    info["threshold_median"] = float(np.median(th)) if th else None
    return outcomes, info


def pof_verify(base, log, pairs_csv: Path, root: Path, pairs: list[dict], timeout) -> dict:
    face = ["--face", FACE_RULE] if FACE_RULE != "largest" else []
    forms = [base + ["verify", "--pairs", rel(pairs_csv), "--root", rel(root), "--json"] + face,
             base + ["eval", "pairs", rel(pairs_csv), "--root", rel(root), "--json"] + face]
    attempts = []
    for cmd in forms:
        rec = log.run(cmd, timeout, "pof verify pairs")
        objs, bad = parse_json_lines(rec.get("stdout", ""))
        per_pair = [o for o in objs if "file_x" in o and "file_y" in o]
        attempts.append({"cmd": rec["cmd"], "rc": rec.get("rc"), "wall_s": rec["wall_s"],
                         "pair_lines": len(per_pair), "bad_json_lines": len(bad),
                         "error": None if rec.get("rc") == 0 else
                         (rec.get("error") or (rec.get("stderr") or "").strip()[-500:])})
        if not per_pair:
            continue
        same, failed, thresholds, scores = {}, set(), [], {}
        got = {(str(o["file_x"]), str(o["file_y"])): o for o in per_pair}
        for p in pairs:
            k = (p["file_x"], p["file_y"])
            o = got.get(k)
            if o is None or o.get("error") or o.get("same") is None:
                failed.add(k)
                continue
            same[k] = bool(o["same"])
            if o.get("score") is not None:
                scores[k] = float(o["score"])
            if o.get("threshold") is not None:
                thresholds.append(o["threshold"])
        res = verif_metrics(pairs, same, failed, scores)
        res.update(threshold=(float(np.median(thresholds)) if thresholds else None),
                   cmd=rec["cmd"], wall_s=rec["wall_s"], rc=rec.get("rc"),
                   bad_json_lines=len(bad), attempts=attempts)
        return res
    return {"error": "no per-pair JSON lines from pof", "attempts": attempts}


# ----------------------------------------------------------------------------- peer side

class Peer:
    def __init__(self):
        t0 = time.perf_counter()
        import face_recognition as fr  # noqa: WPS433
        self.fr = fr
        self.import_s = round(time.perf_counter() - t0, 3)
        import dlib
        self.versions = {"face_recognition": _dist_version("face_recognition"),
                         "dlib": getattr(dlib, "__version__", None),
                         "face_recognition_models": _dist_version("face_recognition_models")}

    def encode(self, path: Path):
        """load + HOG detect (upsample 1) + encode the scored face (FACE_RULE: the largest, or
        the one nearest the centre); None when no face."""
        fr = self.fr
        img = fr.load_image_file(str(path))
        locs = fr.face_locations(img, number_of_times_to_upsample=1, model="hog")
        if not locs:
            return None
        # face_recognition's boxes are (top, right, bottom, left)
        boxes = [(b[3], b[0], b[1] - b[3], b[2] - b[0]) for b in locs]
        loc = locs[pick_box(boxes, (img.shape[1], img.shape[0]))]
        enc = fr.face_encodings(img, known_face_locations=[loc])
        return enc[0] if enc else None

    def build(self, files: list[tuple[Path, str]]) -> tuple[np.ndarray, list[str], dict, dict]:
        t0 = time.perf_counter()
        encs, persons, per_file = [], [], {}
        for path, person in files:
            e = self.encode(path)
            per_file[path] = e
            if e is not None:
                encs.append(e)
                persons.append(person)
        wall = time.perf_counter() - t0
        G = np.stack(encs) if encs else np.zeros((0, 128))
        info = {"images_in": len(files), "faces_built": len(encs), "wall_s": round(wall, 3),
                "faces_per_s": round(len(files) / wall, 3) if wall else None}
        return G, persons, per_file, info

    def search(self, G, persons, probes: list[Path]) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        out = {}
        for p in probes:
            e = self.encode(p)
            if e is None or len(G) == 0:
                out[p] = {"detected": e is not None, "failed": False, "top_person": None,
                          "match": False}
                continue
            d = np.linalg.norm(G - e, axis=1)
            i = int(np.argmin(d))
            out[p] = {"detected": True, "failed": False, "top_person": persons[i],
                      "score": round(float(d[i]), 4), "match": bool(d[i] <= PEER_TOLERANCE)}
        wall = time.perf_counter() - t0
        return out, {"probes": len(probes), "wall_s": round(wall, 3),
                     "searches_per_s": round(len(probes) / wall, 3) if wall else None}


def _dist_version(name: str):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return None


def peer_verify(pairs: list[dict], encs: dict[str, np.ndarray | None]) -> dict:
    same, failed, scores = {}, set(), {}
    for p in pairs:
        k = (p["file_x"], p["file_y"])
        a, b = encs.get(p["file_x"]), encs.get(p["file_y"])
        if a is None or b is None:
            failed.add(k)
            continue
        dist = float(np.linalg.norm(a - b))
        same[k] = dist <= PEER_TOLERANCE
        scores[k] = -dist
    res = verif_metrics(pairs, same, failed, scores)
    res["threshold"] = PEER_TOLERANCE
    return res


# ----------------------------------------------------------------------------- report

def fmt(v, pct=True):
    if v is None:
        return "n/a"
    if pct:
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def markdown(res: dict) -> str:
    systems = [s for s in ("pof", "peer") if res.get(s)]
    L = []
    L.append("### Open-set identification (largest face per probe)\n")
    L.append("| condition | system | mated | nonmated | rank-1 (detected) | rank-1 (all mated) "
             "| DIR | wrong-person match | FPIR | fail-to-detect |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in CONDITIONS + ["overall"]:
        for s in systems:
            m = (res[s].get("ident") or {}).get(c)
            if not m:
                L.append(f"| {c} | {s} | | | {res[s].get('error', 'n/a')} | | | | | |")
                continue
            extra = f" ({m['n_failed']} errored)" if m.get("n_failed") else ""
            L.append(f"| {c} | {s} | {m['n_mated']} | {m['n_nonmated']} | "
                     f"{fmt(m['rank1_detected'])} | {fmt(m['rank1_all'])} | {fmt(m['dir'])} | "
                     f"{fmt(m['mated_wrong_match'])} | {fmt(m['fpir'])} | "
                     f"{fmt(m['ftd'])}{extra} |")
    if (res.get("pof") or {}).get("search_threshold") is not None:
        L.append(f"\npof search decision threshold (median over faces): "
                 f"{res['pof']['search_threshold']}, reported FPIR target "
                 f"{res['pof'].get('search_fpir_target')}; peer: distance <= {PEER_TOLERANCE}")
    L.append("\n### Verification pairs\n")
    L.append("| system | pairs | accuracy | accuracy (scored pairs) | genuine accept | "
             "false accept | unscored | threshold | 10-fold accuracy (LFW protocol) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for s in systems:
        v = res[s].get("verify") or {}
        if "accuracy" not in v:
            L.append(f"| {s} | | {v.get('error', 'n/a')} | | | | | | |")
            continue
        L.append(f"| {s} | {v['n_pairs']} | {fmt(v['accuracy'])} | "
                 f"{fmt(v['accuracy_scored_pairs'])} | {fmt(v['genuine_accept_rate'])} | "
                 f"{fmt(v['false_accept_rate'])} | {v['n_failed']} | "
                 f"{fmt(v.get('threshold'), pct=False)} | {fmt(v.get('accuracy_10fold'))} |")
    L.append("\n### Speed (same run, same cores)\n")
    L.append("| test | pof | peer | pof/peer |")
    L.append("|---|---|---|---|")
    for key, label, unit in [("build_small", "build, core gallery", "faces/s"),
                             ("search_small", "search, core probes", "searches/s"),
                             ("build_large", "build, all Yale images", "faces/s"),
                             ("search_large", "search, core probes, one pof call", "searches/s")]:
        sp = res.get("speed", {}).get(key, {})
        field = "faces_per_s" if "faces" in unit else "searches_per_s"
        a = (sp.get("pof") or {}).get(field)
        b = (sp.get("peer") or {}).get(field)
        na = (sp.get("pof") or {}).get("images_in") or (sp.get("pof") or {}).get("probes")
        nb = (sp.get("peer") or {}).get("images_in") or (sp.get("peer") or {}).get("probes")
        ratio = sp.get("ratio_pof_over_peer")
        L.append(f"| {label} | {fmt(a, False)} {unit} (n={na}) | {fmt(b, False)} {unit} "
                 f"(n={nb}) | {'n/a' if ratio is None else f'{ratio:.2f}'} |")
    sl = res.get("speed", {}).get("pof_search_steady")
    if sl:
        L.append(f"\npof search fixed cost (one probe, incl. model load): "
                 f"{sl.get('one_probe_wall_s')} s; steady-state rate excluding it: "
                 f"{fmt(sl.get('steady_searches_per_s'), False)} searches/s")
    return "\n".join(L)


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="pof vs face_recognition, core benchmark")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--peer-only", action="store_true", help="skip pof")
    ap.add_argument("--pof-only", action="store_true", help="skip the peer")
    ap.add_argument("--pof-cmd", default=None,
                    help="command that runs pof (default: python -m pof, else `pof`)")
    ap.add_argument("--batch", type=int, default=100, help="probes per pof search call")
    ap.add_argument("--cores", type=int, default=2, help="pin everything to this many cores")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per pof command")
    ap.add_argument("--no-large", action="store_true", help="skip the large-set speed tests")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    root = args.root.resolve()
    need = [root / "gallery", root / "all", root / "probes.csv", root / "pairs.csv"]
    if not all(p.exists() for p in need):
        print(f"error: benchmark set missing under {root}; run bench/make_core_set.py first",
              file=sys.stderr)
        return 2
    cores = pin_cores(args.cores)
    log = Log()
    res: dict = {"benchmark": "core (issue 2)",
                 "invocation": shlex.join([sys.executable] + sys.argv),
                 "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "machine": machine_info(cores),
                 "data": {"source": "The Yale Face Database (Belhumeur, Hespanha, Kriegman "
                                    "1997)", "root": rel(root)},
                 "peer_rule": {"detector": "dlib HOG, upsample 1", "encoder": "dlib ResNet "
                               "(face_recognition.face_encodings)", "tolerance": PEER_TOLERANCE,
                               "identification": "nearest gallery encoding, match if "
                                                 "distance <= tolerance"}}

    probes_rows = read_csv(root / "probes.csv")
    pairs = read_csv(root / "pairs.csv")
    gallery = sorted((p, p.parent.name) for p in (root / "gallery").glob("*/*") if p.is_file())
    allset = sorted((p, p.parent.name) for p in (root / "all").glob("*/*") if p.is_file())
    probe_paths = [rel(root / r["path"]) for r in probes_rows]
    res["data"].update(gallery_images=len(gallery), gallery_persons=len({g[1] for g in gallery}),
                       all_images=len(allset), probes=len(probes_rows),
                       probes_by_role=dict(Counter(r["role"] for r in probes_rows)),
                       conditions=CONDITIONS, pairs=len(pairs))
    speed: dict = {k: {} for k in ("build_small", "search_small", "build_large",
                                   "search_large")}
    res["speed"] = speed

    def records(outcomes: dict) -> list[dict]:
        return [dict(outcomes[p], person=r["person"], role=r["role"], condition=r["condition"],
                     path=r["path"]) for p, r in zip(probe_paths, probes_rows)]

    # ---------------- pof
    if not args.peer_only:
        base, why = find_pof(args.pof_cmd, log)
        pof: dict = {"command": None if base is None else shlex.join(base)}
        res["pof"] = pof
        if base is None:
            pof["error"] = f"pof CLI not available: {why}"
            print(f"pof: {pof['error']}", file=sys.stderr)
        else:
            print(f"pof: {shlex.join(base)}", file=sys.stderr)
            ds = root / "dataset"
            b = pof_build(base, log, root / "gallery", ds, len(gallery), args.timeout)
            speed["build_small"]["pof"] = b
            if b.get("rc") != 0:
                pof["error"] = f"pof build failed: {b.get('error', '')[-300:]}"
            else:
                out, info = pof_search(base, log, ds, probe_paths, args.batch, args.timeout)
                speed["search_small"]["pof"] = info
                pof["search"] = info
                recs = records(out)
                pof["ident"] = ident_by_condition(recs)
                pof["search_threshold"] = info.get("threshold_median")
                pof["search_fpir_target"] = info.get("fpir_reported_median")
                pof["per_probe"] = [{k: r.get(k) for k in ("path", "detected", "top_person",
                                                           "score", "match", "error")}
                                    for r in recs]
            pof["verify"] = pof_verify(base, log, root / "pairs.csv", root, pairs, args.timeout)
            if not args.no_large:
                dsl = root / "dataset_all"
                bl = pof_build(base, log, root / "all", dsl, len(allset), args.timeout)
                speed["build_large"]["pof"] = bl
                if bl.get("rc") == 0:
                    _, info = pof_search(base, log, dsl, probe_paths, len(probe_paths),
                                         args.timeout, "pof search, one call")
                    speed["search_large"]["pof"] = info
                    _, one = pof_search(base, log, dsl, probe_paths[:1], 1, args.timeout,
                                        "pof search, one probe")
                    steady = None
                    if info["wall_s"] and one["wall_s"] and info["wall_s"] > one["wall_s"]:
                        steady = round((len(probe_paths) - 1)
                                       / (info["wall_s"] - one["wall_s"]), 3)
                    speed["pof_search_steady"] = {"one_probe_wall_s": one["wall_s"],
                                                  "steady_searches_per_s": steady}

    # ---------------- peer
    if not args.pof_only:
        peer = Peer()
        pr: dict = {"import_s": peer.import_s, "versions": peer.versions}
        res["peer"] = pr
        G, persons, _, binfo = peer.build(gallery)
        speed["build_small"]["peer"] = binfo
        out, sinfo = peer.search(G, persons, [REPO / p for p in probe_paths])
        speed["search_small"]["peer"] = sinfo
        pr["search"] = sinfo
        out = {rel(k): v for k, v in out.items()}
        recs = records(out)
        pr["ident"] = ident_by_condition(recs)
        pr["per_probe"] = [{k: r.get(k) for k in ("path", "detected", "top_person", "score",
                                                  "match")} for r in recs]
        # large gallery: every Yale image; its encodings also serve the verification pairs
        GL, personsL, per_file, blinfo = peer.build(allset)
        speed["build_large"]["peer"] = blinfo
        encs = {p.relative_to(root).as_posix(): e for p, e in per_file.items()}
        pr["verify"] = peer_verify(pairs, encs)
        if not args.no_large:
            _, slinfo = peer.search(GL, personsL, [REPO / p for p in probe_paths])
            speed["search_large"]["peer"] = slinfo

    for k, sp in speed.items():
        a, b = sp.get("pof") or {}, sp.get("peer") or {}
        f = "faces_per_s" if k.startswith("build") else "searches_per_s"
        if a.get(f) and b.get(f):
            sp["ratio_pof_over_peer"] = round(a[f] / b[f], 3)

    res["machine"]["loadavg_at_end"] = _loadavg()
    res["commands"] = log.commands
    res["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    res["table_md"] = markdown(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=1, default=str))
    os.replace(tmp, args.out)
    print(res["table_md"])
    print(f"\ntotal wall time {res['total_wall_s']} s on {res['machine']['nproc']} CPU "
          f"({res['machine']['cpu_model']}), pinned to cores {cores}, load average "
          f"{res['machine']['loadavg_at_start']} -> {res['machine']['loadavg_at_end']}; "
          f"results in {rel(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
