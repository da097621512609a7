"""Every setting pof has, declared once: name, default, help, and the values it may take
(choices, or a range for a number).

Values are resolved in one place, ``resolve`` (or ``value`` for one setting): the default,
overridden by the environment (``POF_<NAME>``, e.g. ``POF_DETECTOR=hog``), overridden by the
command line (``command_line``: the options of the command running), overridden by what a caller
gives (a keyword argument). The environment is read here only; the command line's options are
made from these declarations (``pof.cli.common``), and the pipeline, the searcher, the GPU
engine, the image loader and the web app take their defaults from here.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pof.errors import SettingError


@dataclass(frozen=True)
class Setting:
    """One setting. A number lies in [``low``, ``high``] (``high`` None: no upper bound), or
    strictly between them where ``open`` is set; a text setting with ``choices`` is one of them."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    low: float = 0
    high: float | None = None
    open: bool = False

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return f"POF_{self.name.upper()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("detector", "mtcnn", "face detector backend", ("mtcnn", "hog")),
    Setting("embedder", "dlib+mobilefacenet-onnx", "face descriptor backend",
            ("dlib+mobilefacenet-onnx", "dlib+mobileface-onnx", "dlib-resnet-onnx", "dlib-resnet",
             "mobileface-onnx", "mobilefacenet-onnx")),
    Setting("min_face", 20, "smallest face the detector looks for, in pixels"),
    Setting("det_threshold", 0.70, "minimum detector score for a face to be kept"),
    Setting("max_pixels", 60_000_000, "largest image accepted, in pixels (pixel-bomb guard)"),
    Setting("fpir", 0.01, "target false-positive identification rate of search decisions",
            low=0, high=1, open=True),
    Setting("deblock", "on", "smooth a heavily JPEG-compressed photo (its 8 x 8 blocks visible) "
            "before its faces are described, and mirror-average its descriptors", ("on", "off")),
    Setting("min_interocular", 8.0, "eye distance in pixels under which a probe face is not searched (quality too low)"),
    Setting("max_blur", 0.9, "blur measure (0 sharp .. 1) over which a probe face is not searched (quality too low)"),
    Setting("top", 5, "number of candidates a search returns per face", low=1, high=100),
    Setting("fusion", "auto", "how a person's gallery images make their score: template (mean descriptor), max (best image), mean2, or auto (template from 20 persons, max below)", ("auto", "template", "max", "mean2")),
    Setting("workers", 0, "worker processes (0: one per CPU core for a build; for search, verify, "
            "eval and cluster as many as the images make worth starting)", high=64),
    Setting("device", "cpu", "where models run", ("cpu", "cuda")),
    Setting("runtime", "auto", "what runs the face detector's networks and MobileFaceNet on the "
            "CPU: openvino or onnxruntime; auto: openvino for pof serve and for jobs of 100 "
            "images or more, where installed", ("auto", "openvino", "onnxruntime")),
    Setting("threads", 0, "inference threads of each model in one process: 0 = automatic (one per "
            "core in pof serve, which analyses one photo at a time; 1 elsewhere, where pof runs "
            "one process per core)"),
    Setting("gpu_batch", 64, "photos pof build --device cuda analyses together on the GPU "
            "(more: faster up to a point, and more memory)", low=1),
    Setting("jpeg_quality", 95, "JPEG quality of the 200 x 280 dataset crops"),
    Setting("attributes", "on", "score the schema's attributes of every face during a build", ("on", "off")),
    Setting("demographics", "on", "include perceived age group and gender among the attributes "
            "(estimates; never used for identification)", ("on", "off")),
    Setting("max_video_seconds", 60, "longest clip pof serve accepts for a search or an event, in seconds", low=1),
    Setting("max_video_bytes", 100 * 2**20, "largest clip pof serve accepts for a search or an event, in bytes", low=1),
)

_BY_NAME = {s.name: s for s in SETTINGS}


# settings given on the command line to the command now running (``command_line``): they
# beat the environment in every resolution of this process, so that what the command does not
# make itself (a pipeline inside pof.matching.cluster, the GPU engine) takes them too
_COMMAND_LINE: dict[str, Any] = {}


def defaults() -> dict[str, Any]:
    """Every setting's value where a caller gives none: the command line's, else
    ``POF_<NAME>``, else the default."""
    return {s.name: current(s.name) for s in SETTINGS}


def resolve(given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every setting's value: default < ``POF_<NAME>`` < the command line < ``given`` (entries
    that are None are not given, as a command-line option left out). A setting given is not
    read from the environment (a bad ``POF_<NAME>`` it overrides is not an error). Raises
    SettingError for a bad value."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    out = {k: check(k, v) for k, v in given.items()}
    out.update({s.name: current(s.name) for s in SETTINGS if s.name not in out})
    return {s.name: out[s.name] for s in SETTINGS}


def value(name: str, given: Any = None) -> Any:
    """One setting resolved: ``given`` unless None, else the command line's, else
    ``POF_<NAME>``, else the default."""
    if given is not None:
        return check(name, given)
    return current(name)


def current(name: str) -> Any:
    """Setting ``name`` where no value is given: from the command line, else the environment,
    else its default."""
    if name not in _BY_NAME:
        raise SettingError(f"unknown setting {name!r}; known: {', '.join(_BY_NAME)}")
    if name in _COMMAND_LINE:
        return _COMMAND_LINE[name]
    s = _BY_NAME[name]
    raw = os.environ.get(s.env)
    if raw is None:
        return s.default
    try:
        return check(name, raw)
    except SettingError as exc:
        raise SettingError(f"{s.env} in the environment: {exc}") from None


@contextmanager
def command_line(**given: Any) -> Iterator[None]:
    """Within the block, the settings ``given`` (None: not given) beat the environment in every
    resolution of this process: what the command line gave its command (pof.cli.common)."""
    checked = {k: check(k, v) for k, v in given.items() if v is not None}
    before = dict(_COMMAND_LINE)
    _COMMAND_LINE.update(checked)
    try:
        yield
    finally:
        _COMMAND_LINE.clear()
        _COMMAND_LINE.update(before)


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
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    if s.open and not s.low < value < s.high:
        raise SettingError(f"setting {name} must be between {s.low:g} and {s.high:g} "
                           f"(e.g. {s.default:g}), got {value!r}")
    if value < s.low:
        raise SettingError(f"setting {name} must not be negative, got {value!r}" if s.low == 0
                           else f"setting {name} must be at least {s.low:g}, got {value!r}")
    if s.high is not None and value > s.high:
        raise SettingError(f"setting {name} must be at most {s.high:g}, got {value!r}")
    return value
