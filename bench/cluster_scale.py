"""Grouping unknown faces at archive scale: time, memory, pairwise precision and recall.

Wall time, peak memory and pairwise precision and recall of ``pof.matching.cluster.cluster``
(average linkage over a k-nearest-neighbour graph) at 10^3, 10^4 and 10^5 faces, and of the
full-matrix method (``cluster_dense``) at 10^3 and 3x10^3.

    python -m bench cluster_scale [--sizes 1000 10000 100000] [--dense 1000 3000] [--k 32]

The descriptors are synthetic, shaped like pof's 320-d ones (``tests/test_cluster.clustered``):
unit rows around one mean direction, strangers about 0.67 alike as pof's reference impostors,
about 10 faces a person, most of them past the link threshold (FMR 0.001) with each other.
Each run is its own process, so its peak memory (max RSS, which includes the descriptors and
the Python interpreter with numpy and FAISS) is its own. Precision and recall count pairs of
faces (``pof.evaluation.metrics.pairwise_precision_recall``): grouped together and of one
person, over grouped together / over of one person. Results also go to
bench/results/cluster_scale.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from bench.harness import REPO, parser, save


def one(method: str, n: int, k: int) -> dict:
    """One grouping run in this process."""
    from pof.evaluation.metrics import pairwise_precision_recall
    from pof.matching.cluster import cluster, cluster_dense, link_threshold
    from tests.test_cluster import clustered
    desc, truth = clustered(n)
    t = link_threshold()
    start = time.perf_counter()
    labels = cluster_dense(desc, t) if method == "dense" else cluster(desc, t, k=k, progress=True)
    wall = time.perf_counter() - start
    p, r = pairwise_precision_recall(labels, truth)
    return {"method": method, "faces": n, "seconds": round(wall, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "precision": round(p, 4), "recall": round(r, 4), "groups": int(labels.max()) + 1,
            "persons": int(truth.max()) + 1}


def run_all(a) -> list[dict]:
    """Every (method, size) in its own process."""
    rows = []
    for method, sizes in (("dense", a.dense), ("graph", a.sizes)):
        for n in sizes:
            out = subprocess.run([sys.executable, "-m", "bench", "cluster_scale", "--one", method, str(n),
                                  "--k", str(a.k)], stdout=subprocess.PIPE, text=True, check=True, cwd=REPO)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | faces | seconds | peak RSS MB | precision | recall | groups / persons |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['faces']} | {r['seconds']} | {r['peak_rss_mb']} | {r['precision']} "
                     f"| {r['recall']} | {r['groups']} / {r['persons']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000])
    ap.add_argument("--dense", type=int, nargs="*", default=[1000, 3000])
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.one[0], int(a.one[1]), a.k)))
        return 0
    rows = run_all(a)
    print("\n" + table(rows))
    save("cluster_scale", {"k": a.k, "rows": rows}, table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
