"""pof: build, annotate, search and publish a face dataset of public officials.

Public API (everything else is private)::

    from pof import Pipeline, Gallery, Searcher, load_image
    from pof.dataset import build

Coordinates are (x, y) in source pixels; boxes are (x, y, w, h). Importing pof loads no model.
"""
from __future__ import annotations

__version__ = "0.2.0"

from pof.errors import DatasetError, ImageError, NoFaceError, PofError, SettingError  # noqa: E402
from pof.stages.load import load_image  # noqa: E402
from pof.pipeline import Pipeline  # noqa: E402
from pof.record import Face, Pose  # noqa: E402
from pof.matching.search import Gallery, Searcher  # noqa: E402


def build(sources: list[str], out: str, workers: int = 0, progress: bool = False, **settings):
    """Build (or extend) the dataset ``out`` from folders/manifests/files; returns a BuildReport."""
    from pof.dataset.build import Builder
    return Builder(out, workers=workers, **settings).run(sources, progress=progress)


__all__ = ["DatasetError", "Face", "Gallery", "ImageError", "NoFaceError", "Pipeline", "PofError",
           "Pose", "Searcher", "SettingError", "build", "load_image", "__version__"]
