"""The benchmark package: every study is listed and runnable as `python -m bench STUDY`, imports
without running anything, answers --help, stops with one clear line where its data are missing;
the harness writes results with the machine they ran on, and makes the same inputs every time."""
from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bench
from bench import harness

BENCH = Path(bench.__file__).parent
REPO = BENCH.parent


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_every_module_is_a_study_or_a_helper():
    modules = {p.stem for p in BENCH.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert modules == set(bench.STUDIES) | set(bench.HELPERS)
    assert not set(bench.STUDIES) & set(bench.HELPERS)


def test_list_names_every_study_with_one_line():
    r = run_bench("--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(bench.STUDIES)
    assert all(len(line.split(None, 1)) == 2 for line in lines)     # each has its summary


def test_an_unknown_study_is_one_clear_line():
    r = run_bench("nosuchstudy")
    assert r.returncode == 2 and "no study 'nosuchstudy'" in r.stderr and "Traceback" not in r.stderr


def test_a_study_runs_through_python_m_bench():
    r = run_bench("core", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m bench core")


@pytest.mark.parametrize("name", bench.STUDIES)
def test_study_imports_without_running_and_has_help(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"bench.{name}")
    assert capsys.readouterr().out == ""                  # importing printed nothing
    assert list(tmp_path.iterdir()) == []                 # ... and wrote nothing
    assert callable(module.main)
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m bench {name}")
    assert module.__doc__.strip().split("\n")[0] in out


@pytest.mark.parametrize("name, argv, hint", [
    ("core", ["--root", "{tmp}/core"], "make_core_set"),
    ("public", ["--root", "{tmp}/public"], "make_public_set"),
    ("make_core_set", ["--yale", "{tmp}/yale"], "Yale"),
    ("make_public_set", ["--lfw", "{tmp}/lfw"], "LFW"),
    ("lfw_pairs", ["--lfw", "{tmp}/lfw", "--pairs-txt", "{tmp}/pairs.txt"], "LFW"),
    ("head_pose", ["--lfw", "{tmp}/lfw"], "LFW"),
    ("named_photos", ["--lfw", "{tmp}/lfw"], "LFW"),
    ("attributes", ["--set", "lfw", "--lfw", "{tmp}/lfw"], "LFW"),
    ("occlusion", ["{tmp}/set"], "make_public_set"),
])
def test_missing_data_is_one_clear_line(name, argv, hint, capsys, tmp_path):
    module = importlib.import_module(f"bench.{name}")
    with pytest.raises(SystemExit) as e:
        module.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and hint in err
    assert str(tmp_path) in err


def test_save_writes_json_and_markdown_with_the_machine(tmp_path):
    out = harness.save("demo", {"rows": [{"n": 1, "recall": 0.5}]}, "| n | recall |\n|---|---|\n| 1 | 0.5 |",
                       tmp_path / "demo.json")
    got = json.loads(out.read_text())
    assert got["rows"] == [{"n": 1, "recall": 0.5}]
    m = got["machine"]
    assert m["cpu_count"] >= 1 and m["python"] == sys.version.split()[0] and m["nproc"]
    assert m["mem_total"] and m["cpu_model"] is not None
    assert m["versions"]["numpy"] == np.__version__
    assert {"onnxruntime", "openvino", "torch"} <= set(m["versions"])
    assert (tmp_path / "demo.md").read_text() == "| n | recall |\n|---|---|\n| 1 | 0.5 |\n"
    # a result that records its machine itself (pinned cores, load at the end) keeps it
    pinned = harness.machine_info([0])
    harness.save("demo", {"machine": pinned}, None, tmp_path / "pinned.json")
    assert json.loads((tmp_path / "pinned.json").read_text())["machine"]["pinned_cores"] == [0]
    assert not (tmp_path / "pinned.md").exists()


def test_save_defaults_to_bench_results(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")
    assert harness.save("x", {"a": 1}) == tmp_path / "results" / "x.json"


def test_markdown_table():
    assert harness.markdown_table(["a", "b"], [[1, "x"], [2, "y"]]) == \
        "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |"


def test_made_up_photos_are_the_same_every_time(tmp_path):
    sources = harness.face_sources()
    a, b = harness.make_photo(sources, 3), harness.make_photo(sources, 3)
    assert a.shape == (harness.PHOTO_H, harness.PHOTO_W, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, harness.make_photo(sources, 4))
    paths = harness.make_photos(tmp_path, 2)
    assert [p.name for p in paths] == ["photo00000.jpg", "photo00001.jpg"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_test_people_copies_the_chosen_photos(tmp_path):
    harness.test_people(tmp_path / "all", ("01", "04"))
    assert sorted(p.name for p in (tmp_path / "all" / "subject04").iterdir()) == \
        ["subject04.normal", "subject04.sad"]
    harness.test_people(tmp_path / "some", ("01", "02"), ("normal", "happy"))
    assert sorted(p.relative_to(tmp_path / "some").as_posix() for p in (tmp_path / "some").rglob("*.*")) == \
        ["subject01/subject01.happy", "subject01/subject01.normal",
         "subject02/subject02.happy", "subject02/subject02.normal"]
    manifest = harness.demo_manifest(tmp_path / "demo.csv").read_text()
    assert str(harness.DEMO / "gallery") in manifest


def test_rel_and_require(tmp_path, capsys):
    assert harness.rel(REPO / "bench" / "core.py") == "bench/core.py"
    assert harness.rel(tmp_path) == str(tmp_path.resolve())
    harness.require([tmp_path], "never shown")
    with pytest.raises(SystemExit) as e:
        harness.require([tmp_path / "gone"], "make it first")
    assert e.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'gone'} is missing; make it first\n"


def test_need_names_the_missing_module_and_what_to_install(capsys):
    harness.need("numpy", "never shown")
    with pytest.raises(SystemExit) as e:
        harness.need("no_such_module_for_pof_bench", "install it")
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: no module 'no_such_module_for_pof_bench'; install it\n"


@pytest.mark.skipif(importlib.util.find_spec("face_recognition") is not None,
                    reason="the peer is installed here")
@pytest.mark.parametrize("name, argv", [
    ("core", ["--root", "{tmp}"]),                     # a set is there; the peer is not
    ("build_speed", ["--big", "1"]),
    ("make_core_set", ["--yale", "{tmp}"]),
])
def test_without_the_peer_a_study_that_needs_it_says_so_first(name, argv, capsys, tmp_path):
    for d in ("gallery", "all"):
        (tmp_path / d).mkdir()
    for f in ("probes.csv", "pairs.csv"):
        (tmp_path / f).write_text("")
    module = importlib.import_module(f"bench.{name}")
    with pytest.raises(SystemExit) as e:
        module.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: no module 'face_recognition'; " + harness.PEER_HINT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all", "gallery", "pairs.csv", "probes.csv"]


def test_occlusion_reads_probes_through_pofs_quality_gates(tmp_path):
    """The occlusion study describes each probe's largest face where it passes pof's gates
    (the settings min_interocular and max_blur)."""
    import shutil

    from pof.pipeline import Pipeline

    from bench import occlusion
    (tmp_path / "probes").mkdir()
    shutil.copy(harness.YALE / "subject01.normal", tmp_path / "probes" / "a")
    (tmp_path / "probes" / "b").write_bytes(b"not an image")
    harness.write_csv(tmp_path / "probes.csv",
                      [{"path": "probes/a", "person": "subject01", "role": "mated", "condition": "plain"},
                       {"path": "probes/b", "person": "x", "role": "nonmated", "condition": "plain"}],
                      ["path", "person", "role", "condition"])
    rows = occlusion.probe_rows(tmp_path, Pipeline(attributes="off"))
    assert [r[:3] for r in rows] == [("plain", "subject01", "mated"), ("plain", "x", "nonmated")]
    assert rows[0][3] is not None and rows[0][3].ndim == 1     # described
    assert rows[1][3] is None                                   # unreadable: no face, no crash
