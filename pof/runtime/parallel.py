"""Where the CPU pipeline's worker pool has long been imported from: ``pipeline_map`` and
``PipelinePool`` live in ``pof.runtime.workers``, beside the GPU engine's pool, with the one
interface of both (``pof.runtime.workers.Pool``)."""
from __future__ import annotations

from pof.runtime.workers import PipelinePool, Pool, pipeline_map

__all__ = ["PipelinePool", "Pool", "pipeline_map"]
