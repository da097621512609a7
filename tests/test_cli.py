"""The CLI through its entry point: search, verify and demo, with bad inputs among good ones."""
from __future__ import annotations

import json
import re
import shutil

from .conftest import DEMO, YALE, noise_image, run_pof


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_search_json_contract(built, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    noise = noise_image(tmp_path / "noise.png")
    probes = [YALE / "subject02.glasses", bad, noise, YALE / "subject04.normal"]
    r = run_pof("search", built, *probes, "--json", "--top", "3")
    assert r.returncode == 3, r.stderr          # some inputs failed, the rest was done
    res = _lines(r.stdout)
    assert [x["image"] for x in res] == [str(p) for p in probes]
    hit = res[0]
    assert hit["error"] is None and len(hit["faces"]) == 1
    face = hit["faces"][0]
    assert set(face) >= {"box", "det_score", "quality", "decision", "fpir", "candidates"}
    assert len(face["box"]) == 4 and 0 < face["quality"] <= 1
    top = face["candidates"][0]
    assert set(top) >= {"person", "name", "score", "fmr", "evidence"}
    assert top["person"] == "subject02" and top["name"] == "subject02"
    assert len(face["candidates"]) == 3
    assert [c["score"] for c in face["candidates"]] == sorted((c["score"] for c in face["candidates"]), reverse=True)
    assert all(len(e) == 8 for e in top["evidence"])
    assert 0 < face["fpir"] <= 0.0101
    assert res[1]["error"] and "not an image" in res[1]["error"] and res[1]["faces"] == []
    assert res[2]["error"] and "no face" in res[2]["error"]
    assert res[3]["error"] is None   # a person not enrolled is still searched


def test_search_human_output(built):
    r = run_pof("search", built, YALE / "subject03.glasses")
    assert r.returncode == 0, r.stderr
    assert "subject03" in r.stdout and "not identifications" in r.stdout


def test_search_says_when_a_photo_was_deblocked(built, tmp_path):
    from PIL import Image
    blocky = tmp_path / "blocky.jpg"
    Image.open(YALE / "subject03.normal").convert("RGB").save(blocky, quality=5)
    r = run_pof("search", built, blocky, YALE / "subject03.glasses")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("blocky.jpg face 1" in x and "heavily JPEG-compressed" in x for x in lines)
    assert not any("subject03.glasses" in x and "compressed" in x for x in lines)
    j = _lines(run_pof("search", built, blocky, "--json").stdout)[0]
    assert j["faces"][0]["restored"] == "deblocked"
    assert j["faces"][0]["candidates"][0]["person"] == "subject03"


def test_search_missing_dataset(tmp_path):
    r = run_pof("search", tmp_path / "nothing", YALE / "subject01.normal")
    assert r.returncode == 2 and "pof build" in r.stderr and "Traceback" not in r.stderr


def test_verify_pair_and_pairs_file(tmp_path):
    r = run_pof("verify", YALE / "subject01.normal", YALE / "subject01.happy", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["same"] is True and out["score"] >= out["threshold"] and 0 < out["fmr"] <= 1
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_x,file_y,Decision\nsubject01.normal,subject01.glasses,Yes\n"
                     "subject01.normal,subject02.normal,No\nsubject01.normal,missing.png,No\n")
    r = run_pof("verify", "--pairs", pairs, "--root", YALE, "--json")
    assert r.returncode == 3, r.stderr          # one pair has a missing file
    res = _lines(r.stdout)
    assert [x["file_y"] for x in res] == ["subject01.glasses", "subject02.normal", "missing.png"]
    assert res[0]["same"] is True and res[1]["same"] is False
    assert res[1]["score"] < res[0]["score"]
    assert "no such file" in res[2]["error"]


def test_demo(tmp_path):
    r = run_pof("demo", "--out", tmp_path / "demo")
    assert r.returncode == 0, r.stderr
    assert "astronaut_eileen_collins.jpg: no confident match" in r.stdout
    res = {x["image"]: x for x in json.loads((tmp_path / "demo" / "demo_search.json").read_text())}
    assert set(res) == {p.name for p in (DEMO / "probes").glob("*.jpg")}
    obama = res["obama_joint_session_2009.jpg"]["faces"][0]
    assert obama["candidates"][0]["person"] == "Barack_Obama"
    assert obama["candidates"][0]["score"] > obama["candidates"][1]["score"] + 0.05
    # the decision follows the calibrated threshold, whichever side the score falls
    assert (obama["decision"] == "match") == (obama["candidates"][0]["score"] >= obama["threshold"])


def test_unknown_device_and_missing_gpu(tmp_path, gallery_dir):
    import onnxruntime as ort
    r = run_pof("build", gallery_dir, "--out", tmp_path / "ds", "--device", "cuda", "--quiet")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert r.returncode == 2 and "CUDA" in r.stderr and "Traceback" not in r.stderr
    r = run_pof("build", gallery_dir, "--out", tmp_path / "ds", "--device", "tpu")
    assert r.returncode == 2 and "Invalid value" in r.stderr


def test_search_where_narrows_gallery(tmp_path):
    ds = tmp_path / "ds"
    assert run_pof("build", DEMO / "manifest.csv", "--out", ds, "--quiet").returncode == 0
    probe = DEMO / "probes" / "obama_joint_session_2009.jpg"
    r = run_pof("search", ds, probe, "--json", "--where", "rank=vice president")
    assert r.returncode == 0, r.stderr
    cands = json.loads(r.stdout)["faces"][0]["candidates"]
    assert [c["person"] for c in cands] == ["Joseph_Biden"]
    r = run_pof("search", ds, probe, "--json", "--where", "rank=President", "--where", "rank=Vice President")
    assert len(json.loads(r.stdout)["faces"][0]["candidates"]) == 2
    r = run_pof("search", ds, probe, "--where", "agency=NYPD")
    assert r.returncode == 2 and "no enrolled person matches" in r.stderr
    r = run_pof("search", ds, probe, "--where", "agency")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


def test_tiny_face_gets_quality_too_low(built, tmp_path):
    from PIL import Image
    img = Image.open(YALE / "subject02.normal").convert("RGB")
    tiny = tmp_path / "tiny.png"
    canvas = Image.new("RGB", (320, 240), (128, 128, 128))      # the photo at 1/9 scale
    canvas.paste(img.resize((img.width // 9, img.height // 9), Image.LANCZOS), (100, 100))
    canvas.save(tiny)
    r = run_pof("search", built, tiny, YALE / "subject02.glasses", "--json")
    assert r.returncode == 0, r.stderr
    small, normal = _lines(r.stdout)
    assert small["faces"], small
    face = small["faces"][0]
    assert face["decision"] == "quality_too_low" and face["candidates"] == []
    assert "px apart" in face["reason"] and face["interocular"] < 8
    assert normal["faces"][0]["decision"] in ("match", "no_match") and normal["faces"][0]["interocular"] > 8


def test_blurred_face_gets_quality_too_low(built, tmp_path):
    from PIL import Image, ImageFilter
    img = Image.open(YALE / "subject02.normal").convert("RGB")
    img.filter(ImageFilter.GaussianBlur(6)).save(tmp_path / "blurred.png")    # about 0.15 x the eye distance
    img.filter(ImageFilter.GaussianBlur(1)).save(tmp_path / "soft.png")
    r = run_pof("search", built, tmp_path / "blurred.png", tmp_path / "soft.png", "--json")
    assert r.returncode == 0, r.stderr
    blurred, soft = (line["faces"][0] for line in _lines(r.stdout))
    assert blurred["decision"] == "quality_too_low" and blurred["candidates"] == []
    assert "blurred" in blurred["reason"] and blurred["blur"] > 0.9
    assert soft["decision"] in ("match", "no_match") and soft["candidates"] and soft["blur"] < 0.9


def test_search_same_person_fuses_one_query(built, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    r = run_pof("search", built, YALE / "subject02.glasses", bad, YALE / "subject02.normal",
                "--same-person", "--json")
    assert r.returncode == 3, r.stderr          # one image unreadable
    (line,) = _lines(r.stdout)                   # one result for the whole group
    assert line["error"] is None and len(line["images"]) == 3
    assert [n["image"] for n in line["notes"]] == [str(bad)]
    (face,) = line["faces"]
    assert face["probes_used"] == 2 and len(face["probes"]) == 2
    assert all("box" in p and p["image"].startswith(str(YALE)) for p in face["probes"])
    assert face["candidates"][0]["person"] == "subject02"
    assert 0 < face["threshold"] < 1 and 0 < face["fpir"] <= 0.011
    r = run_pof("search", built, YALE / "subject02.glasses", YALE / "subject02.normal", "--same-person")
    assert r.returncode == 0 and "one person in 2 images" in r.stdout and "subject02" in r.stdout


def test_template_calibration_is_its_own(built):
    from pof.matching.search import Gallery, Searcher
    s = Searcher(Gallery.load(built))
    single, pair = s.template_calibration(1), s.template_calibration(2)
    assert single is s.calibration
    assert pair is not single and "2-image templates" in pair.method
    assert s.template_calibration(2) is pair                      # computed once


def test_dataset_built_with_dlib_alone_stays_searchable(gallery_dir, tmp_path, monkeypatch):
    """A dataset built with another descriptor backend (here dlib alone, the default before
    MobileFace joined) is searched with that backend, not refused or mixed."""
    out = tmp_path / "ds"
    monkeypatch.setenv("POF_EMBEDDER", "dlib-resnet-onnx")
    r = run_pof("build", gallery_dir, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    monkeypatch.delenv("POF_EMBEDDER")
    assert json.loads((out / "pof.json").read_text())["settings"]["embedder"] == "dlib-resnet-onnx"
    r = run_pof("search", out, YALE / "subject02.glasses", "--json")
    assert r.returncode == 0, r.stderr
    top = _lines(r.stdout)[0]["faces"][0]["candidates"][0]
    assert top["person"] == "subject02"


def test_dataset_built_with_other_detector_is_refused_clearly(built, monkeypatch):
    monkeypatch.setenv("POF_DETECTOR", "hog")
    r = run_pof("search", built, YALE / "subject02.glasses")
    assert r.returncode != 0
    assert "built with other models" in r.stderr and "Traceback" not in r.stderr


# --- exit statuses, folders as search input, settings from the environment -----------------

def test_every_input_failed_exits_4(built, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    r = run_pof("search", built, bad, tmp_path / "missing.jpg")
    assert r.returncode == 4, r.stderr
    assert "not an image" in r.stdout and "missing.jpg: no such file" in r.stdout
    r = run_pof("search", built, bad, "--same-person")
    assert r.returncode == 4, r.stderr
    r = run_pof("verify", bad, YALE / "subject01.normal")
    assert r.returncode == 4 and "not an image" in r.stdout, r.stderr
    r = run_pof("redact", bad, tmp_path / "missing.jpg", "--out", tmp_path / "red")
    assert r.returncode == 4 and "bad.jpg" in r.stderr, r.stderr
    r = run_pof("cluster", bad, "--out", tmp_path / "cl")
    assert r.returncode == 4 and "bad.jpg" in r.stderr, r.stderr


def test_exit_statuses_in_help():
    r = run_pof("--help")
    assert r.returncode == 0
    for line in ("0    everything done", "3    some inputs failed", "4    every input failed",
                 "75   the dataset is being written", "130  interrupted"):
        assert line in r.stdout, line


def test_search_takes_folders(built, tmp_path):
    """Every file inside a folder, recursively, in name order, whatever its extension; an
    unreadable one is reported with its reason and the others are searched."""
    import shutil
    probes = tmp_path / "probes"
    (probes / "b").mkdir(parents=True)
    shutil.copy(YALE / "subject02.glasses", probes / "b" / "second")
    shutil.copy(YALE / "subject03.glasses", probes / "a.photo")
    (probes / "c.jpg").write_text("not an image")
    (probes / ".hidden").write_text("left out")
    (tmp_path / "none").mkdir()
    r = run_pof("search", built, probes, tmp_path / "none", "--json")
    assert r.returncode == 3, r.stderr
    res = {x["image"]: x for x in _lines(r.stdout)}
    assert set(res) == {str(probes / "a.photo"), str(probes / "b" / "second"), str(probes / "c.jpg"),
                        str(tmp_path / "none")}
    assert res[str(probes / "a.photo")]["faces"][0]["candidates"][0]["person"] == "subject03"
    assert res[str(probes / "b" / "second")]["faces"][0]["candidates"][0]["person"] == "subject02"
    assert "not an image" in res[str(probes / "c.jpg")]["error"]
    assert res[str(tmp_path / "none")]["error"] == "folder holds no files"
    order = [x["image"] for x in _lines(r.stdout) if x["image"].startswith(str(probes))]
    assert order == sorted(order)


def test_environment_reaches_build(tmp_path, monkeypatch):
    monkeypatch.setenv("POF_DETECTOR", "hog")
    out = tmp_path / "ds"
    r = run_pof("build", DEMO / "manifest.csv", "--out", out, "--quiet", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "pof.json").read_text())["settings"]["detector"] == "hog"
    r = run_pof("build", DEMO / "manifest.csv", "--out", tmp_path / "ds2", "--quiet", "--workers", "1",
                "--detector", "mtcnn")                      # the command line wins
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "ds2" / "pof.json").read_text())["settings"]["detector"] == "mtcnn"


def test_environment_reaches_search(built, monkeypatch):
    monkeypatch.setenv("POF_FPIR", "0.05")
    monkeypatch.setenv("POF_TOP", "2")
    r = run_pof("search", built, YALE / "subject02.glasses")
    assert r.returncode == 0, r.stderr
    assert "FPIR 5.00%" in r.stdout
    face = _lines(run_pof("search", built, YALE / "subject02.glasses", "--json").stdout)[0]["faces"][0]
    assert len(face["candidates"]) == 2 and 0.04 < face["fpir"] <= 0.0501
    r = run_pof("search", built, YALE / "subject02.glasses", "--json", "--top", "3", "--fpir", "0.01")
    face = _lines(r.stdout)[0]["faces"][0]
    assert len(face["candidates"]) == 3 and face["fpir"] <= 0.0101


def test_environment_reaches_verify_redact_and_cluster(tmp_path, monkeypatch):
    """POF_MAX_PIXELS (the pixel-bomb guard) applies in every command that reads photos."""
    monkeypatch.setenv("POF_MAX_PIXELS", "1000")
    r = run_pof("verify", YALE / "subject01.normal", YALE / "subject01.happy", "--json")
    assert r.returncode == 4 and "over the limit of 1,000" in json.loads(r.stdout)["error"]
    r = run_pof("redact", YALE / "subject01.normal", "--out", tmp_path / "red")
    assert r.returncode == 4 and "over the limit of 1,000" in r.stderr
    r = run_pof("cluster", YALE / "subject01.normal", "--out", tmp_path / "cl")
    assert r.returncode == 4 and "over the limit of 1,000" in r.stderr


def test_environment_reaches_eval(tmp_path, monkeypatch):
    man = tmp_path / "ident.csv"
    man.write_text("path,person,role\nsubject01.normal,s1,gallery\nsubject02.normal,s2,gallery\n"
                   "subject03.normal,s3,gallery\nsubject01.happy,s1,probe\nsubject02.glasses,s2,probe\n"
                   "subject04.normal,s4,probe\nmissing.png,s1,probe\n")
    monkeypatch.setenv("POF_FPIR", "0.05")
    r = run_pof("eval", "ident", man, "--root", YALE, "--out", tmp_path / "ei", "--json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibration"]["target_fpir"] == 0.05


def test_search_numbers_faces_in_reading_order(built, tmp_path):
    """Face 1 is the top-left face, then left to right and row by row, in the JSON list and
    the text alike, whatever order the detector found them in (test_web_pages checks that it
    finds these four out of that order)."""
    from .test_web_pages import four_face_photo, pasted_at
    photo = four_face_photo(tmp_path / "four.jpg")
    r = run_pof("search", built, photo, "--json")
    assert r.returncode == 0, r.stderr
    faces = _lines(r.stdout)[0]["faces"]
    assert [pasted_at(f["box"]) for f in faces] == [0, 1, 2, 3]
    r = run_pof("search", built, photo)
    assert r.returncode == 0, r.stderr
    told = re.findall(r"face (\d) at \((\d+), (\d+), (\d+) x (\d+)\)", r.stdout)
    assert [int(n) for n, *_ in told] == [1, 2, 3, 4]
    assert [pasted_at([float(v) for v in box]) for _, *box in told] == [0, 1, 2, 3]


def test_users_add_states_reviewers_needed_and_warns_a_small_team(built, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(built, ds)
    pw = tmp_path / "pw.txt"
    pw.write_text("a long enough password\n")
    r = run_pof("users", "add", ds, "ada", "--role", "admin", "--password-file", pw)
    assert r.returncode == 0, r.stderr
    assert "needs 2 reviewers besides the proposer" in r.stdout
    assert "warning" in r.stderr and "cannot be confirmed" in r.stderr and "--role reviewer" in r.stderr
    r = run_pof("users", "add", ds, "rita", "--role", "reviewer", "--password-file", pw)
    assert "cannot be confirmed" in r.stderr and "sets the reviewers needed to 1" in r.stderr
    r = run_pof("users", "add", ds, "rob", "--role", "reviewer", "--password-file", pw, "--token")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert "needs 2 reviewers" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("pof_")
