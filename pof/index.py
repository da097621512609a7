"""Nearest-neighbour search over unit descriptors (cosine similarity = dot product).

``build(descriptors) -> Index``; ``Index.search(queries, k) -> (scores, ids)``, numpy in and
out, ids being row numbers of ``descriptors``. Exact (a matrix product) for now.
"""
from __future__ import annotations

import numpy as np


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
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.tile(np.arange(k), (len(s), 1))
        top = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64)


def build(descriptors: np.ndarray) -> Index:
    """An index over ``descriptors`` (float32 (N, D), unit rows)."""
    return Index(descriptors)
