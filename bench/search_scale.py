"""Search latency by gallery size: pof's default search (one template a person, every person
scored exactly) over 10^4, 10^5 and 10^6 persons.

    python -m bench search_scale [--persons 10000 100000 1000000] [--per-person 2] [--queries 300]

The descriptors are synthetic, shaped like pof's 320-d default (``bench.synthetic``), with
``--per-person`` photos a person; a query is a photo of an enrolled person left out of the
gallery, searched with ``Searcher.search`` as ``pof search`` searches a face once it is
analysed (templates scored, candidates with their FMR, the calibrated decision). Set-up (the
templates and the calibration, once per gallery) is timed apart from the searches. Each size
runs in its own process, so its peak memory is its own. Results: bench/results/search_scale.json.
"""
from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from bench.harness import in_own_process, parser, save
from bench.synthetic import FUSED, synthetic_fused


def probe_face(descriptor: np.ndarray):
    """A searchable Face holding ``descriptor`` (a frontal, sharp face of 60 px eye distance)."""
    from pof.record import Face, Pose
    return Face(index=0, box=(100.0, 100.0, 150.0, 180.0), det_score=0.99,
                landmarks5=np.zeros((5, 2), np.float32), descriptor=descriptor,
                pose=Pose(0.0, 0.0, 0.0), interocular=60.0, blur=0.1, quality=0.9)


def one_size(persons: int, per_person: int, queries: int) -> dict:
    from pof.matching.search import Gallery, Searcher
    w, dim2, noise = FUSED[320]
    total = persons * per_person + queries
    data = synthetic_fused(total, per_person, 0, w, dim2, noise)
    rng = np.random.default_rng(1)
    held = np.sort(rng.choice(persons, queries, replace=False)) * per_person + rng.integers(0, per_person, queries)
    keep = np.ones(total, bool)
    keep[held] = False
    keep[persons * per_person:] = False          # the rows past the last whole person
    rows = np.flatnonzero(keep)
    labels = [f"P{i // per_person:07d}" for i in rows]
    t = time.perf_counter()
    searcher = Searcher(Gallery.from_arrays(data[rows], [f"f{i:08d}" for i in rows], labels))
    setup_s = time.perf_counter() - t
    probes = [probe_face(data[i]) for i in held]
    searcher.search(probes[:3], 5)
    lat, found = [], 0
    for i, face in zip(held, probes):
        t = time.perf_counter()
        result = searcher.search([face], 5)[0]
        lat.append(time.perf_counter() - t)
        found += result.top is not None and result.top.person == f"P{i // per_person:07d}"
    ms = np.array(lat) * 1000
    return {"persons": persons, "per_person": per_person, "faces": int(len(rows)),
            "fusion": searcher.fusion, "setup_s": round(setup_s, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "rank1": round(found / len(held), 4), "threshold": round(searcher.calibration.threshold, 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_sizes(a) -> list[dict]:
    rows = []
    for n in a.persons:
        row = in_own_process("search_scale", ["--one", str(n), "--per-person", str(a.per_person),
                                              "--queries", str(a.queries)], f"{n} persons")
        if row is not None:
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| persons | faces | fusion | set-up s | p50 ms | p95 ms | rank-1 | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['persons']:,} | {r['faces']:,} | {r['fusion']} | {r['setup_s']} | {r['p50_ms']} | "
                     f"{r['p95_ms']} | {r['rank1']} | {r['peak_rss_mb']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--persons", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--per-person", type=int, default=2)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--one", type=int, help="(internal) one size, in this process")
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(one_size(a.one, a.per_person, a.queries)))
        return 0
    rows = run_sizes(a)
    save("search_scale", {"rows": rows}, table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
