"""Every command takes pof's settings the same way: default < environment (POF_<NAME>) <
command line. For each command, a setting set in the environment reaches it, and where the
command has an option for that setting, the option beats the environment (a bad value in the
environment included: an option given is not read from there). Commands that use no setting
are shown to run whatever the environment holds."""
from __future__ import annotations

import json
import shutil

import click
import pytest

from pof.cli import main
from pof.cli.common import SettingOption, setting_type
from pof.settings import SETTINGS, check
from pof.errors import SettingError

from .conftest import DEMO, YALE, run_pof

OBAMA = DEMO / "probes" / "obama_joint_session_2009.jpg"

# each command, and the test of it in this module
COVERED = {
    "build": "test_build", "search": "test_search", "verify": "test_verify",
    "cluster": "test_cluster", "eval pairs": "test_eval_pairs", "eval ident": "test_eval_ident",
    "redact": "test_redact", "report": "test_report", "demo": "test_demo", "serve": "test_serve",
    **{f"{group} {c}": "test_commands_without_settings" for group, cs in
       (("users", ("add", "tokens", "list", "disable")), ("audit", ("verify", "head", "show")))
       for c in cs},
    "fsck": "test_commands_without_settings",
}


def _commands(group: click.Group = main, prefix: str = ""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _env_error(r, name: str) -> None:
    """The run stopped at once with the environment's bad value named, on one line."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"pof: POF_{name.upper()} in the environment: setting {name} must" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The bundled demo dataset (two persons), built once for the module."""
    out = tmp_path_factory.mktemp("demo") / "dataset"
    r = run_pof("build", DEMO / "manifest.csv", "--out", out, "--quiet", "--workers", "1")
    assert r.returncode == 0, r.stderr
    return out


def test_the_entry_points_are_the_group():
    """``pof`` (pyproject's console script) and ``python -m pof`` both run pof.cli.main."""
    import tomllib
    from pathlib import Path
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["pof"] == "pof.cli:main"
    assert isinstance(main, click.Group) and main.name == "main"
    r = run_pof("--help")
    assert r.returncode == 0 and all(f"  {name.split()[0]} " in r.stdout for name in COVERED)


def test_every_command_is_covered():
    assert sorted(name for name, _ in _commands()) == sorted(COVERED)
    assert all(test in globals() for test in COVERED.values())


def test_setting_options_are_made_from_the_declarations():
    """An option named after a setting is made by the helper: no default of its own, the
    declaration's help, and the declaration's values (click and pof.settings refuse alike)."""
    names = {s.name for s in SETTINGS}
    seen = set()
    for command, cmd in _commands():
        for p in cmd.params:
            if p.name not in names:
                continue
            assert isinstance(p, SettingOption) and p.setting == p.name, (command, p.name)
            assert p.default is None and p.help
            assert repr(p.type) == repr(setting_type(p.name) or click.STRING), (command, p.name)
            seen.add(p.name)
    assert seen == {"workers", "device", "detector", "top", "fpir"}
    for s in SETTINGS:
        kind = setting_type(s.name)
        if isinstance(kind, (click.IntRange, click.FloatRange)):
            for v in (s.low - 1, s.low, s.low + 0.5, *(() if s.high is None else (s.high, s.high + 1))):
                v = type(s.default)(v)
                try:
                    kind.convert(v, None, None)
                    click_ok = True
                except click.BadParameter:
                    click_ok = False
                try:
                    check(s.name, v)
                    ok = True
                except SettingError:
                    ok = False
                assert click_ok == ok, (s.name, v)


def test_build(tmp_path, monkeypatch):
    src = tmp_path / "src" / "subject01"
    src.mkdir(parents=True)
    shutil.copy(YALE / "subject01.normal", src / "a.gif")
    monkeypatch.setenv("POF_DETECTOR", "bogus")
    _env_error(run_pof("build", src.parent, "--out", tmp_path / "bad", "--quiet"), "detector")
    r = run_pof("build", src.parent, "--out", tmp_path / "cli", "--quiet", "--workers", "1",
                "--detector", "mtcnn")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "cli" / "pof.json").read_text())["settings"]["detector"] == "mtcnn"
    monkeypatch.setenv("POF_DETECTOR", "hog")
    r = run_pof("build", src.parent, "--out", tmp_path / "env", "--quiet", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "env" / "pof.json").read_text())["settings"]["detector"] == "hog"


def test_search(demo, monkeypatch):
    monkeypatch.setenv("POF_TOP", "1")
    monkeypatch.setenv("POF_FPIR", "0.2")
    face = _lines(run_pof("search", demo, OBAMA, "--json").stdout)[0]["faces"][0]
    assert len(face["candidates"]) == 1 and face["fpir"] > 0.05
    r = run_pof("search", demo, OBAMA, "--json", "--top", "2", "--fpir", "0.01")
    face = _lines(r.stdout)[0]["faces"][0]
    assert len(face["candidates"]) == 2 and face["fpir"] <= 0.0101
    monkeypatch.setenv("POF_TOP", "many")
    _env_error(run_pof("search", demo, OBAMA, "--json"), "top")
    r = run_pof("search", demo, OBAMA, "--json", "--top", "2")
    assert r.returncode == 0, r.stderr
    assert len(_lines(r.stdout)[0]["faces"][0]["candidates"]) == 2


def test_verify(monkeypatch):
    monkeypatch.setenv("POF_WORKERS", "-1")
    pair = (YALE / "subject01.normal", YALE / "subject01.happy")
    _env_error(run_pof("verify", *pair, "--json"), "workers")
    r = run_pof("verify", *pair, "--json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["same"] is True


def test_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("POF_WORKERS", "-1")
    photos = (YALE / "subject01.normal", YALE / "subject01.happy")
    _env_error(run_pof("cluster", *photos, "--out", tmp_path / "a", "--json"), "workers")
    r = run_pof("cluster", *photos, "--out", tmp_path / "b", "--json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["groups"] == 1


def test_eval_pairs(tmp_path, monkeypatch):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_x,file_y,Decision\nsubject01.normal,subject01.happy,Yes\n"
                     "subject01.normal,subject02.normal,No\n")
    monkeypatch.setenv("POF_WORKERS", "-1")
    _env_error(run_pof("eval", "pairs", pairs, "--root", YALE, "--out", tmp_path / "a", "--json"), "workers")
    r = run_pof("eval", "pairs", pairs, "--root", YALE, "--out", tmp_path / "b", "--json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["groups"]["all"]["pairs"] == 2


def test_eval_ident(tmp_path, monkeypatch):
    man = tmp_path / "ident.csv"
    man.write_text("path,person,role\nsubject01.normal,s1,gallery\nsubject02.normal,s2,gallery\n"
                   "subject03.normal,s3,gallery\nsubject01.happy,s1,probe\nsubject04.normal,s4,probe\n")
    args = ("eval", "ident", man, "--root", YALE, "--json", "--workers", "1")
    monkeypatch.setenv("POF_FPIR", "0.05")
    r = run_pof(*args, "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibration"]["target_fpir"] == 0.05
    r = run_pof(*args, "--out", tmp_path / "b", "--fpir", "0.02")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibration"]["target_fpir"] == 0.02


def _setting_options(command: str) -> list[str]:
    return [p.name for name, cmd in _commands() if name == command
            for p in cmd.params if isinstance(p, SettingOption)]


def test_redact(tmp_path, monkeypatch):
    """pof redact has no setting option; the pixel-bomb guard comes from the environment."""
    assert _setting_options("redact") == []
    monkeypatch.setenv("POF_MAX_PIXELS", "1000")
    r = run_pof("redact", YALE / "subject01.normal", "--out", tmp_path / "red")
    assert r.returncode == 4 and "over the limit of 1,000" in r.stderr


def test_report(demo, tmp_path, monkeypatch):
    """pof report has no setting option; the detector that checks its contact sheets comes
    from the environment."""
    assert _setting_options("report") == []
    monkeypatch.setenv("POF_DETECTOR", "bogus")
    _env_error(run_pof("report", demo, "--out", tmp_path / "rep", "--quiet"), "detector")


def test_demo(tmp_path, monkeypatch):
    assert _setting_options("demo") == []
    monkeypatch.setenv("POF_DETECTOR", "bogus")
    _env_error(run_pof("demo", "--out", tmp_path / "d"), "detector")


def test_serve(demo, monkeypatch):
    """pof serve has no setting option: the web app takes max_pixels and top from the
    environment (a bad value stops pof serve before it listens); a value in the app's own
    config beats it."""
    assert _setting_options("serve") == []
    monkeypatch.setenv("POF_MAX_PIXELS", "many")
    _env_error(run_pof("serve", demo, "--port", "1"), "max_pixels")
    from pof.web.app import create_app
    from pof.web.state import WebConfig
    monkeypatch.setenv("POF_MAX_PIXELS", "1234")
    monkeypatch.setenv("POF_TOP", "3")
    for config, pixels, top in ((None, 1234, 3), (WebConfig(max_pixels=5000, top=2), 5000, 2)):
        web = create_app(demo, config).state.web
        assert web.max_pixels == pixels and web.config.candidates() == top
        web.pool.shutdown()


def test_commands_without_settings(demo, tmp_path, monkeypatch):
    """Accounts, the audit log and fsck use no setting: they have no setting option, and they
    run whatever the environment holds."""
    for command in ("users add", "users tokens", "users list", "users disable", "audit verify",
                    "audit head", "audit show", "fsck"):
        assert _setting_options(command) == [], command
    monkeypatch.setenv("POF_TOP", "many")
    monkeypatch.setenv("POF_DETECTOR", "bogus")
    password = tmp_path / "pw"
    password.write_text("a long enough password 1\n")
    runs = [("users", "add", demo, "ana", "--role", "viewer", "--password-file", password),
            ("users", "tokens", demo), ("users", "list", demo), ("users", "disable", demo, "ana"),
            ("audit", "verify", demo), ("audit", "head", demo), ("audit", "show", demo), ("fsck", demo)]
    for args in runs:
        r = run_pof(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
