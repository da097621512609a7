"""What the head-to-head studies (core: Yale; public: LFW) share: pof driven through its command
line as a user would (``pof build``, ``pof search --json``, ``pof verify --pairs``), its JSON
read back, the peer (the face_recognition library 1.3.0: dlib HOG detector, upsample 1, + dlib
ResNet, in-process, tolerance 0.6 on the euclidean distance) and the figures both are judged by.
"""
from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.harness import REPO, read_csv, rel

PEER_TOLERANCE = 0.6
# Which face of a photo both systems are scored on: "largest" for the Yale set (one person a
# photo), "center" for LFW (photos are centred on the person they are labelled with; a larger
# face beside them is someone else's). pof's `pof.stages.select.subject` rules.
FACE_RULE = "largest"


# ----------------------------------------------------------------------------- commands

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

def _searches(recs: list[dict]) -> list[dict]:
    """Probe records as ``pof.evaluation.metrics.ident_figures`` takes searches. Only the top
    candidate is known here, so a search's rank is 1 (the mate on top) or 0."""
    out = []
    for r in recs:
        ok = bool(r["detected"] and r.get("top_person") == r["person"])
        out.append({"mated": r["role"] == "mated", "detected": bool(r["detected"]),
                    "rank": 1 if ok else 0, "top_ok": ok, "top_score": -np.inf,
                    "decision_match": bool(r["detected"] and r.get("match"))})
    return out


def ident_metrics(recs: list[dict]) -> dict:
    """Open-set identification figures over probe records, by pof.evaluation.metrics.

    Each record: role (mated/nonmated), person, detected, top_person, match, failed (the
    system errored on the probe rather than finding no face).
    """
    from pof.evaluation.metrics import ident_figures
    mated = [r for r in recs if r["role"] == "mated"]
    non = [r for r in recs if r["role"] == "nonmated"]
    mdet = [r for r in mated if r["detected"]]
    every = ident_figures(_searches(recs), max_rank=1)
    wrong = [bool(r["detected"] and r.get("match") and r.get("top_person") != r["person"])
             for r in mated]
    return {
        "n_probes": len(recs), "n_mated": len(mated), "n_nonmated": len(non),
        "n_mated_detected": len(mdet),
        # rank-1 among mated probes in which a face was found
        "rank1_detected": ident_figures(_searches(mdet), max_rank=1)["rank1"],
        # rank-1 over all mated probes, fail-to-detect counted as a miss
        "rank1_all": every["rank1"],
        # detection-and-identification rate at the system's decision threshold
        "dir": every["dir_at_threshold"],
        # mated probes given a confident match to the WRONG person
        "mated_wrong_match": round(float(np.mean(wrong)), 4) if mated else None,
        # nonmated probes that still got a match decision
        "fpir": every["fpir_at_threshold"],
        "ftd": every["fail_to_detect"],
        "ftd_mated": ident_figures(_searches(mated), max_rank=1)["fail_to_detect"],
        "n_failed": sum(1 for r in recs if r.get("failed")),
    }


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
        import face_recognition as fr
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
