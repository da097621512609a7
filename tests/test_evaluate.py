"""Evaluation figures on known scores, and `pof eval` through the CLI on real images."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pof.evaluation import metrics as ev

from .conftest import YALE, run_pof


def test_auc_tar_eer_on_known_scores():
    g = np.array([0.9, 0.8, 0.7, 0.6])
    i = np.array([0.1, 0.2, 0.3, 0.65])
    assert ev.auc(g, i) == (4 * 4 - 1) / 16          # one impostor beats one genuine
    assert ev.auc(np.array([0.5]), np.array([0.5])) == 0.5
    assert ev.tar_at_far(g, i, 0.25) == 1.0          # threshold just above 0.3 admits 0.65 only
    assert ev.tar_at_far(g, i, 1e-3) is None         # four impostors cannot show 1e-3
    assert 0 < ev.eer(g, i) <= 0.25


def test_accuracy_10fold_separable():
    rng = np.random.default_rng(0)
    s = np.r_[rng.uniform(0.8, 1, 100), rng.uniform(0, 0.5, 100)]
    y = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    assert ev.accuracy_10fold(s, y) == 1.0
    s[0] = -np.inf                                   # an unscored genuine pair is an error
    assert ev.accuracy_10fold(s, y) == 0.995


def test_accuracy_10fold_uses_given_folds():
    """Two folds whose best thresholds differ: each is judged at the other's, so half the pairs
    fall on the wrong side; dealt at random, both folds mix and the split is learnt."""
    y = np.tile([True, False], 50)
    s = np.r_[np.tile([0.9, 0.6], 25), np.tile([0.5, 0.2], 25)]
    folds = np.repeat(["1", "2"], 50)
    assert ev.accuracy_10fold(s, y, fold_of=folds) == 0.5
    assert ev.accuracy_10fold(s, y) < 1.0
    assert ev.pair_figures(s, y, 0.55, folds)["folds"] == 2
    assert ev.pair_figures(s, y, 0.55)["folds"] == 10


def test_cmc_and_fnir():
    assert ev.cmc(np.array([1, 2, 0, 1]), 3).tolist() == [0.5, 0.75, 0.75]
    fnir, t = ev.fnir_at_fpir([True, True, False], [0.9, 0.5, 0.95], np.linspace(0, 0.8, 100), 0.01)
    assert t > 0.79 and fnir == pytest.approx(2 / 3)   # only the 0.9 mate passes


def test_ident_figures():
    s = [{"mated": True, "detected": True, "rank": 1, "top_score": 0.9, "top_ok": True, "decision_match": True},
         {"mated": True, "detected": False, "rank": 0, "top_score": -np.inf, "top_ok": False, "decision_match": False},
         {"mated": False, "detected": True, "rank": 0, "top_score": 0.3, "top_ok": False, "decision_match": False}]
    f = ev.ident_figures(s)
    assert f["rank1"] == 0.5 and f["fail_to_detect"] == round(1 / 3, 4)
    assert f["dir_at_threshold"] == 0.5 and f["fpir_at_threshold"] == 0.0


def test_threshold_for_fpir_lets_at_most_the_share_through():
    s = np.arange(200, dtype=float)                      # 200 nonmated top scores
    t = ev.threshold_for_fpir(s, 0.01)                   # at most 2 may pass
    assert (s >= t).sum() == 2
    assert (s[:50] >= ev.threshold_for_fpir(s[:50], 0.01)).sum() == 0   # too few to allow one
    assert ev.threshold_for_fpir([-np.inf] * 10, 0.01) == -np.inf  # nothing found anywhere
    assert ev.threshold_for_fpir(s, 1.0) == -np.inf      # every search may pass


def test_dir_at_counts_the_mate_on_top_at_or_over_the_threshold():
    ok = [True, True, False, True]
    score = [0.9, 0.5, 0.95, -np.inf]                    # the third is the wrong person
    assert ev.dir_at(ok, score, 0.5) == 0.5
    assert ev.dir_at(ok, score, 0.6) == 0.25
    assert ev.dir_at([], [], 0.5) is None


def test_fpir_at_counts_nonmated_top_scores_at_or_over_the_threshold():
    assert ev.fpir_at([0.9, 0.5, -np.inf, 0.2], 0.5) == 0.5
    assert ev.fpir_at([0.9, 0.5, -np.inf, 0.2], -np.inf) == 1.0   # nothing found still counts
    assert ev.fpir_at([], 0.5) is None


def test_wilson_interval_holds_the_rate_and_stays_in_0_1():
    lo, hi = ev.wilson_interval(5, 100)
    assert lo < 0.05 < hi and 0.01 < lo and hi < 0.12
    assert ev.wilson_interval(0, 50)[0] == 0.0 and 0 < ev.wilson_interval(0, 50)[1] < 0.1
    assert ev.wilson_interval(0, 0) == (0.0, 1.0)


def test_pairwise_precision_recall_counts_pairs():
    truth = np.array([0, 0, 0, 1, 1])
    assert ev.pairwise_precision_recall(truth, truth) == (1.0, 1.0)
    # one group of all five: 10 pairs grouped, 3 + 1 of them of one person
    assert ev.pairwise_precision_recall(np.zeros(5, int), truth) == (0.4, 1.0)
    # every face alone: nothing grouped, no pair of one person found
    assert ev.pairwise_precision_recall(np.arange(5), truth) == (0.0, 0.0)
    # person 0 split 2 + 1: 1 of its 3 pairs kept, person 1's pair kept
    assert ev.pairwise_precision_recall(np.array([0, 0, 2, 1, 1]), truth) == (1.0, 0.5)


def test_recall_at_k_and_balanced_accuracy():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert ev.recall_at_k(np.array([[4, 3, 2, 1], [5, 6, 0, 0]]), truth) == 0.75
    t = np.array([True] * 9 + [False])
    assert ev.balanced_accuracy(t, np.ones(10, bool)) == 0.5    # always "yes": chance
    assert ev.balanced_accuracy(t, t) == 1.0
    assert ev.balanced_accuracy(np.ones(3, bool), [True, True, False]) == 2 / 3   # one side only
    assert np.isnan(ev.balanced_accuracy([], []))


def test_eval_pairs_and_ident_cli(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_x,file_y,Decision,kind\n"
                     "subject01.normal,subject01.happy,Yes,a\nsubject02.normal,subject02.glasses,Yes,a\n"
                     "subject01.normal,subject02.normal,No,b\nsubject03.normal,subject02.happy,No,b\n")
    r = run_pof("eval", "pairs", pairs, "--root", YALE, "--by", "kind", "--out", tmp_path / "ev", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["groups"]["all"]["pairs"] == 4 and res["groups"]["all"]["auc"] == 1.0
    assert set(res["groups"]) == {"all", "kind=a", "kind=b"}
    for pic in res["pictures"]:
        assert Image.open(pic).size[0] > 300
    man = tmp_path / "ident.csv"
    man.write_text("path,person,role\nsubject01.normal,s1,gallery\nsubject02.normal,s2,gallery\n"
                   "subject03.normal,s3,gallery\nsubject01.happy,s1,probe\nsubject02.glasses,s2,probe\n"
                   "subject04.normal,s4,probe\nmissing.png,s1,probe\n")
    r = run_pof("eval", "ident", man, "--root", YALE, "--out", tmp_path / "ei", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    fig = res["groups"]["all"]
    assert fig["mated"] == 3 and fig["nonmated"] == 1
    assert fig["rank1"] == round(2 / 3, 4) and fig["fail_to_detect"] == 0.25
    assert (tmp_path / "ei" / "cmc.png").is_file() and (tmp_path / "ei" / "ident.json").is_file()


def test_eval_ident_face_rule(tmp_path):
    """--face center scores the face nearest the centre (LFW's labelled person), not the
    largest one beside it."""
    from pof.evaluation.run import run_ident

    def face(name, scale):
        im = Image.open(YALE / name).convert("RGB")
        return im.resize((int(im.width * scale), int(im.height * scale)))

    big, small = face("subject03.happy", 1.6), face("subject01.happy", 1.0)
    photo = Image.new("RGB", (1000, 500), (128, 128, 128))
    photo.paste(big, (0, 50))                                   # at the left edge, larger
    photo.paste(small, ((1000 - small.width) // 2, (500 - small.height) // 2))   # centred
    photo.save(tmp_path / "two.png")
    for name in ("subject01.normal", "subject03.normal", "subject02.normal"):
        Image.open(YALE / name).convert("RGB").save(tmp_path / f"{name}.png")
    man = tmp_path / "ident.csv"
    man.write_text("path,person,role\nsubject01.normal.png,s1,gallery\nsubject03.normal.png,s3,gallery\n"
                   "subject02.normal.png,s2,gallery\ntwo.png,s1,probe\n")
    largest = run_ident(man, tmp_path, tmp_path / "a", None, 1)
    center = run_ident(man, tmp_path, tmp_path / "b", None, 1, subject="center")
    assert largest["subject"] == "largest" and center["subject"] == "center"
    assert largest["groups"]["all"]["rank1"] == 0.0       # the larger face is s3's
    assert center["groups"]["all"]["rank1"] == 1.0


def test_eval_ident_where_every_mated_probe_is_found(tmp_path):
    """No false non-match at any rate: the DET picture says so instead of the command
    failing on log axes with nothing to draw."""
    man = tmp_path / "ident.csv"
    man.write_text("path,person,role\nsubject01.normal,s1,gallery\nsubject02.normal,s2,gallery\n"
                   "subject01.happy,s1,probe\nsubject02.glasses,s2,probe\nsubject04.normal,s4,probe\n")
    r = run_pof("eval", "ident", man, "--root", YALE, "--out", tmp_path / "ei", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    res = json.loads(r.stdout)
    assert res["groups"]["all"]["rank1"] == 1.0
    for pic in res["pictures"]:
        assert Image.open(pic).size[0] > 300


def test_det_plot_of_curves_without_a_miss(tmp_path):
    import numpy as np
    from pof.evaluation.plots import det_plot
    perfect = (np.array([0.0, 0.1, 0.5]), np.array([0.0, 0.0, 0.0]))
    assert det_plot({"plain": perfect}, tmp_path / "a.png").is_file()
    assert det_plot({"plain": perfect, "masked": (np.array([0.01, 0.1]), np.array([0.2, 0.1]))},
                    tmp_path / "b.png").is_file()
