"""Shared fixtures. Real images, real models, no network."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"
YALE = DATA / "yale"
DEMO = Path(__file__).parent.parent / "pof" / "data" / "demo"


def run_pof(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the pof CLI through its entry point (python -m pof)."""
    return subprocess.run([sys.executable, "-m", "pof", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="session")
def pipeline():
    from pof import Pipeline
    return Pipeline()


@pytest.fixture(scope="session")
def yale_faces(pipeline) -> list[tuple[str, np.ndarray, object]]:
    """(person, pixels, largest face) of every Yale test image."""
    from pof.stages.load import load_image
    out = []
    for f in sorted(YALE.iterdir()):
        pixels = load_image(f).pixels
        found = pipeline.analyze(pixels, with_crops=False)
        out.append((f.name.split(".")[0], pixels, max(found, key=lambda x: x.box[2] * x.box[3])))
    return out


@pytest.fixture(scope="session")
def gallery_dir(tmp_path_factory) -> Path:
    """PERSON/IMAGE folders of three Yale subjects, two images each (normal, happy)."""
    root = tmp_path_factory.mktemp("gallery")
    for s in ("01", "02", "03"):
        d = root / f"subject{s}"
        d.mkdir()
        for cond in ("normal", "happy"):
            shutil.copy(YALE / f"subject{s}.{cond}", d / f"subject{s}.{cond}")
    return root


@pytest.fixture(scope="session")
def built(tmp_path_factory, gallery_dir) -> Path:
    """A dataset built once through the CLI from gallery_dir."""
    out = tmp_path_factory.mktemp("ds") / "dataset"
    r = run_pof("build", gallery_dir, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out


def yale_rgb(name: str) -> Image.Image:
    return Image.open(YALE / name).convert("RGB")


def save_variant(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def noise_image(path: Path, size=(320, 240), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, "PNG")
    return path
