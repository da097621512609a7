"""Unknown faces -> groups of one person each (``pof cluster``, the web app's unknown faces).

Average-linkage agglomerative clustering of unit descriptors by cosine similarity: the two
groups whose faces are on average most alike are joined, as long as that average reaches the
link threshold. The threshold is not a magic number: it is the verification threshold at a
false-match rate (``pof.verify.Verifier``, from pof's reference impostor pairs), 1e-3 by
default, so a link between two strangers' faces is as rare as a false accept of ``pof verify``.
Two faces of one photo are never joined (one person is not twice in a photo).

Look-alikes can still merge and one person can split (profile, blur, years apart): groups are
leads for a person to check, and the web app lets reviewers merge and split them.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .verify import DEFAULT_FMR, Verifier


def link_threshold(fmr: float = DEFAULT_FMR) -> float:
    """Similarity two groups need to be joined: the verification threshold at ``fmr``."""
    return Verifier(fmr).threshold


def cluster(desc: np.ndarray, threshold: float, photos: list | None = None) -> np.ndarray:
    """Group labels (0..k-1, largest group first) of descriptors (N, D), unit rows.

    ``photos``: the photo of each face; faces of one photo are never put in one group."""
    n = len(desc)
    if n == 0:
        return np.zeros(0, int)
    d = np.asarray(desc, np.float32)
    sim = (d @ d.T).astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(n)
    members: list[list[int]] = [[i] for i in range(n)]
    seen: list[set] = [{p} for p in photos] if photos is not None else [set() for _ in range(n)]
    active = np.ones(n, bool)
    while True:
        flat = int(np.argmax(sim))
        i, j = divmod(flat, n)
        if not np.isfinite(sim[i, j]) or sim[i, j] < threshold:
            break
        if seen[i] & seen[j]:                    # both hold a face of one photo
            sim[i, j] = sim[j, i] = -np.inf
            continue
        merged = (sim[i] * size[i] + sim[j] * size[j]) / (size[i] + size[j])
        sim[i], sim[:, i] = merged, merged
        sim[i, i] = -np.inf
        sim[j, :], sim[:, j] = -np.inf, -np.inf
        # pairs that were forbidden stay forbidden (-inf propagates through the average)
        size[i] += size[j]
        members[i] += members[j]
        seen[i] |= seen[j]
        active[j] = False
    groups = sorted((members[i] for i in np.flatnonzero(active)), key=lambda m: (-len(m), min(m)))
    labels = np.empty(n, int)
    for g, m in enumerate(groups):
        labels[m] = g
    return labels


def join_groups(new: list[np.ndarray], existing: dict[int, np.ndarray],
                threshold: float) -> dict[int, int | None]:
    """For each cluster of new faces (``new[k]``: its descriptors, (K, D)), the existing group
    (id -> descriptors (M, D)) it joins: the one with the highest average similarity, if that
    reaches ``threshold``; else None. This links one unknown face seen at several events."""
    out: dict[int, int | None] = {}
    for label, block in enumerate(new):
        best, best_sim = None, threshold
        for gid, faces in existing.items():
            s = float((block @ faces.T).mean())
            if s >= best_sim:
                best, best_sim = gid, s
        out[label] = best
    return out


@dataclass
class ClusterResult:
    """Faces found (image, index, box, group, crop), groups, threshold, per-file problems."""

    faces: list[dict] = field(default_factory=list)
    n_groups: int = 0
    threshold: float = 0.0
    problems: list[tuple[str, str]] = field(default_factory=list)


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files given, and every file under folders given (sorted); missing inputs as problems."""
    paths, problems = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(str(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            paths.append(str(p))
        else:
            problems.append((item, "no such file or folder"))
    return paths, problems


def _faces_with_crops(pipeline, path: str):
    from .errors import PofError
    try:
        return pipeline.analyze_file(path, with_crops=True), None
    except PofError as exc:
        return [], str(exc)


def cluster_files(paths: list[str], fmr: float = DEFAULT_FMR, workers: int = 1) -> ClusterResult:
    """Find every face in ``paths`` and group them; unreadable or faceless files are problems."""
    from .parallel import pipeline_map
    from .pipeline import Pipeline
    result = ClusterResult(threshold=link_threshold(fmr))
    descs, photos = [], []
    pipeline = Pipeline(attributes="off")
    for path, (faces, error) in zip(paths, pipeline_map(pipeline, _faces_with_crops,
                                                        ((p,) for p in paths), workers)):
        if error:
            result.problems.append((path, error))
        for f in faces:
            result.faces.append({"image": path, "face": f.index, "crop": f.crop,
                                 "box": [round(float(v), 1) for v in f.box],
                                 "quality": round(float(f.quality), 3)})
            descs.append(f.descriptor)
            photos.append(path)
    if descs:
        labels = cluster(np.stack(descs), result.threshold, photos)
        for face, g in zip(result.faces, labels):
            face["group"] = int(g)
        result.n_groups = int(labels.max()) + 1
    return result


def write_groups(result: ClusterResult, out: Path) -> None:
    """OUT/group_NNN/<image>_face<K>.jpg (aligned crops), OUT/clusters.json and clusters.csv."""
    from PIL import Image
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("group_*"):
        if old.is_dir():
            shutil.rmtree(old)
    rows = []
    for f in result.faces:
        folder = out / f"group_{f['group'] + 1:03d}"
        folder.mkdir(exist_ok=True)
        name = f"{Path(f['image']).stem}_face{f['face'] + 1}.jpg"
        if f["crop"] is not None:
            Image.fromarray(f["crop"]).save(folder / name, "JPEG", quality=92)
        rows.append({"image": f["image"], "face": f["face"] + 1, "box": f["box"],
                     "quality": f["quality"], "group": f["group"] + 1,
                     "crop": f"{folder.name}/{name}"})
    doc = {"threshold": round(result.threshold, 4), "groups": result.n_groups, "faces": rows,
           "errors": [{"image": p, "reason": r} for p, r in result.problems]}
    (out / "clusters.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = ["image,face,group,x,y,w,h,quality,crop"] + [
        f"\"{r['image']}\",{r['face']},{r['group']},{','.join(map(str, r['box']))},{r['quality']},{r['crop']}"
        for r in rows]
    (out / "clusters.csv").write_text("\n".join(lines) + "\n")
