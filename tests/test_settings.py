"""Every setting is documented in the README, and bad values are refused clearly."""
from __future__ import annotations

from pathlib import Path

import pytest

from pof.errors import SettingError
from pof.settings import SETTINGS, check

README = Path(__file__).parent.parent / "README.md"


def test_every_setting_documented():
    text = README.read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"settings not in README: {missing}"


@pytest.mark.parametrize("name,value", [("detector", "yolo"), ("fpir", 2.0), ("top", "many"), ("nope", 1)])
def test_bad_values(name, value):
    with pytest.raises(SettingError):
        check(name, value)


def test_env_override(monkeypatch):
    from pof.settings import defaults
    monkeypatch.setenv("POF_DETECTOR", "hog")
    assert defaults()["detector"] == "hog"
