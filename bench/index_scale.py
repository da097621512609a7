"""Search latency, recall@10 and memory of pof.dataset.index at 10^4, 10^5 and 10^6 descriptors.

    python -m bench index_scale [--sizes 10000 100000 1000000] [--queries 1000] [--dim 320]
                                [--queries-from copies|held-out] [--layout unit|centred]

The descriptors are synthetic (no million-face set is at hand): unit vectors grouped into
persons of 10 images each. --dim 128 (dlib's alone): the spread of real dlib descriptors (mean
cosine between persons about 0.8, within a person about 0.94). --dim 320 (pof's default, dlib +
MobileFaceNet) and 384 (dlib + MobileFace, an earlier default): a dlib-like part and an ArcFace-like
part (cosine about 0 between persons, 0.74 or 0.61 within) joined with that descriptor's
weights (``synthetic_fused``, ``FUSED``); other widths: the dlib-like generator. Each size runs in its own process so its peak
memory (max RSS) is its own. Latency is per single-query call, as a search of one face makes.
Recall@10 is the share of the exact top 10 (numpy matrix product) that the index returns
(``pof.evaluation.metrics.recall_at_k``).

Queries (``--queries-from``): ``copies``, a gallery row with a little noise added (a new photo
very like an enrolled one); ``held-out``, one photo of each of ``--queries`` persons, left out
of the gallery (a new photo of an enrolled person, as a real probe is). ``--layout centred``
measures, for comparison, a graph over the descriptors minus their mean (pof 0.1.0's layout;
pof's own is ``unit``, the descriptors themselves). Results go to bench/results/index_scale.json (128-d)
or index_scale_dDIM.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

from bench.harness import in_own_process, parser, save
from bench.synthetic import FUSED, synthetic, synthetic_fused


def exact_top(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = q @ data.T
    return np.argsort(-s, axis=1)[:, :k]


def rss_mb() -> float:
    """Current resident memory of this process, MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(idx, q: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@10) of single-query searches."""
    idx.search(q[:5], 10)
    lat, got = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        _, ids = idx.search(q[i:i + 1], 10)
        lat.append(time.perf_counter() - t)
        got.append(ids[0])
    from pof.evaluation.metrics import recall_at_k
    recall = recall_at_k(got, truth)
    ms = np.array(lat) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), recall


class CentredGraph:
    """For comparison: an HNSW graph over the descriptors minus their mean, its scores moved
    back by q.m (pof 0.1.0's index)."""

    kind = "faiss-hnsw-centred"

    def __init__(self, data: np.ndarray) -> None:
        import faiss

        import pof.dataset.index as ix
        self.mean = data.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.ef_search = ix.ef_search(len(data))
        self.graph = faiss.IndexHNSWFlat(data.shape[1], ix.HNSW_M, faiss.METRIC_INNER_PRODUCT)
        self.graph.hnsw.efConstruction = ix.HNSW_EF_CONSTRUCTION
        for a in range(0, len(data), 100_000):
            self.graph.add(data[a:a + 100_000] - self.mean)

    def search(self, q: np.ndarray, k: int):
        self.graph.hnsw.efSearch = max(self.ef_search, k)
        s, i = self.graph.search(np.ascontiguousarray(q, np.float32), k)
        return s + (q @ self.mean)[:, None], i


def gallery_and_queries(n: int, queries: int, d: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The gallery (n rows) and the queries, as ``--queries-from`` says."""
    rng = np.random.default_rng(1)
    if source == "held-out":
        per = 10
        total = n + queries
        data = synthetic_fused(total, w=FUSED[d][0], dim2=FUSED[d][1], noise=FUSED[d][2]) if d in FUSED \
            else synthetic(total, d)
        held = rng.choice(total // per, queries, replace=False) * per + rng.integers(0, per, queries)
        keep = np.ones(total, bool)
        keep[held] = False
        return np.ascontiguousarray(data[keep]), np.ascontiguousarray(data[held])
    data = synthetic_fused(n, w=FUSED[d][0], dim2=FUSED[d][1], noise=FUSED[d][2]) if d in FUSED else synthetic(n, d)
    # a fresh noisy copy of random rows
    q = data[rng.choice(n, queries, replace=False)] + 0.2 * rng.normal(size=(queries, d)).astype(np.float32) / np.sqrt(d)
    return data, (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def one_size(n: int, queries: int, d: int = 384, source: str = "copies", layout: str = "unit",
             efs: tuple[int, ...] = (96, 256, 512)) -> dict:
    import pof.dataset.index as ix
    data, q = gallery_and_queries(n, queries, d, source)
    n = len(data)
    truth = np.concatenate([exact_top(data, q[a:a + 100], 10) for a in range(0, queries, 100)])
    before = rss_mb()
    t = time.perf_counter()
    idx = CentredGraph(data) if layout == "centred" and n > ix.EXACT_MAX else ix.build(data)
    build_s = time.perf_counter() - t
    index_mb = rss_mb() - before
    sweep = {}
    for ef in (list(efs) if idx.kind != "exact" else [0]):
        if ef:
            idx.ef_search = ef
        p50, p95, rec = timed(idx, q, truth)
        sweep[ef] = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "recall_at_10": round(rec, 4)}
    return {"n": n, "dim": d, "queries_from": source, "index": idx.kind, "build_s": round(build_s, 2), "sweep_ef_search": sweep,
            "index_rss_mb": round(index_mb, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_sizes(a) -> list[dict]:
    """Every size in its own process."""
    rows = []
    for n in a.sizes:
        row = in_own_process("index_scale", ["--one", str(n), "--queries", str(a.queries), "--dim", str(a.dim),
                                             "--queries-from", a.queries_from, "--layout", a.layout,
                                             "--ef", *map(str, a.ef)], f"size {n}")
        if row is not None:
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| descriptors | index | efSearch | build s | p50 ms | p95 ms | recall@10 | index MB | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for ef, m in r["sweep_ef_search"].items():
            lines.append(f"| {r['n']:,} | {r['index']} | {ef or '-'} | {r['build_s']} | {m['p50_ms']} | "
                         f"{m['p95_ms']} | {m['recall_at_10']} | {r['index_rss_mb']} | {r['peak_rss_mb']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=320,
                    help="descriptor width (320: pof's default dlib + MobileFaceNet; 384: dlib + "
                         "MobileFace; 128: dlib alone)")
    ap.add_argument("--queries-from", choices=("copies", "held-out"), default="copies",
                    help="noisy copies of gallery rows, or photos of enrolled persons left out")
    ap.add_argument("--layout", choices=("unit", "centred"), default="unit",
                    help="pof's graph (unit) or, for comparison, one over centred descriptors")
    ap.add_argument("--ef", type=int, nargs="+", default=[96, 256, 512],
                    help="efSearch values to measure (default: 96 256 512)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one_size(a.one, a.queries, a.dim, a.queries_from, a.layout, tuple(a.ef))))
        return 0
    rows = run_sizes(a)
    name = ("index_scale" if a.dim == 128 else f"index_scale_d{a.dim}") + \
        ("" if a.queries_from == "copies" else "_held_out") + ("" if a.layout == "unit" else "_centred")
    save(name, {"cpu": os.cpu_count(), "rows": rows}, table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
