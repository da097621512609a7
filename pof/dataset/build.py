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
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing
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
from pof.stages.load import LoadedImage, decode_image, read_bytes
from pof.runtime.workers import pipeline_map
from pof.pipeline import Analyzer, Pipeline, job_runtime
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


Job = tuple[Item, bytes, str]     # a pending source: the item, its bytes, their SHA-256


def _decode(settings: dict[str, Any], job: Job) -> LoadedImage | PofError:
    """The job's photo decoded, or the error that says why it cannot be."""
    item, data, _ = job
    try:
        return decode_image(data, item.location, settings["max_pixels"])
    except PofError as exc:
        return exc


def _analyse(analyzer: Analyzer, jobs: list[Job], images: list | None = None,
             pool: Executor | None = None) -> list[Outcome]:
    """The Outcome of each job of a batch, in order: decoded (``images``, where already
    decoded: a LoadedImage or a PofError each), analysed together by ``analyzer``, the named
    person's face picked, crops JPEG-encoded (in ``pool`` where given). A photo that cannot be
    decoded or analysed is an error outcome of its own; the rest of the batch goes on.
    Module-level, so that worker processes run it (``pof.runtime.workers.pipeline_map``)."""
    s = analyzer.settings
    if images is None:
        images = [_decode(s, job) for job in jobs]
    picked: list[list] = [[] for _ in jobs]

    def named_face(k: int):
        # the choice needs the boxes only: landmarks, descriptors and attributes are then
        # computed for the enrolled face alone where the analyzer can (the CPU pipeline),
        # not for bystanders (1.29 faces a LFW photo)
        def select(faces: list[Face]) -> list[Face]:
            if not faces:
                return faces
            picked[k].append(_pick_named_face(faces, *images[k].size))
            return picked[k][-1][0]
        return select

    ok = [k for k, img in enumerate(images) if not isinstance(img, PofError)]
    try:
        found = analyzer.analyze_batch([images[k].pixels for k in ok],
                                       [named_face(k) if jobs[k][0].person is not None else None for k in ok])
    except PofError as exc:
        if len(ok) > 1:       # which photo failed: each on its own
            return [o for job, img in zip(jobs, images, strict=True) for o in _analyse(analyzer, [job], [img], pool)]
        images = [exc if k in ok else img for k, img in enumerate(images)]
        found = []
        ok = []
    faces = dict(zip(ok, found, strict=True))

    def finish(k: int) -> Outcome:
        (item, _, sha), img = jobs[k], images[k]
        if isinstance(img, PofError):
            return Outcome(item.location, "error", str(img), sha256=sha)
        return _finish(s, item, img, faces[k], sha, picked[k][-1] if picked[k] else None)

    return list((pool.map if pool is not None else map)(finish, range(len(jobs))))


def _analyze(analyzer: Analyzer, item: Item, data: bytes, sha: str) -> Outcome:
    """The Outcome of one source (``_analyse`` of a batch of one)."""
    return _analyse(analyzer, [(item, data, sha)])[0]


def _finish(settings: dict[str, Any], item: Item, img: LoadedImage, faces: list[Face], sha: str,
            picked: tuple[list[Face], str, str] | None = None) -> Outcome:
    """The Outcome of an analysed photo: the named person's face picked (``picked``: where
    it was picked when the faces were selected), crops encoded."""
    out = Outcome(item.location, "added", faces=faces, sha256=sha, size=img.size, fmt=img.format)
    if picked is not None:            # the named person's face, chosen before filling
        out.faces, out.status, out.reason = picked
    elif not faces:
        out.status, out.reason = "noface", "no face found"
    elif item.person is not None:
        out.faces, out.status, out.reason = _pick_named_face(faces, *img.size)
    out.jpegs = [_jpeg(f.crop, settings["jpeg_quality"]) for f in out.faces]
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

    def _outcomes(self, pending: Iterator[Job]) -> Iterator[tuple[Outcome, Item]]:
        """Analyse pending items in order, in batches of the analyzer's ``batch_size``: the
        CPU pipeline one photo at a time in worker processes (when workers > 1, which also
        JPEG-encode the crops), the GPU engine many at once in this process (``_on_engine``).
        Both run ``_analyse``."""
        if self.engine is None:
            analyzer: Analyzer = self.pipeline
        else:
            from pof.gpu.engine import GpuEngine
            analyzer = GpuEngine(self.engine, settings=self.pipeline.settings)
        batches: deque = deque()

        def jobs() -> Iterator[tuple[list[Job]]]:
            batch: list[Job] = []
            for job in chain(pending, [None]):
                if job is not None:
                    batch.append(job)
                if batch and (job is None or len(batch) == analyzer.batch_size):
                    batches.append(batch)
                    yield (batch,)
                    batch = []

        with closing(analyzer):
            runs = pipeline_map(analyzer, _analyse, jobs(), self.workers) if analyzer is self.pipeline \
                else _on_engine(analyzer, jobs())
            for outcomes in runs:
                for outcome, (item, _, _) in zip(outcomes, batches.popleft(), strict=True):
                    yield outcome, item

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


def _on_engine(engine: Analyzer, jobs: Iterator[tuple[list[Job]]]) -> Iterator[list[Outcome]]:
    """``_analyse`` of each batch with the GPU engine, in this process: decoding (a batch
    ahead) and crop encoding in a thread pool (they release the GIL), attributes for all the
    batch's faces in one run in the engine's worker processes, the rest on the device."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        ahead = None
        for job in chain(jobs, [None]):
            # the next batch is read and decoding in the pool while this one is analysed
            decoding = None if job is None else (job[0], [pool.submit(_decode, engine.settings, j) for j in job[0]])
            if ahead is not None:
                batch, pending = ahead
                yield _analyse(engine, batch, [d.result() for d in pending], pool)
            ahead = decoding


