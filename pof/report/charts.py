"""The report's matplotlib pictures (Agg backend, chosen inside each call, never at import):
one image's attribute scores, and the dataset's statistics. Each is written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pof.report.data import MEASURED, UNITS, Column, Dataset, images_per_person
from pof.runtime.files import atomic

TASK_COLOURS = {"age group": "#1f77b4", "gender": "#9467bd", "visual": "#2ca02c", MEASURED: "#7f7f7f"}
OTHER_COLOURS = ("#ff7f0e", "#17becf", "#bcbd22", "#8c564b")
DECISION = 0.5      # the decision point of every 0-1 score
DPI = 110
MIN_ROWS = 8        # bar charts are at least this many rows tall


def colour(task: str, tasks: list[str]) -> str:
    if task in TASK_COLOURS:
        return TASK_COLOURS[task]
    others = [t for t in tasks if t not in TASK_COLOURS]
    return OTHER_COLOURS[others.index(task) % len(OTHER_COLOURS)] if task in others else "#000000"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: Path) -> Path:
    atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    plt.close(fig)
    return path


def _label(c: Column) -> str:
    return f"{c.name} *" if c.unreliable else c.name


def _legend(where, tasks: list[str], used: set[str], **place) -> None:
    """Task colours in one row, placed (by default just above the axes ``where``) never over
    the bars; ``where`` may be a figure, with ``place`` saying where."""
    from matplotlib.patches import Patch
    handles = [Patch(color=colour(t, tasks), label=t) for t in tasks if t in used]
    place = place or {"loc": "lower center", "bbox_to_anchor": (0.5, 1.0)}
    if handles:
        where.legend(handles=handles, ncol=len(handles), fontsize=8, frameon=False, handlelength=1.2,
                     columnspacing=1.2, **place)


def _values(ax, y, vals) -> None:
    """Each bar's value: after the bar, or inside its end (white) when the bar is long."""
    for yy, v in zip(y, vals):
        if v > 0.88:
            ax.text(v - 0.01, yy, f"{v:.2f}", va="center", ha="right", fontsize=6.5, color="white")
        else:
            ax.text(v + 0.01, yy, f"{v:.2f}", va="center", fontsize=6.5)


def measure_text(name: str, value: float) -> str:
    return f"{name} {value:.1f}{UNITS.get(name, '')}" if np.isfinite(value) else f"{name} n/a"


def image_chart(ds: Dataset, row: int, crop: np.ndarray | None, path: Path) -> Path:
    """One image's scores as horizontal bars, grouped and coloured by task, beside its
    redacted crop (or a note that the crop could not be read). Attributes not estimated for
    this image are left out and counted in a note; measures that are not 0-1 scores (pose in
    degrees) are written under the crop."""
    plt = _plt()
    tasks = ds.tasks
    order = [j for j in ds.ordered() if ds.columns[j].is_score and np.isfinite(ds.scores[row, j])]
    missing = sum(1 for j, c in enumerate(ds.columns) if c.is_score and not np.isfinite(ds.scores[row, j]))
    measures = [measure_text(c.name, float(ds.scores[row, j])) for j, c in enumerate(ds.columns) if not c.is_score]
    top_in, bottom_in = 0.75, 1.15            # inches above the bars (title) and below (axis, notes)
    height = max(4.8, 0.21 * max(len(order), 1) + top_in + bottom_in)
    fig = plt.figure(figsize=(9.0, height))
    ax = fig.add_axes([0.47, bottom_in / height, 0.50, 1 - (top_in + bottom_in) / height])
    left = fig.add_axes([0.03, 1 - (top_in + 2.8) / height, 0.22, 2.8 / height])
    if crop is not None:
        left.imshow(crop)
    else:
        left.text(0.5, 0.5, "crop missing\nor unreadable", ha="center", va="center", fontsize=9)
    left.set_xticks([])
    left.set_yticks([])
    left.set_title("redacted crop", fontsize=8)
    left.set_xlabel("\n".join(measures), fontsize=8, loc="left")
    vals = [float(ds.scores[row, j]) for j in order]
    y = -np.arange(len(order))               # first row on top
    cols = [colour(ds.columns[j].task, tasks) for j in order]
    ax.barh(y, vals, color=cols, height=0.75)
    _values(ax, y, vals)
    ax.set_yticks(y, [_label(ds.columns[j]) for j in order], fontsize=7.5)
    ax.set_ylim(-max(len(order), MIN_ROWS) + 0.3, 0.7)   # few rows: bars stay thin, at the top
    ax.set_xlim(0, 1)
    ax.axvline(DECISION, color="k", ls="--", lw=0.8, alpha=0.6)
    ax.set_xlabel("score (0-1; dashed line: 0.5, the decision point)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.grid(axis="x", alpha=0.3)
    _legend(ax, tasks, {ds.columns[j].task for j in order})
    if not order:
        ax.text(0.5, -MIN_ROWS / 2, "no attribute scores for this image", ha="center", va="center", fontsize=9)
    fig.suptitle(f'Attribute scores of image "{ds.ids[row]}"', fontsize=11, y=1 - 0.25 / height)
    notes = []
    if missing:
        notes.append(f"{missing} attribute(s) not estimated for this image: left out (see the attribute table).")
    if any(ds.columns[j].unreliable for j in order):
        notes.append("* unreliable: its validation figure is poor or missing.")
    notes.append("Automatic estimates, not verified by a person; perceived age group and gender "
                 "describe how the face looks.")
    fig.text(0.02, 0.12 / height, "\n".join(notes), fontsize=7, color="#444444", va="bottom")
    return _save(plt, fig, path)


def _hist(ax, values: np.ndarray, title: str, xlabel: str, bins=30, colour_="#4c72b0") -> None:
    v = values[np.isfinite(values)]
    if v.size:
        ax.hist(v, bins=bins, color=colour_, edgecolor="white", linewidth=0.4)
        med = np.median(v)
        ax.set_title(f"{title}\nmedian {med:.2f}, n = {v.size}" if v.max() <= 1 else
                     f"{title}\nmedian {med:.1f}, n = {v.size}", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("images", fontsize=8)
    ax.tick_params(labelsize=7.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)


def persons_plot(ds: Dataset, path: Path) -> Path:
    plt = _plt()
    counts = images_per_person(ds)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    if counts.size:
        top = int(counts.max())
        bins = np.arange(0.5, top + 1.5) if top <= 60 else 50
        ax.hist(counts, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.4)
        ax.set_title(f"Images per person: {counts.size} persons, mean {counts.mean():.2f}, "
                     f"max {top}", fontsize=10)
        if top <= 60:
            ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.text(0.5, 0.5, "no labelled persons", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("Images per person", fontsize=10)
    unlabelled = sum(1 for p in ds.persons if not p)
    ax.set_xlabel("images of the person" + (f"  ({unlabelled} unlabelled images not counted)" if unlabelled else ""),
                  fontsize=8)
    ax.set_ylabel("persons", fontsize=8)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(plt, fig, path)


def pose_plot(ds: Dataset, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, k, what in zip(axes, ("yaw", "pitch", "roll"), ("left-right turn", "up-down tilt", "in-plane tilt")):
        _hist(ax, ds.numbers[k], f"{k} ({what})", "degrees", bins=36)
    fig.suptitle("Head pose", fontsize=11)
    fig.tight_layout()
    return _save(plt, fig, path)


def quality_plot(ds: Dataset, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    _hist(axes[0], ds.numbers["quality"], "quality (1 = best)", "quality score, 0-1",
          bins=np.linspace(0, 1, 26))
    _hist(axes[1], ds.numbers["blur"], "blur (0 = sharp)", "blur measure, 0-1", bins=np.linspace(0, 1, 26),
          colour_="#dd8452")
    fig.suptitle("Image quality", fontsize=11)
    fig.tight_layout()
    return _save(plt, fig, path)


def interocular_plot(ds: Dataset, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    _hist(ax, ds.numbers["interocular"], "Interocular distance in the source photo",
          "eye-centre distance, source pixels", bins=40, colour_="#55a868")
    fig.tight_layout()
    return _save(plt, fig, path)


def prevalence(ds: Dataset) -> list[tuple[int, float, float, int]]:
    """(column index, mean score, share >= 0.5, images scored) of each 0-1 column with any
    score, in task order."""
    out = []
    for j in ds.ordered():
        col = ds.scores[:, j]
        v = col[np.isfinite(col)]
        if ds.columns[j].is_score and v.size:
            out.append((j, float(v.mean()), float((v >= DECISION).mean()), int(v.size)))
    return out


def prevalence_plot(ds: Dataset, path: Path) -> Path:
    """Mean score and share of images at or above 0.5, per attribute, grouped by task."""
    plt = _plt()
    rows = prevalence(ds)
    n = max(len(rows), 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 0.21 * max(n, MIN_ROWS) + 1.9), sharey=True)
    y = -np.arange(len(rows))
    cols = [colour(ds.columns[j].task, ds.tasks) for j, *_ in rows]
    labels = [_label(ds.columns[j]) for j, *_ in rows]
    for ax, k, title in ((a1, 1, "mean score"), (a2, 2, "share of images scored >= 0.5")):
        vals = [r[k] for r in rows]
        ax.barh(y, vals, color=cols, height=0.75)
        _values(ax, y, vals)
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7.5)
    a1.set_yticks(y, labels, fontsize=7.5)
    a1.set_ylim(-max(len(rows), MIN_ROWS) + 0.3, 0.7)
    height = fig.get_figheight()
    _legend(fig, ds.tasks, {ds.columns[j].task for j, *_ in rows}, loc="upper center",
            bbox_to_anchor=(0.5, 1 - 0.38 / height))
    missing = sum(1 for c in ds.columns if c.is_score) - len(rows)
    note = f"{missing} attribute(s) not estimated for any image: left out (see the attribute table). " if missing else ""
    if any(ds.columns[j].unreliable for j, *_ in rows):
        note += "* unreliable: its validation figure is poor or missing."
    fig.suptitle(f"Attribute prevalence over {len(ds.ids)} images", fontsize=11, y=1 - 0.12 / height)
    fig.tight_layout(rect=(0, 0.3 / height if note else 0, 1, 1 - 0.5 / height))
    if note:
        fig.text(0.01, 0.1 / height, note, fontsize=7, color="#444444")
    return _save(plt, fig, path)
