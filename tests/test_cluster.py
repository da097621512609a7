"""Clustering unknown faces: the algorithm, its threshold, and `pof cluster` on real photos."""
from __future__ import annotations

import json
import shutil

import numpy as np

from pof.matching.cluster import NEIGHBOURS, assign, cluster, cluster_dense, join_groups, link_threshold
from pof.dataset.index import neighbours
from pof.matching.verify import Verifier

from .conftest import YALE, run_pof


def pairwise(labels, truth) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping against the true persons."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    iu = np.triu_indices(len(labels), 1)
    grouped = (labels[:, None] == labels[None])[iu]
    same = (truth[:, None] == truth[None])[iu]
    both = int((grouped & same).sum())
    return both / max(1, int(grouped.sum())), both / max(1, int(same.sum()))


def clustered(n, per=10, d=320, seed=0):
    """Synthetic descriptors shaped like pof's: unit rows crowding around one mean direction
    (strangers 0.54 / 0.67 / 0.79 / 0.82 alike at the 1st / 50th / 99th / 99.9th percentile, as
    pof's reference impostors: look-alikes come from a few shared directions), about ``per``
    faces a person, most of them past the link threshold with each other, poorer ones below."""
    rng = np.random.default_rng(seed)
    p, low = max(1, n // per), 12
    m = rng.normal(size=d)
    m /= np.linalg.norm(m)
    basis = np.linalg.qr(rng.normal(size=(d, low)))[0]
    r = rng.normal(size=(p, d)) / np.sqrt(d) + 2 * (rng.normal(size=(p, low)) @ basis.T) / np.sqrt(low)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    truth = np.repeat(np.arange(p), per)[:n]
    noise = rng.uniform(0.25, 0.5, size=(len(truth), 1))
    x = 0.8 * m + 0.42 * r[truth] + noise * rng.normal(size=(len(truth), d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def _unit(rng, n, d=16):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_threshold_comes_from_verification_calibration():
    assert link_threshold(1e-3) == Verifier(1e-3).threshold
    assert link_threshold(1e-4) > link_threshold(1e-2)


def test_clusters_tight_groups_and_respects_one_person_per_photo():
    rng = np.random.default_rng(0)
    centres = _unit(rng, 3)
    desc = np.concatenate([c + 0.05 * rng.normal(size=(4, 16)) for c in centres])
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    labels = cluster(desc, 0.8)
    assert [len(set(labels[i:i + 4])) for i in (0, 4, 8)] == [1, 1, 1] and len(set(labels)) == 3
    photos = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]       # faces 0 and 1 share a photo
    split = cluster(desc, 0.8, photos)
    assert split[0] != split[1] and len(set(split)) == 4
    assert len(cluster(desc, 1.01)) == 12 and len(set(cluster(desc, 1.01))) == 12
    assert cluster(np.zeros((0, 16)), 0.5).shape == (0,)


def test_join_groups_links_to_the_best_existing_group():
    rng = np.random.default_rng(1)
    a, b = _unit(rng, 2)
    existing = {7: np.stack([a, a]), 9: np.stack([b])}
    assert join_groups([np.stack([a]), np.stack([-a])], existing, 0.5) == {0: 7, 1: None}


def test_cluster_cli_groups_people_and_reports_bad_files(tmp_path):
    src = tmp_path / "event"
    src.mkdir()
    for name in ("subject01.normal", "subject01.happy", "subject01.glasses", "subject04.normal",
                 "subject04.sad", "subject02.normal"):
        shutil.copy(YALE / name, src / name)
    (src / "broken.jpg").write_bytes(b"not an image")
    r = run_pof("cluster", src, tmp_path / "missing.jpg", "--out", tmp_path / "out")
    assert r.returncode == 3, r.stderr          # two inputs failed, the rest was grouped
    assert "broken.jpg" in r.stderr and "missing.jpg" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads((tmp_path / "out" / "clusters.json").read_text())
    group = {f["image"].rsplit("/", 1)[1]: f["group"] for f in doc["faces"]}
    assert group["subject01.normal"] == group["subject01.happy"] == group["subject01.glasses"]
    assert group["subject04.normal"] == group["subject04.sad"] != group["subject01.normal"]
    assert group["subject02.normal"] not in (group["subject01.normal"], group["subject04.normal"])
    assert doc["threshold"] == round(Verifier(1e-3).threshold, 4)
    assert all((tmp_path / "out" / f["crop"]).is_file() for f in doc["faces"])
    assert (tmp_path / "out" / "clusters.csv").read_text().count("\n") == len(doc["faces"]) + 1
    assert "grouping:" in r.stderr and "photo/s" in r.stderr        # progress bars by default
    j = run_pof("cluster", src, "--out", tmp_path / "out2", "--json")
    assert j.returncode == 3 and "Traceback" not in j.stderr
    summary = json.loads(j.stdout)                                   # stdout is the JSON alone
    assert summary["groups"] == doc["groups"] and summary["faces"] == len(doc["faces"])
    assert [e["image"].rsplit("/", 1)[1] for e in summary["errors"]] == ["broken.jpg"]
    assert "|" not in j.stderr and "grouping" not in j.stderr
    q = run_pof("cluster", src, "--out", tmp_path / "out3", "--quiet")
    assert q.returncode == 3 and "|" not in q.stderr and "broken.jpg" in q.stderr
    assert q.stdout.strip().startswith(f"{len(doc['faces'])} faces in 7 images -> {doc['groups']} groups")


def test_graph_linkage_groups_real_faces_as_well_as_the_full_matrix(yale_faces):
    desc = np.stack([f.descriptor for _, _, f in yale_faces])
    truth = [person for person, _, _ in yale_faces]
    t = link_threshold()
    before = pairwise(cluster_dense(desc, t), truth)
    assert before[0] == 1.0 and before[1] > 0.9
    for k in (2, NEIGHBOURS):                       # a sparse graph, and the default one
        after = pairwise(cluster(desc, t, k=k), truth)
        assert after[0] >= before[0] and after[1] >= before[1], (k, before, after)


def test_graph_linkage_matches_the_full_matrix_on_clustered_descriptors():
    desc, truth = clustered(1000)
    t = link_threshold()
    old, new = cluster_dense(desc, t), cluster(desc, t)
    (p0, r0), (p1, r1) = pairwise(old, truth), pairwise(new, truth)
    assert p0 > 0.95 and 0.5 < r0 < 0.99              # a set that is neither trivial nor hopeless
    assert p1 >= p0 - 0.005 and r1 >= r0 - 0.005, ((p0, r0), (p1, r1))
    assert len(set(new)) == len(set(old))


def test_neighbour_graph_from_hnsw_finds_the_exact_neighbours():
    desc, _ = clustered(3000, seed=1)
    s0, i0 = neighbours(desc, 10)
    s1, i1 = neighbours(desc, 10, exact_max=100)        # forces the FAISS HNSW graph
    assert (i0 != np.arange(3000)[:, None]).all() and (i1 != np.arange(3000)[:, None]).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i0, i1)])
    assert recall > 0.95, recall
    assert np.allclose(np.sort(s0, 1), np.sort(np.einsum("nd,nkd->nk", desc, desc[i0]), 1), atol=1e-5)
    s, i = neighbours(desc[:3], 5)                      # fewer rows than k: padded
    assert (i[:, 2:] == -1).all() and np.isinf(s[:, 2:]).all()


def test_two_faces_of_one_photo_never_share_a_group(yale_faces):
    desc = np.stack([f.descriptor for _, _, f in yale_faces])
    t = link_threshold()
    photos = list(range(len(desc)))
    photos[1] = photos[2] = 0                           # three faces of subject01 in one photo
    labels = cluster(desc, t, photos)
    assert len({labels[0], labels[1], labels[2]}) == 3
    assert labels[3] == labels[4] == labels[5]          # the other persons are grouped as before
    # synthetic: every person's faces come two to a photo, so each group holds one of a pair
    desc, truth = clustered(400, seed=2)
    photos = np.arange(400) // 2
    labels = cluster(desc, t, photos.tolist())
    assert all(labels[2 * i] != labels[2 * i + 1] for i in range(200))
    assert len(set(labels)) < 300                       # the rest still groups


def test_assign_adds_new_faces_to_existing_groups_and_groups_the_rest():
    desc, truth = clustered(600, seed=3)
    t = link_threshold()
    old = truth < 40                                    # persons 0..39 known, 40..59 new
    old = old & (np.arange(600) % 10 < 6)               # six faces of each known person stored
    first = cluster(desc[old], t)
    existing = {100 + g: desc[old][first == g] for g in range(first.max() + 1)}
    new = ~old
    joined, fresh = assign(desc[new], t, existing, photos=list(np.flatnonzero(new)))
    assert ((joined >= 0) != (fresh >= 0)).all()        # each new face: an old group or a new one
    assert set(joined[joined >= 0]) <= set(existing)
    known = truth[new] < 40
    assert (joined[known] >= 0).mean() > 0.6            # most faces of known persons join theirs
    assert (joined[~known] == -1).all()                 # strangers are not forced into old groups
    for face, gid in zip(np.flatnonzero(new), joined):
        if gid >= 0:                                    # and join the group of their own person
            owners = truth[old][first == gid - 100]
            assert (owners == truth[face]).mean() > 0.5
    p, r = pairwise(fresh[~known], truth[new][~known])
    assert p > 0.95 and r > 0.5
    # two faces of one new photo that both match one group: only one joins it
    a = np.flatnonzero(truth[new] == 0)[:2]
    j2, f2 = assign(desc[new][a], t, existing, photos=[7, 7])
    assert not (j2[0] >= 0 and j2[0] == j2[1])
    assert assign(desc[:0], t, existing)[0].shape == (0,)
    j3, f3 = assign(desc[new][:5], t, {})               # nothing stored yet: plain grouping
    assert (j3 == -1).all() and (f3 >= 0).all()


def test_event_upload_adds_faces_to_earlier_groups_keeping_their_ids(yale_faces):
    import sqlite3

    from pof.casework import unknown
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    unknown.ensure_schema(db)
    by = {f"{p}.{i}": f for i, (p, _, f) in enumerate(yale_faces)}     # subjectNN.<file number>
    s01, s02, s03 = ([n for n in by if n.startswith(f"subject0{k}.")] for k in (1, 2, 3))
    t = link_threshold()
    first = unknown.add_event(db, "march 1", [("a.jpg", "0", b"", [by[s01[0]]]),
                                              ("b.jpg", "1", b"", [by[s02[0]]])], "vera", t)
    assert first["new_groups"] == 2
    before = {g["id"]: g["faces"] for g in unknown.groups(db)}
    second = unknown.add_event(db, "march 2", [("c.jpg", "2", b"", [by[s01[1]], by[s01[2]]]),
                                               ("d.jpg", "3", b"", [by[s03[0]]]),
                                               ("e.jpg", "4", b"", [by[s02[1]]])], "vera", t)
    after = {g["id"]: g for g in unknown.groups(db)}
    assert set(before) <= set(after)                     # earlier groups keep their ids
    g01 = next(g for g in before if unknown.group(db, g)["faces"][0]["photo"] == "a.jpg")
    g02 = next(g for g in before if g != g01)
    assert sorted(second["linked_groups"]) == sorted([g01, g02])
    # subject01's two faces share photo c.jpg: only one joins its group, the other stands alone
    # (one photo never puts two faces in one group, across events too)
    assert after[g01]["faces"] == 2 and after[g02]["faces"] == 2
    assert second["new_groups"] == 2 and len(after) == 4
