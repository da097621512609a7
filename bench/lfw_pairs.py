"""Verification on all 6,000 pairs of LFW View 2: pof against the face_recognition library.

Each is judged by the LFW protocol on LFW's own ten folds.

    python -m bench lfw_pairs [--lfw DIR] [--pairs-txt FILE] [--no-peer] [--workers N]

DIR is LFW (deep-funneled) as PERSON/PERSON_NNNN.jpg; FILE is LFW's pairs.txt (default: both
under /work/data/public, see bench/README.md). Writes bench/work/lfw_pairs/pairs.csv (file_x,
file_y, Decision, fold), runs ``pof eval pairs`` through the command line for each variant
(which face: largest or central; descriptors plain or mirror-averaged), and runs the peer
in-process (HOG, upsample 1, + dlib ResNet; two processes, accuracy only, no timing) on the
same images with the same face rules. Its encodings are cached in bench/work/lfw_pairs/peer.npz.
Prints Markdown and writes bench/results/lfw_pairs.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from bench.harness import WORK as BENCH_WORK
from bench.harness import PEER_HINT, add_workers, need, parser, require, save, write_csv

WORK = BENCH_WORK / "lfw_pairs"
VARIANTS = [("largest", False), ("largest", True), ("center", False), ("center", True)]
PEER_TOLERANCE = 0.6


def read_pairs_txt(path: Path) -> list[dict]:
    """LFW View 2: a header line, then ten sets of 300 same-person and 300 different pairs."""
    lines = [ln.split("\t") for ln in path.read_text().splitlines()[1:] if ln.strip()]
    rows = []
    for i, t in enumerate(lines):
        if len(t) == 3:
            a, b, same = f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg", f"{t[0]}/{t[0]}_{int(t[2]):04d}.jpg", "Yes"
        elif len(t) == 4:
            a, b, same = f"{t[0]}/{t[0]}_{int(t[1]):04d}.jpg", f"{t[2]}/{t[2]}_{int(t[3]):04d}.jpg", "No"
        else:
            sys.exit(f"{path}: line {i + 2} is not a pair")
        rows.append({"file_x": a, "file_y": b, "Decision": same, "fold": str(i // 600 + 1)})
    if len(rows) != 6000:
        sys.exit(f"{path}: {len(rows)} pairs, LFW View 2 has 6,000")
    return rows


def run_pof(pairs_csv: Path, lfw: Path, face: str, mirror: bool, workers: int) -> dict:
    out = WORK / f"pof-{face}-{'mirror' if mirror else 'plain'}"
    cmd = [sys.executable, "-m", "pof", "eval", "pairs", str(pairs_csv), "--root", str(lfw),
           "--out", str(out), "--face", face, "--mirror" if mirror else "--no-mirror", "--json",
           "--workers", str(workers)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"pof eval pairs failed: {r.stderr[-800:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])["groups"]["all"]
    res["seconds"] = round(time.perf_counter() - t, 1)
    res["command"] = " ".join(["pof", *cmd[3:]])
    return res


def _peer_faces(path: str):
    """(boxes as (x, y, w, h), encodings) of every face the peer finds, or None if unreadable."""
    import face_recognition as fr
    try:
        img = fr.load_image_file(path)
    except OSError:
        return None
    locs = fr.face_locations(img, number_of_times_to_upsample=1, model="hog")
    encs = fr.face_encodings(img, known_face_locations=locs)
    return [((l[3], l[0], l[1] - l[3], l[2] - l[0]), e) for l, e in zip(locs, encs)], img.shape[1], img.shape[0]


def peer_encodings(paths: list[str], lfw: Path, workers: int) -> dict[str, dict]:
    cache = WORK / "peer.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=True)["faces"].item()
        if set(paths) <= set(data):
            return data
    from tqdm import tqdm
    with Pool(workers) as pool:
        got = list(tqdm(pool.imap(_peer_faces, [str(lfw / p) for p in paths], chunksize=16),
                        total=len(paths), desc="peer", unit="img"))
    data = {p: g for p, g in zip(paths, got)}
    np.savez(cache, faces=np.array(data, dtype=object))
    return data


def peer_figures(rows: list[dict], faces: dict, face: str) -> dict:
    """The peer judged like pof: its own face rule, 10-fold accuracy on LFW's folds, and its
    usual distance 0.6 as its own threshold."""
    def pick(p):
        got = faces.get(p)
        if not got or not got[0]:
            return None
        found, w, h = got
        if face == "largest":
            return max(found, key=lambda f: f[0][2] * f[0][3])[1]
        return min(found, key=lambda f: (f[0][0] + f[0][2] / 2 - w / 2) ** 2 + (f[0][1] + f[0][3] / 2 - h / 2) ** 2)[1]
    scores = []
    for r in rows:
        a, b = pick(r["file_x"]), pick(r["file_y"])
        scores.append(-np.inf if a is None or b is None else -float(np.linalg.norm(a - b)))
    s = np.array(scores)
    y = np.array([r["Decision"] == "Yes" for r in rows])
    from pof.evaluation.metrics import pair_figures
    fig = pair_figures(s, y, -PEER_TOLERANCE, np.array([r["fold"] for r in rows]))
    fig["threshold"] = f"distance {PEER_TOLERANCE}"
    return fig


def table(res: dict) -> str:
    lines = ["| system | face | 10-fold accuracy (LFW folds) | accuracy at own threshold | AUC | EER | TAR at FAR 1e-3 | unscored |",
             "|---|---|---|---|---|---|---|---|"]
    for name, fig in [(f"pof {v.split('-')[1]}", (v.split('-')[0], f)) for v, f in res["pof"].items()] + \
                     [("face_recognition", (k, f)) for k, f in res["peer"].items()]:
        face, f = fig
        tar = f.get("tar_at_far_0.001")
        lines.append(f"| {name} | {face} | {100 * f['accuracy_10fold']:.2f}% | {100 * f['accuracy']:.2f}% | "
                     f"{f['auc']:.4f} | {100 * f['eer']:.2f}% | {'n/a' if tar is None else f'{100 * tar:.1f}%'} | {f['unscored']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--lfw", type=Path, default=Path("/work/data/public/lfw_deepfunneled"))
    ap.add_argument("--pairs-txt", type=Path, default=Path("/work/data/public/lfw_pairs.txt"))
    ap.add_argument("--no-peer", action="store_true")
    add_workers(ap)
    ap.add_argument("--variants", default=",".join(f"{f}-{'mirror' if m else 'plain'}" for f, m in VARIANTS),
                    help="which pof variants to run, e.g. largest-plain,center-mirror")
    args = ap.parse_args(argv)
    require([args.lfw, args.pairs_txt], "LFW deep-funneled and its pairs.txt are needed "
            "(--lfw DIR --pairs-txt FILE; see bench/README.md)")
    if not args.no_peer:
        need("face_recognition", PEER_HINT)
    rows = read_pairs_txt(args.pairs_txt)
    WORK.mkdir(parents=True, exist_ok=True)
    pairs_csv = WORK / "pairs.csv"
    write_csv(pairs_csv, rows, ["file_x", "file_y", "Decision", "fold"])
    res = {"pairs": len(rows), "date": time.strftime("%Y-%m-%d %H:%M"), "pof": {}, "peer": {}}
    for v in args.variants.split(","):
        face, how = v.split("-")
        res["pof"][v] = run_pof(pairs_csv, args.lfw, face, how == "mirror", args.workers)
        print(v, json.dumps({k: res["pof"][v][k] for k in ("accuracy_10fold", "accuracy", "auc", "unscored")}), flush=True)
    if not args.no_peer:
        paths = sorted({p for r in rows for p in (r["file_x"], r["file_y"])})
        faces = peer_encodings(paths, args.lfw, args.workers)
        for face in ("largest", "center"):
            res["peer"][face] = peer_figures(rows, faces, face)
    save("lfw_pairs", res, table(res))
    print("\n" + table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
