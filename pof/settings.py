"""Every setting pof has, declared once: name, default, help.

Values are resolved in one place, ``resolve``: the default, overridden by the environment
(``POF_<NAME>``, e.g. ``POF_DETECTOR=hog``), overridden by what a caller gives (a command-line
option, a keyword argument). The environment is read here only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pof.errors import SettingError


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("detector", "mtcnn", "face detector backend", ("mtcnn", "hog")),
    Setting("embedder", "dlib+mobilefacenet-onnx", "face descriptor backend",
            ("dlib+mobilefacenet-onnx", "dlib+mobileface-onnx", "dlib-resnet-onnx", "dlib-resnet",
             "mobileface-onnx", "mobilefacenet-onnx")),
    Setting("min_face", 20, "smallest face the detector looks for, in pixels"),
    Setting("det_threshold", 0.70, "minimum detector score for a face to be kept"),
    Setting("max_pixels", 60_000_000, "largest image accepted, in pixels (pixel-bomb guard)"),
    Setting("fpir", 0.01, "target false-positive identification rate of search decisions"),
    Setting("deblock", "on", "smooth a heavily JPEG-compressed photo (its 8 x 8 blocks visible) "
            "before its faces are described, and mirror-average its descriptors", ("on", "off")),
    Setting("min_interocular", 8.0, "eye distance in pixels under which a probe face is not searched (quality too low)"),
    Setting("max_blur", 0.9, "blur measure (0 sharp .. 1) over which a probe face is not searched (quality too low)"),
    Setting("top", 5, "number of candidates a search returns per face"),
    Setting("fusion", "auto", "how a person's gallery images make their score: template (mean descriptor), max (best image), mean2, or auto (template from 20 persons, max below)", ("auto", "template", "max", "mean2")),
    Setting("workers", 0, "worker processes (0: one per CPU core for a build; for search, verify, "
            "eval and cluster as many as the images make worth starting)"),
    Setting("device", "cpu", "where models run", ("cpu", "cuda")),
    Setting("runtime", "auto", "what runs the face detector's networks and MobileFaceNet on the "
            "CPU: openvino or onnxruntime; auto: openvino for pof serve and for jobs of 100 "
            "images or more, where installed", ("auto", "openvino", "onnxruntime")),
    Setting("threads", 0, "inference threads of each model in one process: 0 = automatic (one per "
            "core in pof serve, which analyses one photo at a time; 1 elsewhere, where pof runs "
            "one process per core)"),
    Setting("gpu_batch", 64, "photos pof build --device cuda analyses together on the GPU "
            "(more: faster up to a point, and more memory)"),
    Setting("jpeg_quality", 95, "JPEG quality of the 200 x 280 dataset crops"),
    Setting("attributes", "on", "score the schema's attributes of every face during a build", ("on", "off")),
    Setting("demographics", "on", "include perceived age group and gender among the attributes "
            "(estimates; never used for identification)", ("on", "off")),
    Setting("max_video_seconds", 60, "longest clip pof serve accepts for a search or an event, in seconds"),
    Setting("max_video_bytes", 100 * 2**20, "largest clip pof serve accepts for a search or an event, in bytes"),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def defaults() -> dict[str, Any]:
    """Return every setting's value: the default, overridden by ``POF_<NAME>`` if set."""
    return {s.name: current(s.name) for s in SETTINGS}


def resolve(given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every setting's value: default < ``POF_<NAME>`` < ``given`` (entries that are None are
    not given, as a command-line option left out). Raises SettingError for a bad value."""
    out = defaults()
    for k, v in (given or {}).items():
        if v is not None:
            out[k] = check(k, v)
    return out


def value(name: str, given: Any = None) -> Any:
    """One setting resolved: ``given`` unless None, else ``POF_<NAME>``, else the default."""
    if given is not None:
        return check(name, given)
    return current(name)


def current(name: str) -> Any:
    """Setting ``name`` from the environment, else its default (no value given)."""
    if name not in _BY_NAME:
        raise SettingError(f"unknown setting {name!r}; known: {', '.join(_BY_NAME)}")
    raw = os.environ.get(f"POF_{name.upper()}")
    if raw is None:
        return _BY_NAME[name].default
    try:
        return check(name, raw)
    except SettingError as exc:
        raise SettingError(f"POF_{name.upper()} in the environment: {exc}") from None


def get(name: str) -> Setting:
    """The declaration of setting ``name``."""
    return _BY_NAME[name]


def check(name: str, value: Any) -> Any:
    """Convert ``value`` to the type of setting ``name`` and check it; raise SettingError."""
    if name not in _BY_NAME:
        raise SettingError(f"unknown setting {name!r}; known: {', '.join(_BY_NAME)}")
    s = _BY_NAME[name]
    try:
        value = type(s.default)(value)
    except (TypeError, ValueError):
        raise SettingError(f"setting {name} must be a {type(s.default).__name__}, got {value!r}")
    if s.choices and value not in s.choices:
        raise SettingError(f"setting {name} must be one of {', '.join(s.choices)}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise SettingError(f"setting {name} must not be negative, got {value!r}")
    if name in ("gpu_batch", "top") and value < 1:
        raise SettingError(f"setting {name} must be at least 1, got {value!r}")
    if name == "fpir" and not 0 < value < 1:
        raise SettingError(f"setting fpir must be between 0 and 1 (e.g. 0.01), got {value!r}")
    return value
