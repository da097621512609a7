"""Every setting is documented (docs/settings.md), and bad values are refused clearly."""
from __future__ import annotations

from pathlib import Path

import pytest

from pof.errors import SettingError
from pof.settings import SETTINGS, check

SETTINGS_PAGE = Path(__file__).parent.parent / "docs" / "settings.md"


def test_every_setting_documented():
    text = SETTINGS_PAGE.read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"settings not in docs/settings.md: {missing}"


@pytest.mark.parametrize("name,value", [("detector", "yolo"), ("fpir", 2.0), ("top", "many"), ("nope", 1)])
def test_bad_values(name, value):
    with pytest.raises(SettingError):
        check(name, value)


def test_env_override(monkeypatch):
    from pof.settings import defaults
    monkeypatch.setenv("POF_DETECTOR", "hog")
    assert defaults()["detector"] == "hog"


def test_resolve_order(monkeypatch):
    """default < environment < given; None means not given."""
    from pof.settings import resolve
    monkeypatch.setenv("POF_FPIR", "0.05")
    monkeypatch.setenv("POF_TOP", "2")
    monkeypatch.delenv("POF_DETECTOR", raising=False)
    got = resolve({"top": 3, "fpir": None, "detector": None})
    assert got["top"] == 3 and got["fpir"] == 0.05 and got["detector"] == "mtcnn"


def test_bad_environment_value_names_the_variable(monkeypatch):
    from pof.settings import resolve
    monkeypatch.setenv("POF_TOP", "many")
    with pytest.raises(SettingError, match="POF_TOP"):
        resolve()


def test_pipeline_and_searcher_take_the_resolved_settings(monkeypatch):
    import numpy as np

    from pof.pipeline import Pipeline
    from pof.matching.search import Gallery, Searcher
    monkeypatch.setenv("POF_FPIR", "0.05")
    monkeypatch.setenv("POF_MAX_BLUR", "0.5")
    monkeypatch.setenv("POF_DETECTOR", "hog")
    assert Pipeline().settings["detector"] == "hog"
    assert Pipeline(detector=None).settings["detector"] == "hog"      # None: not given
    assert Pipeline(detector="mtcnn").settings["detector"] == "mtcnn"
    rng = np.random.default_rng(0)
    desc = rng.normal(size=(6, 128)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    s = Searcher(Gallery.from_arrays(desc, [f"f{i}" for i in range(6)], ["a", "a", "b", "b", "c", "c"]))
    assert s.target_fpir == 0.05 and s.max_blur == 0.5
    assert Searcher(s.gallery, target_fpir=0.02).target_fpir == 0.02


def test_help_shows_the_default_in_effect(monkeypatch):
    from .conftest import run_pof
    monkeypatch.setenv("POF_TOP", "7")
    r = run_pof("search", "--help")
    assert r.returncode == 0
    assert "[default: 7; from POF_TOP]" in " ".join(r.stdout.split())
    assert "[default: 0.01; or set POF_FPIR]" in " ".join(r.stdout.split())


def test_a_given_value_is_not_read_from_the_environment(monkeypatch):
    """An option given overrides the environment even where the environment's value is bad."""
    from pof.pipeline import Pipeline
    from pof.settings import resolve, value
    monkeypatch.setenv("POF_TOP", "many")
    monkeypatch.setenv("POF_DETECTOR", "yolo")
    got = resolve({"top": 3, "detector": "hog"})
    assert got["top"] == 3 and got["detector"] == "hog" and list(got) == [s.name for s in SETTINGS]
    assert value("top", 4) == 4
    assert Pipeline(detector="mtcnn", top=2).settings["detector"] == "mtcnn"
    with pytest.raises(SettingError, match="POF_TOP"):
        resolve({"detector": "hog"})


def test_the_command_line_beats_the_environment_everywhere_in_the_process(monkeypatch):
    """What a command's options give (pof.settings.command_line) is what every part of the
    command resolves: value, resolve, a Pipeline made deep inside; a caller's argument still
    beats it, and the environment is back once the block ends."""
    from pof.pipeline import Pipeline
    from pof.settings import command_line, resolve, value
    monkeypatch.setenv("POF_TOP", "7")
    monkeypatch.setenv("POF_DETECTOR", "yolo")
    with command_line(top=3, detector="hog", fpir=None):
        assert value("top") == 3 and resolve()["top"] == 3 and value("top", 4) == 4
        assert Pipeline().settings["detector"] == "hog" and value("fpir") == 0.01
        with command_line(top=2):
            assert value("top") == 2 and value("detector") == "hog"
        assert value("top") == 3
    assert value("top") == 7
    with pytest.raises(SettingError, match="POF_DETECTOR"):
        value("detector")
    with pytest.raises(SettingError, match="must be at least 1"), command_line(top=0):
        pass


@pytest.mark.parametrize("name,bad,good", [("top", 101, 100), ("top", 0, 1), ("workers", 65, 64),
                                           ("fpir", 1.0, 0.99), ("gpu_batch", 0, 1), ("min_face", -1, 0)])
def test_ranges_are_declared_once(monkeypatch, name, bad, good):
    """A setting's range is its declaration's: refused alike from the environment, a caller and
    the command line (whose option types are made from the same declaration)."""
    from pof.cli.common import setting_type
    from pof.settings import get, value
    import click
    with pytest.raises(SettingError, match=f"setting {name} must"):
        check(name, bad)
    monkeypatch.setenv(get(name).env, str(bad))
    with pytest.raises(SettingError, match=get(name).env):
        value(name)
    assert check(name, good) == good
    with pytest.raises(click.BadParameter):
        setting_type(name).convert(bad, None, None)
    assert setting_type(name).convert(good, None, None) == good
