"""``pof redact``: blur or pixelate every face pof finds in a photo.

Faces are found with the same detector as a search (with its contrast-equalised second look),
and each face's box, widened by ``margin`` on every side (hair, ears, chin), is replaced. A
face can be kept (an officer, by its index in the listing) with ``keep``. The output carries no
metadata from the input (no EXIF, no GPS). ``check`` runs the detector again on the result and
reports any face it still finds, so a photo is never shown as redacted when it is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .pipeline import Pipeline

METHODS = ("pixelate", "blur")


@dataclass
class Redaction:
    """What was done to one image."""

    source: str
    output: str | None = None
    faces: list[tuple[float, float, float, float]] = field(default_factory=list)   # boxes (x, y, w, h)
    kept: list[int] = field(default_factory=list)
    still_found: int = 0          # faces the detector still finds after redaction (check)
    error: str | None = None


def region(box: tuple[float, float, float, float], margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pixel rectangle (x0, y0, x1, y1) of a box widened by ``margin`` x its size, clipped."""
    x, y, w, h = box
    x0, y0 = int(np.floor(x - margin * w)), int(np.floor(y - margin * h))
    x1, y1 = int(np.ceil(x + w * (1 + margin))), int(np.ceil(y + h * (1 + margin)))
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def obscure(pixels: np.ndarray, rect: tuple[int, int, int, int], method: str, strength: float) -> None:
    """Replace ``rect`` of ``pixels`` in place. strength 1 = default; higher is coarser.
    pixelate: about 6 / strength blocks across the face; blur: a Gaussian of sigma = face
    width x 0.15 x strength, applied twice."""
    x0, y0, x1, y1 = rect
    patch = pixels[y0:y1, x0:x1]
    if patch.size == 0:
        return
    h, w = patch.shape[:2]
    if method == "pixelate":
        blocks = max(2, int(round(6 / max(strength, 1e-3))))
        small = cv2.resize(patch, (max(1, blocks), max(1, int(round(blocks * h / w)))), interpolation=cv2.INTER_AREA)
        pixels[y0:y1, x0:x1] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:
        sigma = max(2.0, 0.15 * w * strength)
        out = cv2.GaussianBlur(patch, (0, 0), sigma)
        pixels[y0:y1, x0:x1] = cv2.GaussianBlur(out, (0, 0), sigma)


def redact_pixels(pipeline: Pipeline, pixels: np.ndarray, method: str = "pixelate",
                  strength: float = 1.0, margin: float = 0.25,
                  keep: tuple[int, ...] = ()) -> tuple[np.ndarray, list, list[int]]:
    """(redacted copy, face boxes found, indices kept) for an RGB image."""
    dets, _ = pipeline.detect(pixels)
    out = pixels.copy()
    boxes = [d.box for d in dets]
    for i, box in enumerate(boxes):
        if i not in keep:
            obscure(out, region(box, margin, out.shape), method, strength)
    return out, boxes, [i for i in keep if i < len(boxes)]


def output_path(out_dir: Path, source: Path, taken: set[str]) -> Path:
    """``out_dir/<name>.redacted.<jpg|png>``, numbered if the name is already taken."""
    ext = ".jpg" if source.suffix.lower() in (".jpg", ".jpeg") else ".png"
    stem, n = source.stem, 1
    name = f"{stem}.redacted{ext}"
    while name in taken:
        n += 1
        name = f"{stem}-{n}.redacted{ext}"
    taken.add(name)
    return out_dir / name


def redact_file(pipeline: Pipeline, source: Path, dest: Path, method: str, strength: float,
                margin: float, keep: tuple[int, ...], check: bool) -> Redaction:
    """Redact one file into ``dest`` (written atomically). Errors are returned, not raised."""
    from .errors import PofError
    rec = Redaction(str(source))
    try:
        pixels = pipeline.load(source).pixels
    except PofError as exc:
        rec.error = str(exc)
        return rec
    out, rec.faces, rec.kept = redact_pixels(pipeline, pixels, method, strength, margin, keep)
    if check:
        again, _ = pipeline.detect(out)
        kept_boxes = [rec.faces[i] for i in rec.kept]
        rec.still_found = sum(1 for d in again if not any(_overlaps(d.box, k) for k in kept_boxes))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    Image.fromarray(out).save(tmp, "JPEG" if dest.suffix == ".jpg" else "PNG", quality=92)
    tmp.replace(dest)
    rec.output = str(dest)
    return rec


def _overlaps(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah
