"""``pof build``: enrol images from folders and manifests into a dataset, resumably.

Each source image is read, hashed (SHA-256), skipped if the catalog has it already, analysed
(in worker processes when workers > 1, which also JPEG-encode the crops), and committed with
its faces in one transaction; the crops are written first, atomically. A killed build resumes
where it stopped when run again. At the end the whole layout of docs/dataset.md is (re)written by
``pof.dataset.export``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from pof.dataset.catalog import CATALOG_NAME, Catalog
from pof.dataset.handle import Dataset
from pof.errors import DatasetError, PofError
from pof.stages.load import decode_image, read_bytes
from pof.runtime.parallel import pipeline_map
from pof.pipeline import Pipeline, job_runtime
from pof.record import Face
from pof.dataset.sources import Item, collect, fetch_url
from pof.runtime.files import atomic_bytes

AMBIGUOUS_AREA = 0.6   # a second face this large (vs the largest) makes a named photo ambiguous
# ... and so does one at least this large that sits nearer the photo's centre than the largest:
# news photos are framed on the person they name, so a larger face off to the side is likely
# someone else's (LFW: see BENCHMARKS.md, "Detection", and CHANGELOG.md, 0.1.0)
OFF_CENTRE_AREA = 0.25
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def face_id(sha256: str, index: int) -> str:
    """8-character [a-z0-9] id, deterministic from the source's SHA-256 and the face index."""
    n = int(hashlib.sha256(f"{sha256}:{index}".encode()).hexdigest(), 16)
    out = []
    for _ in range(8):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(out)


@dataclass
class Outcome:
    """What happened to one source."""

    location: str
    status: str                    # added, noface, duplicate, error
    reason: str = ""
    faces: list[Face] = field(default_factory=list)   # their crops encoded in ``jpegs``
    jpegs: list[bytes] = field(default_factory=list)  # one JPEG crop per face
    sha256: str = ""
    size: tuple[int, int] = (0, 0)
    fmt: str = ""


@dataclass
class BuildReport:
    added_images: int = 0
    added_faces: int = 0
    counts: Counter = field(default_factory=Counter)
    problems: list[tuple[str, str, str]] = field(default_factory=list)   # location, status, reason

    @property
    def failed(self) -> int:
        """Sources not enrolled: errors, and skipped files."""
        return sum(n for k, n in self.counts.items() if k == "error" or k.startswith("skipped"))

    @property
    def done(self) -> int:
        """Sources dealt with: added, already there, faceless (recorded) or duplicates."""
        return sum(self.counts.values()) - self.failed


def _analyze(pipeline: Pipeline, item: Item, data: bytes, sha: str) -> Outcome:
    picked: list[tuple[list[Face], str, str]] = []

    def named_face(faces: list[Face]) -> list[Face]:
        # the choice needs the boxes only: landmarks, descriptors and attributes are then
        # computed for the enrolled face alone, not for bystanders (1.29 faces a LFW photo)
        if not faces:
            return faces
        picked.append(_pick_named_face(faces, *img.size))
        return picked[-1][0]

    try:
        img = decode_image(data, item.location, pipeline.settings["max_pixels"])
        faces = pipeline.analyze(img.pixels, select=named_face if item.person is not None else None)
    except PofError as exc:
        return Outcome(item.location, "error", str(exc), sha256=sha)
    return _finish(pipeline, item, img, faces, sha, picked[-1] if picked else None)


def _finish(pipeline: Pipeline, item: Item, img, faces: list[Face], sha: str,
            picked: tuple[list[Face], str, str] | None = None) -> Outcome:
    """The Outcome of an analysed photo: the named person's face picked (``picked``: where
    it was picked before the faces were filled), crops encoded."""
    out = Outcome(item.location, "added", faces=faces, sha256=sha, size=img.size, fmt=img.format)
    if picked is not None:            # the named person's face, chosen before filling
        out.faces, out.status, out.reason = picked
    elif not faces:
        out.status, out.reason = "noface", "no face found"
    elif item.person is not None:
        out.faces, out.status, out.reason = _pick_named_face(faces, *img.size)
    out.jpegs = [_jpeg(f.crop, pipeline.settings["jpeg_quality"]) for f in out.faces]
    for f in out.faces:
        f.crop = None
    return out


def _jpeg(crop: np.ndarray, quality: int) -> bytes:
    """A crop as JPEG bytes. Encoded where the face was analysed (the worker process): the
    main process, which shares the cores with the workers, then receives and writes about
    20 kB a face instead of a 168 kB array."""
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _pick_named_face(faces: list[Face], width: int, height: int) -> tuple[list[Face], str, str]:
    """For a photo of ``width`` x ``height`` labelled with one person: keep the largest face;
    refuse the photo as ambiguous where another face is nearly as large (AMBIGUOUS_AREA), or
    is sizeable (OFF_CENTRE_AREA) and nearer the centre than the largest."""
    from pof.stages.select import off_centre

    def area(f: Face) -> float:
        return f.box[2] * f.box[3]

    big, *others = sorted(faces, key=lambda f: -area(f))
    if others and area(others[0]) >= AMBIGUOUS_AREA * area(big):
        return [], "error", (f"{len(faces)} faces of similar size: cannot tell which is the person; "
                             "crop the photo to that person")
    if any(area(f) >= OFF_CENTRE_AREA * area(big)
           and off_centre(f.box, width, height) < off_centre(big.box, width, height) for f in others):
        return [], "error", (f"{len(faces)} faces, and the largest is not the one nearest the centre: "
                             "cannot tell which is the person; crop the photo to that person")
    note = f"{len(faces)} faces, enrolled the largest" if others else ""
    return [big], "added", note


def check_output_folder(out: Path) -> None:
    """Refuse to build into ``out`` unless it is missing, empty, or a pof dataset with its
    catalog: a build writes and replaces files such as metadata.json and images/, and must not
    touch a user's own, nor a published dataset's."""
    from pof.dataset.lock import LOCK_NAME
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"{out}: not a folder; give --out a new or empty folder, or a pof dataset")
    if (out / CATALOG_NAME).is_file():
        return
    if (out / "pof.json").is_file():
        raise DatasetError(f"{out} holds a pof dataset's files but not its {CATALOG_NAME} (a "
                           "published copy?), so a build would replace its tables with the new "
                           "images alone: nothing was written. Build into the folder it was "
                           "built in, or into a new one")
    others = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise DatasetError(f"{out} holds files ({shown}) and is not a pof dataset (no "
                           f"{CATALOG_NAME} or pof.json): nothing was written. Build into a new "
                           "or empty folder, or into an existing pof dataset")


def _read(item: Item) -> bytes:
    return fetch_url(item.location) if item.is_url else read_bytes(item.location)


class Builder:
    """Builds into one dataset folder. ``settings`` as for Pipeline; ``workers`` processes
    (default: the ``workers`` setting; 0 means one per CPU core). ``engine``: None (the
    pipeline in worker processes), or a torch device ("cuda", or "cpu" for tests) for the
    batched GPU engine (``pof.gpu.engine``), which needs the default detector and embedder."""

    def __init__(self, out: str | Path, workers: int | None = None, engine: str | None = None,
                 **settings: Any) -> None:
        self.out = Path(out)
        self.engine = engine
        settings = {k: v for k, v in settings.items() if v is not None}   # None: not given
        self.pipeline = self._pipeline_for(self.out, settings)
        self.runtime_asked = self.pipeline.settings["runtime"]
        self.model = self.pipeline.descriptor_key()     # tags every descriptor this build makes
        self.attribute_models = json.dumps(self.pipeline.attributes.describe(), sort_keys=True)
        n = self.pipeline.settings["workers"] if workers is None else int(workers)
        self.workers = n if n > 0 else (os.cpu_count() or 1)
        if engine is not None and self.model != Pipeline(**{**settings, "device": "cpu"}).descriptor_key():
            raise PofError("the GPU engine runs pof's default detector and embedder only; "
                           "build with the defaults, or without --device cuda")

    @staticmethod
    def _pipeline_for(out: Path, settings: dict[str, Any]) -> Pipeline:
        """The pipeline for a build into ``out``: where ``out`` is a dataset built before a
        default changed (the descriptor backend, deblocking), the one it was built with, so
        that new photos can join it (settings given explicitly are kept; where other models
        differ, Catalog.bind_models refuses with its own message)."""
        if (out / CATALOG_NAME).is_file():
            try:
                return Dataset.open(out).pipeline(**settings)
            except PofError:
                pass
        return Pipeline(**settings)

    def runtime_for(self, count: int) -> str:
        """The CPU runtime (detector, MobileFaceNet) for a build of ``count`` images: with
        ``runtime=auto``, OpenVINO (where installed) from OPENVINO_MIN_PHOTOS images up, ONNX
        Runtime below, where OpenVINO's start-up (0.2-0.3 s a worker) would not pay back."""
        return job_runtime(self.runtime_asked, self.pipeline.settings["device"], count)

    def run(self, sources: list[str], provenance: dict[str, Any] | None = None,
            progress: bool = True, agreement: str | None = None) -> BuildReport:
        """Enrol ``sources`` and rewrite the dataset's files (with ``agreement`` as
        AGREEMENT.md where given). Holds the dataset's writer lock throughout (pof.dataset.lock):
        raises DatasetBusy if another build is writing it, and DatasetError, before anything
        is written, where ``out`` is a folder of other files."""
        from pof.dataset.lock import writing
        check_output_folder(self.out)
        items = list(collect(sources, provenance))
        # the worker processes get this setting with the others
        self.pipeline.settings["runtime"] = self.runtime_for(len(items))
        report = BuildReport()
        with writing(self.out):
            check_output_folder(self.out)      # again, now that no other build can be starting
            self._build(items, report, progress, agreement)
        return report

    def _build(self, items: list[Item], report: BuildReport, progress: bool,
               agreement: str | None) -> None:
        with Catalog(self.out, create=True) as cat:
            cat.bind_models(self.model)
            (self.out / "images").mkdir(exist_ok=True)
            bar = tqdm(total=len(items), unit="img", desc="build", disable=not progress)
            for outcome, item in self._outcomes(self._pending(cat, items, report, bar)):
                self._commit(cat, item, outcome, report)
                bar.update(1)
            bar.close()
            from pof.dataset.export import export
            export(cat, self.pipeline, agreement)

    def _pending(self, cat: Catalog, items: list[Item], report: BuildReport,
                 bar: tqdm) -> Iterator[tuple[Item, bytes, str]]:
        """Read and hash each item in turn; yield those the catalog does not have yet."""
        seen: dict[str, str] = {}
        for item in items:
            if item.problem:
                self._problem(report, item.location, "skipped" if item.skipped else "error", item.problem)
                bar.update(1)
                continue
            try:
                data = _read(item)
            except PofError as exc:
                self._problem(report, item.location, "error", str(exc))
                bar.update(1)
                continue
            sha = hashlib.sha256(data).hexdigest()
            known = cat.source_by_sha(sha)
            if known is not None or sha in seen:
                where = known["path"] if known is not None else seen[sha]
                if where == item.location:
                    report.counts["already in dataset"] += 1
                else:
                    self._problem(report, item.location, "duplicate", f"same bytes as {where}")
                bar.update(1)
                continue
            seen[sha] = item.location
            yield item, data, sha

    def _outcomes(self, pending: Iterator[tuple[Item, bytes, str]]) -> Iterator[tuple[Outcome, Item]]:
        """Analyse pending items in order (in worker processes when workers > 1)."""
        items: deque = deque()

        def jobs():
            for item, data, sha in pending:
                items.append(item)
                yield item, data, sha

        if self.engine is not None:
            yield from self._engine_outcomes(pending)
            return
        for outcome in pipeline_map(self.pipeline, _analyze, jobs(), self.workers):
            yield outcome, items.popleft()

    def _engine_outcomes(self, pending: Iterator[tuple[Item, bytes, str]]) -> Iterator[tuple[Outcome, Item]]:
        """Analyse pending items with the GPU engine, ``gpu_batch`` photos at a time: decoding (a
        batch ahead) and crop encoding in a thread pool (they release the GIL), attributes for
        all the batch's faces in one run in the engine's worker processes, the rest on the
        device."""
        from concurrent.futures import ThreadPoolExecutor
        from contextlib import closing

        from pof.gpu.engine import GpuEngine

        s = self.pipeline.settings
        engine = GpuEngine(self.engine, min_face=s["min_face"], det_threshold=s["det_threshold"],
                           embedder=s["embedder"], deblock=s["deblock"] == "on")

        def load(job):
            item, data, sha = job
            try:
                return decode_image(data, item.location, s["max_pixels"])
            except PofError as exc:
                return exc

        def finish(job, img, faces):
            item, _, sha = job
            if isinstance(img, PofError):
                return Outcome(item.location, "error", str(img), sha256=sha)
            return _finish(self.pipeline, item, img, faces, sha)

        def batches():
            batch: list = []
            for job in pending:
                batch.append(job)
                if len(batch) == s["gpu_batch"]:
                    yield batch
                    batch = []
            if batch:
                yield batch

        def analyse(batch, decoding):
            images = [d.result() for d in decoding]
            ok = [i for i, img in enumerate(images) if not isinstance(img, PofError)]
            found = dict(zip(ok, engine.analyze([images[i].pixels for i in ok]), strict=True))
            if s["attributes"] == "on":   # all faces of the batch in one run
                self.pipeline.attributes.estimate([f for faces in found.values() for f in faces],
                                                  workers=engine.workers)
            outs = pool.map(finish, batch, images, [found.get(i, []) for i in range(len(batch))])
            return [(o, job[0]) for o, job in zip(outs, batch, strict=True)]

        with ThreadPoolExecutor(os.cpu_count() or 1) as pool, closing(engine):
            ahead = None
            for batch in chain(batches(), [None]):
                # the next batch is read and decoding in the pool while this one is analysed
                decoding = [pool.submit(load, job) for job in batch] if batch is not None else None
                if ahead is not None:
                    yield from analyse(*ahead)
                ahead = (batch, decoding) if batch is not None else None

    def _commit(self, cat: Catalog, item: Item, o: Outcome, report: BuildReport) -> None:
        if o.status == "error":
            self._problem(report, item.location, "error", o.reason)
            return
        if o.status == "noface":
            self._problem(report, item.location, "noface", o.reason)
        ids = [face_id(o.sha256, f.index) for f in o.faces]
        for fid, jpeg in zip(ids, o.jpegs, strict=True):
            atomic_bytes(self.out / "images" / f"{fid}.jpg", jpeg)
        with cat.transaction():
            if item.person is not None:
                cat.ensure_person(item.person, item.name or item.person, item.attribution)
            sid = cat.add_source(o.sha256, item.location, item.person, item.provenance, o.size,
                                 o.fmt, o.status, o.reason or None)
            for fid, f in zip(ids, o.faces):
                cat.add_face(_face_row(fid, sid, item.person, f, self.model))
                if f.attributes:
                    cat.add_attributes(fid, f.attributes, self.attribute_models)
        if o.status == "added":
            report.added_images += 1
            report.added_faces += len(o.faces)
            report.counts["added"] += 1
            if o.reason:
                report.problems.append((item.location, "note", o.reason))

    @staticmethod
    def _problem(report: BuildReport, location: str, status: str, reason: str) -> None:
        # skips are counted by reason, so that the summary says why
        report.counts[f"skipped: {reason}" if status == "skipped" else status] += 1
        report.problems.append((location, status, reason))


def _j(a: Any) -> str:
    if isinstance(a, np.ndarray):
        a = np.round(a.astype(float), 2).tolist()
    return json.dumps(a)


def _face_row(fid: str, sid: int, person: str | None, f: Face, model: str) -> dict[str, Any]:
    return {"id": fid, "source_id": sid, "face_index": f.index, "person": person,
            "box": _j([round(float(v), 1) for v in f.box]), "det_score": float(f.det_score),
            "landmarks5": _j(f.landmarks5), "landmarks68": _j(f.landmarks68),
            "crop_matrix": _j(f.crop_matrix),
            "pose": _j({"yaw": f.pose.yaw, "pitch": f.pose.pitch, "roll": f.pose.roll}),
            "interocular": float(f.interocular), "blur": float(f.blur), "quality": float(f.quality),
            "descriptor": np.asarray(f.descriptor, np.float32).tobytes(), "model": model}
