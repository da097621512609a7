"""``pof redact``: obscure every face pof finds in a photo, until pof itself finds none.

Faces are found with the same detector as a search (with its contrast-equalised second look),
and each face's box, widened by ``margin`` on every side (hair, ears, chin), is replaced. A
face can be kept (an officer, by its index in the listing) with ``keep``. The output carries no
metadata from the input (no EXIF, no GPS).

The result is then checked: a second detector with lower cut-offs than a search uses
(``CHECK_THRESHOLDS``) looks for faces in it, and each redacted face is described again at its
original landmarks and compared with its own descriptor before redaction (a match at
``CHECK_FMR`` means the recogniser could still tell who it is). A face the check still finds is
escalated one step on ``LADDER`` (coarser blocks, then a wider margin, then a solid fill) and
the photo is redacted again from the original, until the check passes or a face has reached
the solid fill; a face seen only by the check is added and redacted too. Each face reports the
step it took.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pof.pipeline import Pipeline
from pof.runtime.files import atomic_bytes

CHECK_THRESHOLDS = (0.5, 0.5, 0.5)   # MTCNN stage cut-offs of the check (a search: 0.5, 0.6, 0.7)
CHECK_FMR = 0.01                     # recogniser: a redacted face matching itself at this rate fails
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Step:
    """How hard one face is obscured: ``coarser`` multiplies the strength, ``margin`` is at
    least this, ``fill`` replaces the region with one flat colour."""

    coarser: float = 1.0
    margin: float = 0.0
    fill: bool = False


# the escalation, mildest first; step 0 is the user's --method/--strength/--margin as given
LADDER = (Step(), Step(2.0), Step(4.0), Step(4.0, 0.5), Step(4.0, 0.8), Step(fill=True, margin=0.8))


def describe_step(level: int, method: str, strength: float, margin: float) -> str:
    """A step of ``LADDER`` in words, e.g. "pixelate x4, margin 0.5"."""
    s = LADDER[level]
    m = max(margin, s.margin)
    if s.fill:
        return f"solid fill, margin {m:g}"
    return f"{method} x{strength * s.coarser:g}, margin {m:g}"


@dataclass
class Redaction:
    """What was done to one image (or one video, ``pof.video.redact``)."""

    source: str
    output: str | None = None
    faces: list[tuple[float, float, float, float]] = field(default_factory=list)   # boxes (x, y, w, h)
    kept: list[int] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)   # per face: what it took (LADDER, in words)
    added: int = 0                # faces found only by the check, then redacted (last in faces)
    still_found: int = 0          # faces the check still finds after the last step
    rounds: int = 0               # redactions written before the check passed
    error: str | None = None
    note: str = ""                # e.g. the video container and codec written


def region(box: tuple[float, float, float, float], margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pixel rectangle (x0, y0, x1, y1) of a box widened by ``margin`` x its size, clipped."""
    x, y, w, h = box
    x0, y0 = int(np.floor(x - margin * w)), int(np.floor(y - margin * h))
    x1, y1 = int(np.ceil(x + w * (1 + margin))), int(np.ceil(y + h * (1 + margin)))
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def obscure(pixels: np.ndarray, rect: tuple[int, int, int, int], method: str, strength: float) -> None:
    """Replace ``rect`` of ``pixels`` in place. strength 1 = default; higher is coarser.
    pixelate: about 6 / strength blocks across the face (2 at least); blur: a Gaussian of
    sigma = face width x 0.15 x strength, applied twice; fill: the region's mean colour."""
    x0, y0, x1, y1 = rect
    patch = pixels[y0:y1, x0:x1]
    if patch.size == 0:
        return
    h, w = patch.shape[:2]
    if method == "fill":
        pixels[y0:y1, x0:x1] = patch.reshape(-1, patch.shape[2]).mean(axis=0).astype(pixels.dtype)
    elif method == "pixelate":
        blocks = max(2, int(round(6 / max(strength, 1e-3))))
        small = cv2.resize(patch, (max(1, blocks), max(1, int(round(blocks * h / w)))), interpolation=cv2.INTER_AREA)
        pixels[y0:y1, x0:x1] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:
        sigma = max(2.0, 0.15 * w * strength)
        out = cv2.GaussianBlur(patch, (0, 0), sigma)
        pixels[y0:y1, x0:x1] = cv2.GaussianBlur(out, (0, 0), sigma)


def obscure_box(pixels: np.ndarray, box, level: int, method: str, strength: float, margin: float) -> None:
    """Obscure one face box in place at escalation ``level`` of ``LADDER``."""
    s = LADDER[min(level, len(LADDER) - 1)]
    rect = region(box, max(margin, s.margin), pixels.shape)
    obscure(pixels, rect, "fill" if s.fill else method, strength * s.coarser)


class Checker:
    """Looks for faces the way a redaction must survive: pof's detector with lower cut-offs
    (and its contrast-equalised second look), and the recogniser at each redacted face."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._detector = None
        self._threshold = None

    @property
    def detector(self):
        if self._detector is None:
            from pof.stages import detect
            from pof.runtime.device import onnx_providers
            s = self.pipeline.settings
            opts = {"min_face_size": s["min_face"]}
            if s["detector"] == "mtcnn":
                opts.update(providers=onnx_providers(s["device"]), runtime=s["runtime"],
                            threads=self.pipeline.threads, thresholds=CHECK_THRESHOLDS)
            self._detector = detect.create(s["detector"], **opts)
        return self._detector

    def faces(self, pixels: np.ndarray, equalise: bool = True) -> list[tuple]:
        """Boxes of every face the check's detector finds (also on an equalised copy)."""
        boxes = [tuple(float(v) for v in d.box) for d in self.detector.detect(pixels)]
        if equalise:
            gray = cv2.equalizeHist(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY))
            eq = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
            boxes += [tuple(float(v) for v in d.box) for d in self.detector.detect(eq)]
        return boxes

    def recognised(self, original: list, pixels: np.ndarray) -> list[bool]:
        """For each face of ``original`` (analysed, with descriptors): whether its descriptor
        taken again at the same landmarks on ``pixels`` still matches it at ``CHECK_FMR``."""
        import copy
        usable = [f for f in original if f.descriptor is not None]
        if not usable:
            return [False] * len(original)
        if self._threshold is None:
            from pof.matching.calibrate import embedder_of
            from pof.matching.verify import Verifier
            self._threshold = Verifier(CHECK_FMR, embedder_of(usable[0].descriptor)).threshold
        again = [copy.copy(f) for f in usable]
        for f in again:
            f.descriptor = None
        self.pipeline.embedder.embed(pixels, again)
        same = {id(f): float(np.dot(f.descriptor, g.descriptor)) >= self._threshold
                for f, g in zip(usable, again)}
        return [same.get(id(f), False) for f in original]


def overlaps(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def centre_inside(a, rect) -> bool:
    """Whether box ``a``'s centre lies in pixel rectangle ``rect``."""
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return rect[0] <= cx <= rect[2] and rect[1] <= cy <= rect[3]


def redact_pixels(pipeline: Pipeline, pixels: np.ndarray, method: str = "pixelate",
                  strength: float = 1.0, margin: float = 0.25, keep: tuple[int, ...] = (),
                  check: bool = True, checker: Checker | None = None,
                  as_saved=None) -> tuple[np.ndarray, Redaction]:
    """(redacted copy, its Redaction) for an RGB image. With ``check``, faces are escalated
    (``LADDER``) until the check finds none, or a face it finds is already at a solid fill.
    ``as_saved(pixels)``: the pixels as the file written will hold them (JPEG changes them,
    and a face can come back in its artefacts); the check looks at those."""
    rec = Redaction("")
    faces = pipeline.analyze(pixels, with_crops=False) if check else pipeline.detect(pixels)[0]
    rec.faces = [tuple(float(v) for v in f.box) for f in faces]
    rec.kept = [i for i in keep if i < len(faces)]
    levels = [0] * len(rec.faces)

    def render() -> np.ndarray:
        out = pixels.copy()
        for i, box in enumerate(rec.faces):
            if i not in rec.kept:
                obscure_box(out, box, levels[i], method, strength, margin)
        return out

    out = render()
    rec.rounds = 1
    if check:
        checker = checker or Checker(pipeline)
        kept_boxes = [rec.faces[i] for i in rec.kept]
        while True:
            seen = as_saved(out) if as_saved else out
            found = [b for b in checker.faces(seen) if not any(overlaps(b, k) for k in kept_boxes)]
            named = checker.recognised(faces, seen) + [False] * (len(rec.faces) - len(faces))
            # a solid fill holds nothing of the face: the recogniser's view of it is noise
            bump: set[int] = {i for i, hit in enumerate(named) if hit and i not in rec.kept
                              and not LADDER[levels[i]].fill}
            new = []
            for b in found:
                hits = [i for i, box in enumerate(rec.faces) if i not in rec.kept and (
                    centre_inside(b, region(box, max(margin, LADDER[levels[i]].margin), out.shape))
                    or overlaps(b, box))]
                if hits:
                    bump.update(hits)
                elif not any(overlaps(b, n) for n in new):
                    new.append(b)
            stuck = [i for i in bump if levels[i] >= len(LADDER) - 1]
            if (not bump and not new) or rec.rounds >= MAX_ROUNDS or (stuck and not new and len(stuck) == len(bump)):
                rec.still_found = len(bump) + len(new)
                break
            for i in bump:
                levels[i] = min(levels[i] + 1, len(LADDER) - 1)
            for b in new:
                rec.faces.append(b)
                levels.append(0)
                rec.added += 1
            out = render()
            rec.rounds += 1
    rec.steps = ["kept" if i in rec.kept else describe_step(levels[i], method, strength, margin)
                 for i in range(len(rec.faces))]
    return out, rec


def output_path(out_dir: Path, source: Path, taken: set[str], ext: str | None = None) -> Path:
    """``out_dir/<name>.redacted.<jpg|png>`` (or ``ext``), numbered if the name is taken."""
    ext = ext or (".jpg" if source.suffix.lower() in (".jpg", ".jpeg") else ".png")
    stem, n = source.stem, 1
    name = f"{stem}.redacted{ext}"
    while name in taken:
        n += 1
        name = f"{stem}-{n}.redacted{ext}"
    taken.add(name)
    return out_dir / name


def redact_file(pipeline: Pipeline, source: Path, dest: Path, method: str, strength: float,
                margin: float, keep: tuple[int, ...], check: bool,
                checker: Checker | None = None) -> Redaction:
    """Redact one photo into ``dest`` (written atomically). Errors are returned, not raised."""
    from pof.errors import PofError
    try:
        pixels = pipeline.load(source).pixels
        fmt = "JPEG" if dest.suffix == ".jpg" else "PNG"
        as_saved = (lambda px: np.asarray(Image.open(io.BytesIO(encode(px, fmt))).convert("RGB"))
                    ) if fmt == "JPEG" else None
        out, rec = redact_pixels(pipeline, pixels, method, strength, margin, keep, check, checker,
                                 as_saved)
    except PofError as exc:
        return Redaction(str(source), error=str(exc))
    rec.source = str(source)
    atomic_bytes(dest, encode(out, fmt))
    rec.output = str(dest)
    return rec


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """The file's bytes: JPEG at quality 92, or PNG; no metadata."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, quality=92)
    return buf.getvalue()
