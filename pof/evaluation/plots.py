"""Pictures of evaluation results: ROC, DET and CMC curves as PNG (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure():
    import matplotlib
    matplotlib.use("Agg")            # no display; chosen here, not at import of pof
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    return plt, fig, ax


def _finish(plt, fig, ax, path: Path, title: str) -> Path:
    from matplotlib.ticker import NullFormatter
    ax.xaxis.set_minor_formatter(NullFormatter())    # log axes: label decades only
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():
        ax.legend(loc="best", fontsize=8)
    elif not ax.texts:   # e.g. a DET curve of probes that are all mated: say so rather than draw an empty box
        ax.text(0.5, 0.5, "no curve to draw: it needs both genuine and impostor\ncomparisons "
                "(mated and non-mated probes, or same and different pairs)",
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "ROC") -> Path:
    """curves: label -> (false accept rates, true accept rates). Log FAR axis."""
    plt, fig, ax = _figure()
    for label, (far, tar) in curves.items():
        keep = far > 0
        ax.plot(far[keep], tar[keep], label=label, lw=1.6)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_ylim(0, 1.01)
    return _finish(plt, fig, ax, path, title)


def det_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "DET") -> Path:
    """curves: label -> (false match rates, false non-match rates). Log-log axes."""
    plt, fig, ax = _figure()
    perfect = []
    for label, (fmr, fnmr) in curves.items():
        keep = (fmr > 0) & (fnmr > 0)
        if not keep.any():              # no miss at any rate shown: nothing to draw on log axes
            perfect.append(label)
            continue
        ax.plot(fmr[keep], fnmr[keep], label=label, lw=1.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if perfect:
        alone = len(perfect) == len(curves)
        ax.text(0.5 if alone else 0.02, 0.5 if alone else 0.03,
                "no false non-match at any rate shown:\n" + ", ".join(perfect),
                transform=ax.transAxes, ha="center" if alone else "left",
                va="center" if alone else "bottom", fontsize=9,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        if alone:
            ax.set_xlim(1e-4, 1)
            ax.set_ylim(1e-3, 1)
    ax.set_xlabel("false match rate (FMR / FPIR)")
    ax.set_ylabel("false non-match rate (FNMR / FNIR)")
    return _finish(plt, fig, ax, path, title)


def cmc_plot(curves: dict[str, np.ndarray], path: Path, title: str = "CMC") -> Path:
    """curves: label -> identification rate at rank 1..R."""
    plt, fig, ax = _figure()
    for label, c in curves.items():
        ax.plot(np.arange(1, len(c) + 1), c, marker="o", ms=3, label=label, lw=1.6)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate")
    ax.set_ylim(0, 1.01)
    ax.set_xticks(np.arange(1, len(next(iter(curves.values()), [1])) + 1, 2))
    return _finish(plt, fig, ax, path, title)
