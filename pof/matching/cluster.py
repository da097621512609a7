"""Unknown faces -> groups of one person each (``pof cluster``, the web app's unknown faces).

Average-linkage agglomerative clustering of unit descriptors by cosine similarity: the two
groups whose faces are on average most alike are joined, as long as that average reaches the
link threshold. Only groups linked in a k-nearest-neighbour graph of the faces are candidates
(a heap of candidate joins; the averages themselves are exact), so 10^5 faces take minutes and
memory grows with the number of faces, not its square (bench/cluster_scale.py). ``assign`` adds
new faces to existing groups without regrouping those.

The threshold is not a magic number: it is the verification threshold at a false-match rate
(``pof.matching.verify.Verifier``, from pof's reference impostor pairs), 1e-3 by default, so a link
between two strangers' faces is as rare as a false accept of ``pof verify``.
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

from pof.matching.verify import DEFAULT_FMR, Verifier


def link_threshold(fmr: float = DEFAULT_FMR) -> float:
    """Similarity two groups need to be joined: the verification threshold at ``fmr``."""
    return Verifier(fmr).threshold


NEIGHBOURS = 32          # candidate links per face: its nearest faces in the neighbour graph


def cluster(desc: np.ndarray, threshold: float, photos: list | None = None,
            k: int = NEIGHBOURS, progress: bool = False) -> np.ndarray:
    """Group labels (0..k-1, largest group first) of descriptors (N, D), unit rows.

    ``photos``: the photo of each face; faces of one photo are never put in one group.
    Average linkage restricted to a k-nearest-neighbour graph (``pof.dataset.index.neighbours``): two
    groups are candidates to join only if a face of one is among the ``k`` nearest of a face of
    the other, and the average similarity of their faces is exact, from the groups' descriptor
    sums (the mean of x.y over A x B is sum(A).sum(B) / |A||B|). Memory and time grow with
    N k, not N^2. ``progress``: show progress bars on stderr."""
    n = len(desc)
    if n == 0:
        return np.zeros(0, int)
    d = np.asarray(desc, np.float32)
    ii, jj = _graph(d, None, k, progress)
    roots = _link(d, np.ones(n), _photo_sets(photos, n), np.zeros(n, bool), ii, jj, threshold,
                  progress)
    return _labels(roots)


def assign(desc: np.ndarray, threshold: float, existing: dict[int, np.ndarray],
           photos: list | None = None, existing_photos: dict[int, set] | None = None,
           k: int = NEIGHBOURS, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """New faces ``desc`` (N, D) added to existing groups (id -> descriptors (M, D)) without
    regrouping them: ``(group, fresh)``, per new face the existing group id it joins (-1 if
    none) and otherwise its new group's label (0..m-1, largest first; -1 if it joined).

    The same average linkage as ``cluster``, seeded with the existing groups: a new face or
    group of new faces joins an existing group when the average similarity to its members
    reaches ``threshold``; two existing groups are never joined to each other (their ids and
    members stay as they are). ``photos`` / ``existing_photos``: the photos of the new faces and
    of the groups' faces; faces of one photo never share a group."""
    n = len(desc)
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d = np.asarray(desc, np.float32)
    gids = list(existing)
    dim = d.shape[1]
    members = [np.asarray(existing[g], np.float32).reshape(-1, dim) for g in gids]
    sums = np.concatenate([d] + [m.sum(axis=0, keepdims=True) for m in members])
    counts = np.concatenate([np.ones(n), [float(len(m)) for m in members]])
    seen = _photo_sets(photos, n) + [set((existing_photos or {}).get(g, ())) for g in gids]
    fixed = np.concatenate([np.zeros(n, bool), np.ones(len(gids), bool)])
    ii, jj = _graph(d, None, k, progress)
    if gids:                                 # new face -> the groups of its nearest old faces
        old = np.concatenate(members)
        owner = np.repeat(np.arange(len(gids)), [len(m) for m in members]) + n
        _, near = _neighbours(d, old, k, progress)
        rows = np.repeat(np.arange(n), near.shape[1])
        ok = near.ravel() >= 0
        ii = np.concatenate([ii, rows[ok]])
        jj = np.concatenate([jj, owner[near.ravel()[ok]]])
    roots = _link(sums, counts, seen, fixed, ii, jj, threshold, progress)[:n]
    group = np.array([gids[r - n] if r >= n else -1 for r in roots], int)
    fresh = np.full(n, -1, int)
    new = np.flatnonzero(roots < n)
    if len(new):
        fresh[new] = _labels(roots[new])
    return group, fresh


def _photo_sets(photos, n: int) -> list[set]:
    """Each face's set of photo keys: a key, or a set of keys (a face of a video track holds
    one key for each moment it shares with other tracks); faces sharing a key never join."""
    if photos is None:
        return [set() for _ in range(n)]
    return [set(p) if isinstance(p, (set, frozenset)) else {p} for p in photos]


def _neighbours(d, base, k, progress):
    from pof.dataset.index import neighbours
    bar = _bar(len(d), "neighbours", progress)
    try:
        return neighbours(d, k, base, progress=(lambda done: bar.update(done - bar.n)) if bar else None)
    finally:
        if bar:
            bar.close()


def _graph(d: np.ndarray, base, k: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j, each once) of the k-nearest-neighbour graph of ``d``."""
    n = len(d)
    _, near = _neighbours(d, base, k, progress)
    rows = np.repeat(np.arange(n), near.shape[1])
    cols = near.ravel()
    ok = cols >= 0
    a, b = np.minimum(rows[ok], cols[ok]), np.maximum(rows[ok], cols[ok])
    key = np.unique(a.astype(np.int64) * n + b)
    return key // n, key % n


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return None
    import sys

    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="photo" if desc == "faces" else "face", file=sys.stderr,
                leave=False)


def _link(sums: np.ndarray, counts: np.ndarray, seen: list[set], fixed: np.ndarray,
          ii: np.ndarray, jj: np.ndarray, threshold: float, progress: bool = False) -> np.ndarray:
    """Average linkage over the candidate pairs (ii[e], jj[e]) of clusters with descriptor sums
    ``sums`` (C, D), sizes ``counts`` and photo sets ``seen``; two ``fixed`` clusters are never
    joined. Returns each cluster's final cluster (the index of the one it was joined into)."""
    import heapq
    c = len(counts)
    s = np.array(sums, np.float64)
    cnt = np.array(counts, np.float64)
    fixed = np.array(fixed, bool)
    parent = np.arange(c)
    alive = np.ones(c, bool)
    ver = np.zeros(c, np.int64)
    adj: list[set | None] = [set() for _ in range(c)]
    for a, b in zip(ii.tolist(), jj.tolist()):
        if a != b:
            adj[a].add(b)
            adj[b].add(a)
    heap = []
    for a0 in range(0, len(ii), 1 << 16):
        a, b = ii[a0:a0 + (1 << 16)], jj[a0:a0 + (1 << 16)]
        sim = np.einsum("ij,ij->i", s[a], s[b]) / (cnt[a] * cnt[b])
        ok = (sim >= threshold) & ~(fixed[a] & fixed[b]) & (a != b)
        heap += [(-v, x, y, 0, 0) for v, x, y in zip(sim[ok].tolist(), a[ok].tolist(), b[ok].tolist())]
    heapq.heapify(heap)
    bar = _bar(c, "grouping", progress)
    while heap:
        _, i, j, vi, vj = heapq.heappop(heap)
        if not (alive[i] and alive[j]) or ver[i] != vi or ver[j] != vj:
            continue                             # one of them changed since this entry
        if not seen[i].isdisjoint(seen[j]):      # both hold a face of one photo
            continue
        if fixed[j] or (not fixed[i] and len(adj[j]) > len(adj[i])):
            i, j = j, i                          # keep the fixed one, or the better linked one
        s[i] += s[j]
        cnt[i] += cnt[j]
        if len(seen[j]) > len(seen[i]):
            seen[i], seen[j] = seen[j], seen[i]
        seen[i] |= seen[j]
        seen[j] = set()
        parent[j] = i
        alive[j] = False
        ver[i] += 1
        for x in adj[j]:
            adj[x].discard(j)
            if x != i:
                adj[x].add(i)
        adj[i] |= adj[j]
        adj[i].discard(i)
        adj[i].discard(j)
        adj[j] = None
        if adj[i]:
            nb = np.fromiter(adj[i], np.int64, len(adj[i]))
            if fixed[i]:
                nb = nb[~fixed[nb]]
            sim = (s[nb] @ s[i]) / (cnt[nb] * cnt[i])
            ok = sim >= threshold
            vi = int(ver[i])
            for v, x in zip(sim[ok].tolist(), nb[ok].tolist()):
                heapq.heappush(heap, (-v, i, x, vi, int(ver[x])))
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    for x in range(c):                           # follow each chain of joins to its end
        r = x
        while parent[r] != r:
            r = parent[r]
        parent[x] = r
    return parent


def _labels(roots: np.ndarray) -> np.ndarray:
    """0..k-1 labels from cluster roots: the largest group first, ties by first face."""
    _, inv, sizes = np.unique(roots, return_inverse=True, return_counts=True)
    first = np.full(len(sizes), len(roots))
    np.minimum.at(first, inv, np.arange(len(roots)))
    order = np.lexsort((first, -sizes))
    rank = np.empty(len(sizes), int)
    rank[order] = np.arange(len(sizes))
    return rank[inv]


def cluster_dense(desc: np.ndarray, threshold: float, photos: list | None = None) -> np.ndarray:
    """Group labels as ``cluster`` gives them, from the full N x N similarity matrix (an argmax
    over it per join: cubic time, quadratic memory). A reference for small sets only."""
    n = len(desc)
    if n == 0:
        return np.zeros(0, int)
    d = np.asarray(desc, np.float32)
    sim = (d @ d.T).astype(np.float64)
    np.fill_diagonal(sim, -np.inf)
    size = np.ones(n)
    members: list[list[int]] = [[i] for i in range(n)]
    seen: list[set] = _photo_sets(photos, n)
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
    from pof.errors import PofError
    try:
        return pipeline.analyze_file(path, with_crops=True), None
    except PofError as exc:
        return [], str(exc)


def cluster_files(paths: list[str], fmr: float = DEFAULT_FMR, workers: int = 1,
                  progress: bool = False) -> ClusterResult:
    """Find every face in ``paths`` and group them; unreadable or faceless files are problems.
    ``progress``: progress bars on stderr (photos read, neighbours found, groups joined)."""
    result = ClusterResult(threshold=link_threshold(fmr))
    descs, photos = photo_faces(result, paths, workers, progress)
    group_faces(result, descs, photos, progress)
    return result


def photo_faces(result: ClusterResult, paths: list[str], workers: int = 1,
                progress: bool = False) -> tuple[list, list]:
    """Every face of the photos ``paths`` added to ``result.faces`` (problems to
    ``result.problems``): their descriptors and photos, for ``group_faces``."""
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import Pipeline
    descs, photos = [], []
    if not paths:
        return descs, photos
    pipeline = Pipeline(attributes="off")
    bar = _bar(len(paths), "faces", progress)
    for path, (faces, error) in zip(paths, pipeline_map(pipeline, _faces_with_crops,
                                                        ((p,) for p in paths), workers)):
        if bar:
            bar.update(1)
        if error:
            result.problems.append((path, error))
        for f in faces:
            result.faces.append({"image": path, "face": f.index, "crop": f.crop,
                                 "box": [round(float(v), 1) for v in f.box],
                                 "quality": round(float(f.quality), 3)})
            descs.append(f.descriptor)
            photos.append(path)
    if bar:
        bar.close()
    return descs, photos


def group_faces(result: ClusterResult, descs: list, photos: list, progress: bool = False) -> None:
    """Group the faces of ``result`` (descriptors ``descs``, photo keys ``photos``, as
    ``cluster`` takes them): each face's ``group``, and ``n_groups``."""
    if descs:
        labels = cluster(np.stack(descs), result.threshold, photos, progress=progress)
        for face, g in zip(result.faces, labels):
            face["group"] = int(g)
        result.n_groups = int(labels.max()) + 1


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
        track = "track" in f
        stem = Path(f["image"]).stem
        name = f"{stem}_track{f['track']}.jpg" if track else f"{stem}_face{f['face'] + 1}.jpg"
        if isinstance(f["crop"], bytes):                 # a video track's face, a JPEG already
            (folder / name).write_bytes(f["crop"])
        elif f["crop"] is not None:
            Image.fromarray(f["crop"]).save(folder / name, "JPEG", quality=92)
        if track:                                        # one face a track of a video
            row = {"image": f["image"], "track": f["track"], "name": f["name"],
                   "start": f["start"], "end": f["end"]}
        else:
            row = {"image": f["image"], "face": f["face"] + 1}
        rows.append({**row, "box": f["box"], "quality": f["quality"], "group": f["group"] + 1,
                     "crop": f"{folder.name}/{name}"})
    doc = {"threshold": round(result.threshold, 4), "groups": result.n_groups, "faces": rows,
           "errors": [{"image": p, "reason": r} for p, r in result.problems]}
    (out / "clusters.json").write_text(json.dumps(doc, indent=1) + "\n")
    timed = any("track" in r for r in rows)             # videos: start,end columns (seconds)
    lines = ["image,face,group,x,y,w,h,quality,crop" + (",start,end" if timed else "")] + [
        f"\"{r['image']}\",{r.get('face', r.get('track'))},{r['group']},{','.join(map(str, r['box']))},"
        f"{r['quality']},{r['crop']}" + (f",{r.get('start', '')},{r.get('end', '')}" if timed else "")
        for r in rows]
    (out / "clusters.csv").write_text("\n".join(lines) + "\n")
