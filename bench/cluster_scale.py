"""Grouping unknown faces at archive scale: wall time, peak memory and pairwise precision and
recall of ``pof.matching.cluster.cluster`` (average linkage over a k-nearest-neighbour graph) at 10^3,
10^4 and 10^5 faces, and of the full-matrix method (``cluster_dense``) at 10^3 and 3x10^3.

    python bench/cluster_scale.py [--sizes 1000 10000 100000] [--dense 1000 3000] [--k 32]

The descriptors are synthetic, shaped like pof's 320-d ones (``tests/test_cluster.clustered``):
unit rows around one mean direction, strangers about 0.67 alike as pof's reference impostors,
about 10 faces a person, most of them past the link threshold (FMR 0.001) with each other.
Each run is its own process, so its peak memory (max RSS, which includes the descriptors and
the Python interpreter with numpy and FAISS) is its own. Precision and recall count pairs of
faces: grouped together and of one person, over grouped together / over of one person.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pairwise(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall from the contingency table (no N x N matrix)."""
    def pairs(*keys):
        _, counts = np.unique(np.stack(keys, 1), axis=0, return_counts=True)
        return float((counts * (counts - 1) // 2).sum())
    both, grouped, same = pairs(labels, truth), pairs(labels), pairs(truth)
    return both / max(1.0, grouped), both / max(1.0, same)


def one(method: str, n: int, k: int) -> dict:
    from pof.matching.cluster import cluster, cluster_dense, link_threshold
    from tests.test_cluster import clustered
    desc, truth = clustered(n)
    t = link_threshold()
    start = time.perf_counter()
    labels = cluster_dense(desc, t) if method == "dense" else cluster(desc, t, k=k, progress=True)
    wall = time.perf_counter() - start
    p, r = pairwise(labels, truth)
    return {"method": method, "faces": n, "seconds": round(wall, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "precision": round(p, 4), "recall": round(r, 4), "groups": int(labels.max()) + 1,
            "persons": int(truth.max()) + 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000])
    ap.add_argument("--dense", type=int, nargs="*", default=[1000, 3000])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one[0], int(a.one[1]), a.k)))
        return
    rows = []
    for method, sizes in (("dense", a.dense), ("graph", a.sizes)):
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--one", method, str(n), "--k", str(a.k)],
                                 stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| method | faces | seconds | peak RSS MB | precision | recall | groups / persons |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['method']} | {r['faces']} | {r['seconds']} | {r['peak_rss_mb']} | {r['precision']} "
              f"| {r['recall']} | {r['groups']} / {r['persons']} |")


if __name__ == "__main__":
    main()
