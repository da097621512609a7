"""Nearest-neighbour search over unit descriptors (cosine similarity = inner product).

``build(descriptors) -> Index`` and ``Index.search(queries, k) -> (scores, ids)``: numpy in,
numpy out; ids are row numbers of ``descriptors``, scores are inner products, best first.
Below EXACT_MAX rows the search is exact (one matrix product); above it, a FAISS HNSW graph
(approximate; recall@10 against exact is measured in bench/index_scale.py). An index can be
saved inside a dataset under a name derived from the descriptor key, so an index made by other
models or settings is never reused.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

EXACT_MAX = 50_000
HNSW_M = 32                 # graph degree
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 512         # search breadth up to LARGE_GRAPH rows; twice that above
LARGE_GRAPH = 250_000        # recall@10 on held-out photos, efSearch 512: 0.998 at 10^5, 0.983
                             # at 10^6 (1024: 0.993): BENCHMARKS.md, "Index scale"
GRAPH_LAYOUT = "unit"        # what the saved graph holds: the unit descriptors themselves


class Index:
    """Exact inner-product index over float32 rows (N, D)."""

    kind = "exact"

    def __init__(self, descriptors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(descriptors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Similarity of every query (Q, D) to every row: (Q, N) float32."""
        return np.asarray(queries, np.float32) @ self.vectors.T

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows per query: (scores (Q, k) float32, ids (Q, k) int64), best first."""
        s = self.scores(queries)
        k = min(k, s.shape[1])
        if k < s.shape[1]:
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(k), (len(s), 1))
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64)

    def save(self, path: Path) -> None:
        """Nothing to save: an exact index is the descriptors themselves."""


class FaissIndex(Index):
    """Approximate inner-product search with a FAISS HNSW graph (the vectors are kept too,
    for ``scores``).

    The graph holds the unit descriptors themselves, so the inner product it navigates is the
    cosine the search ranks by, and every vector has the same length. (A graph over the
    descriptors minus their mean ranks the same way in principle, but the centred vectors'
    lengths differ, and an inner-product graph finds its way among unequal lengths badly:
    on descriptors grouped as real galleries are, about ten close photos a person, it misses
    true neighbours that the plain graph finds; BENCHMARKS.md, "Index scale".)
    """

    kind = "faiss-hnsw"

    def __init__(self, descriptors: np.ndarray, graph=None) -> None:
        import faiss    # imported only when a large gallery needs it
        super().__init__(descriptors)
        if graph is None:
            graph = faiss.IndexHNSWFlat(self.vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            for a in range(0, len(self.vectors), 100_000):
                graph.add(self.vectors[a:a + 100_000])
        self.graph = graph
        self.ef_search = ef_search(len(self.vectors))
        graph.hnsw.efSearch = self.ef_search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, np.float32)
        self.graph.hnsw.efSearch = max(self.ef_search, k)
        scores, ids = self.graph.search(q, min(k, len(self)))
        return scores.astype(np.float32), ids.astype(np.int64)

    def save(self, path: Path) -> None:
        import faiss
        from pof.runtime.files import atomic
        atomic(path, lambda tmp: faiss.write_index(self.graph, str(tmp)))


def ef_search(rows: int) -> int:
    """How widely a graph of ``rows`` descriptors is searched: wider for large graphs, where
    the same breadth finds fewer of the true nearest (BENCHMARKS.md, "Index scale")."""
    return HNSW_EF_SEARCH if rows <= LARGE_GRAPH else 2 * HNSW_EF_SEARCH


def build(descriptors: np.ndarray, kind: str = "auto") -> Index:
    """An index over ``descriptors`` (float32 (N, D), unit rows). kind: auto (exact up to
    EXACT_MAX rows, FAISS HNSW above), exact, or faiss."""
    if kind == "exact" or (kind == "auto" and len(descriptors) <= EXACT_MAX):
        return Index(descriptors)
    return FaissIndex(descriptors)


def index_path(folder: Path, descriptor_key: str, n: int) -> Path:
    """Where a dataset keeps its index: named after the graph's layout, the descriptor key and
    the row count, so a graph of another layout, model or size is never read as this one."""
    h = hashlib.sha256(descriptor_key.encode()).hexdigest()[:16]
    return Path(folder) / "index" / f"hnsw-{GRAPH_LAYOUT}-{h}-{n}.faiss"


def load_or_build(folder: Path, descriptors: np.ndarray, descriptor_key: str) -> Index:
    """The dataset's index: exact for small galleries; for large ones the saved FAISS graph
    named after this descriptor key and size, built and saved if absent."""
    if len(descriptors) <= EXACT_MAX:
        return Index(descriptors)
    path = index_path(folder, descriptor_key, len(descriptors))
    if path.exists():
        import faiss
        return FaissIndex(descriptors, faiss.read_index(str(path)))
    idx = FaissIndex(descriptors)
    idx.save(path)
    return idx


def neighbours(descriptors: np.ndarray, k: int, base: np.ndarray | None = None,
               exact_max: int = 20_000, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of ``base`` (default: ``descriptors`` themselves, each row leaving
    itself out) for every row of ``descriptors``: (scores (N, k) float32, ids (N, k) int64),
    best first; ids of -1 (score -inf) pad rows when fewer than k exist.

    A neighbour graph in memory O(N k): exact inner products in blocks of rows while ``base``
    holds at most ``exact_max`` rows, a FAISS HNSW graph (``FaissIndex``) above. ``progress``:
    called with the number of rows done after each block."""
    q = np.ascontiguousarray(descriptors, np.float32)
    own = base is None
    b = q if own else np.ascontiguousarray(base, np.float32)
    n = len(q)
    kk = max(0, min(k, len(b) - (1 if own else 0)))
    scores = np.full((n, k), -np.inf, np.float32)
    ids = np.full((n, k), -1, np.int64)
    if n == 0 or kk == 0:
        return scores, ids
    block = max(1, min(2048, 2 ** 27 // max(1, len(b) * 4)))
    graph = None
    if len(b) > exact_max:
        graph = FaissIndex(b)
        graph.graph.hnsw.efSearch = max(2 * kk + 2, 64)
    for a in range(0, n, block):
        rows = q[a:a + block]
        if graph is not None:
            s, i = graph.graph.search(rows, kk + 1 if own else kk)
            if own:                                   # drop each row itself from its list
                keep = i != np.arange(a, a + len(rows))[:, None]
                s = np.where(keep, s, -np.inf)
                order = np.argsort(-s, axis=1, kind="stable")[:, :kk]
                s, i = np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)
            else:
                s, i = s[:, :kk], i[:, :kk]
            i = np.where(np.isfinite(s) & (i >= 0), i, -1)
        else:
            s = rows @ b.T
            if own:
                s[np.arange(len(rows)), np.arange(a, a + len(rows))] = -np.inf
            part = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < s.shape[1] else \
                np.tile(np.arange(kk), (len(rows), 1))
            top = np.take_along_axis(s, part, 1)
            order = np.argsort(-top, axis=1, kind="stable")
            s, i = np.take_along_axis(top, order, 1), np.take_along_axis(part, order, 1)
        scores[a:a + len(rows), :kk] = s
        ids[a:a + len(rows), :kk] = i
        if progress is not None:
            progress(min(n, a + block))
    return scores, ids
