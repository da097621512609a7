"""Clustering unknown faces: the algorithm, its threshold, and `pof cluster` on real photos."""
from __future__ import annotations

import json
import shutil

import numpy as np

from pof.cluster import cluster, join_groups, link_threshold
from pof.verify import Verifier

from .conftest import YALE, run_pof


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
