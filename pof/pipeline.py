"""The pipeline: load -> detect -> landmarks -> align -> quality -> embed -> attributes (with
crops only), one Face per face.

Backends are created once, on first use, and cached on the Pipeline object (not in module
globals). ``Pipeline.describe()`` names every model and setting that changes a descriptor;
catalogs and indexes are keyed by it so a stale one is never reused.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from pof.stages import align, detect, embed, quality, restore
from pof.runtime.device import cpu_runtime, onnx_providers
from pof.errors import NoFaceError, PofError
from pof.stages.embed.dlib_resnet import CHIP_PADDING, CHIP_SIZE
from pof.stages.landmarks import DlibLandmarks
from pof.stages.load import LoadedImage, load_image
from pof.record import Face
from pof.settings import resolve

# from this many images up, a CPU job (build, search, verify, eval) runs the detector and
# MobileFaceNet with OpenVINO where runtime=auto: it saves about 17 ms a 1024 x 768 photo and
# 6 ms a face, and costs each worker 0.2-0.3 s to load (BENCHMARKS.md)
OPENVINO_MIN_PHOTOS = 100
# what a descriptor key names, in order ("restoration" only where deblocking is on)
KEY_PARTS = ("detector", "landmarks", "alignment", "embedder", "normalisation", "restoration")


def job_runtime(runtime: str, device: str, count: int) -> str:
    """The runtime setting for a job of ``count`` images: on the CPU with ``runtime=auto``,
    OpenVINO (where installed) from OPENVINO_MIN_PHOTOS images up and ONNX Runtime below,
    where OpenVINO's start-up would not pay back; otherwise ``runtime`` as it is."""
    if device != "cpu":
        return runtime
    return cpu_runtime(runtime, long_job=count >= OPENVINO_MIN_PHOTOS)


Select = Callable[[list[Face]], list[Face]]


@runtime_checkable
class Analyzer(Protocol):
    """What a build or a search needs from whatever turns photos into Faces: the CPU
    ``Pipeline`` (one photo at a time, in worker processes) and the GPU engine
    (``pof.gpu.engine.GpuEngine``, many photos at once on a device) both are one.

    ``settings``: the resolved settings (``pof.settings``) it analyses with; ``describe()``
    and ``descriptor_key()``: the models and settings that change a descriptor (a build tags
    every descriptor with the key); ``close()``: give back what it holds (worker processes),
    after which it can still be used. ``batch_size``: how many photos ``analyze_batch`` is
    best given at once (1 for the pipeline, whose parallelism is by process).
    """

    settings: dict[str, Any]
    batch_size: int

    def analyze_batch(self, photos: Sequence[np.ndarray], selects: Sequence[Select | None] | None = None,
                      with_crops: bool = True) -> list[list[Face]]:
        """Faces of every photo (uint8 RGB (H, W, 3) arrays), best detection first, fully
        filled (crops only ``with_crops``; attributes where the ``attributes`` setting is on
        and crops are made). ``selects``: per photo, None or a function given the photo's
        detected faces that returns the ones to keep (``Pipeline.analyze``'s ``select``)."""
        ...

    def describe(self) -> dict[str, str]:
        ...

    def descriptor_key(self) -> str:
        ...

    def close(self) -> None:
        ...


class Pipeline:
    """Turns images into Faces (an ``Analyzer``).

    settings: overrides of ``pof.settings.SETTINGS`` (detector, min_face, det_threshold,
    max_pixels, embedder, device, ...). Example::

        faces = Pipeline().analyze_file("photo.jpg")
        faces[0].descriptor.shape   # (128,)
    """

    batch_size = 1

    def __init__(self, **settings: Any) -> None:
        self.settings = resolve(settings)
        self._detector = None
        self._landmarks = None
        self._embedder = None
        self._attributes = None

    @property
    def threads(self) -> int:
        """Inference threads of each model: the ``threads`` setting, 0 (automatic) meaning 1."""
        return self.settings["threads"] or 1

    def settle_runtime(self, count: int) -> str:
        """Fix the CPU runtime for a job of ``count`` images before any model loads
        (``job_runtime``). Returns it."""
        self.settings["runtime"] = job_runtime(self.settings["runtime"], self.settings["device"], count)
        return self.settings["runtime"]

    def _make_detector(self) -> detect.Detector:
        opts: dict[str, Any] = {"min_face_size": self.settings["min_face"]}
        if self.settings["detector"] == "mtcnn":
            opts["providers"] = onnx_providers(self.settings["device"])
            opts["runtime"] = self.settings["runtime"]
            opts["threads"] = self.threads
        return detect.create(self.settings["detector"], **opts)

    @property
    def detector(self) -> detect.Detector:
        if self._detector is None:
            self._detector = self._make_detector()
        return self._detector

    @property
    def landmarks(self) -> DlibLandmarks:
        if self._landmarks is None:
            self._landmarks = DlibLandmarks()
        return self._landmarks

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = embed.create(self.settings["embedder"], self.settings["device"],
                                          self.threads, self.settings["runtime"])
        return self._embedder

    @property
    def attributes(self):
        """The attributes stage (``pof.stages.attributes.AttributeStage``), created on first use."""
        if self._attributes is None:
            from pof.stages.attributes import AttributeStage
            self._attributes = AttributeStage(self.settings["demographics"] == "on", self.settings["device"],
                                              self.threads)
        return self._attributes

    def describe(self) -> dict[str, str]:
        """Models and settings that change a descriptor (cheap: loads no model)."""
        det = detect.create(self.settings["detector"], min_face_size=self.settings["min_face"])
        emb = embed.create(self.settings["embedder"])
        out = {"detector": f"{det.name}/{det.version}/{det.settings_key()}/score{self.settings['det_threshold']:g}/eq-retry", "landmarks": DlibLandmarks.version,
               "alignment": f"dlib-chip-{CHIP_SIZE}-pad{CHIP_PADDING:g}", "embedder": f"{emb.name}/{emb.version}",
               "normalisation": "l2"}
        if self.settings["deblock"] == "on":
            # named only when on, so that datasets built before it existed keep their key
            out["restoration"] = restore.VERSION
        return out

    def descriptor_key(self) -> str:
        """One string naming everything that changes a descriptor (see describe())."""
        d = self.describe()
        return "|".join(f"{k}={d[k]}" for k in KEY_PARTS if k in d)

    def load(self, path: str | Path) -> LoadedImage:
        return load_image(path, self.settings["max_pixels"])

    def detect(self, pixels: np.ndarray) -> tuple[list, str]:
        """Detections above det_threshold, and the image they were found on: "original", or,
        when the original gives none, a contrast-equalised copy ("equalized", then "clahe";
        ``pof.stages.detect.with_retries``). Boxes are in the original's pixels."""
        t = self.settings["det_threshold"]

        def find(images: list[np.ndarray]) -> list[list]:
            return [[d for d in self.detector.detect(im) if d.score >= t] for im in images]

        return detect.with_retries(find([pixels]), find, [pixels])[0]

    def analyze(self, pixels: np.ndarray, with_crops: bool = True, mirror: bool = False,
                select: Callable[[list[Face]], list[Face]] | None = None) -> list[Face]:
        """Every face in an RGB image (uint8, (H, W, 3)), best detection first, fully filled.
        ``mirror``: descriptors averaged with the mirror image's (verification only; see
        ``pof.stages.embed.with_mirror``). ``select``: given the detected faces (box, score and five
        points only), the ones to fill; the rest are dropped unfilled (a build of a named
        photo needs only the person's face).

        A heavily JPEG-compressed photo (``pof.stages.restore``, setting ``deblock``) is smoothed
        first: faces are found, fitted and described on the smoothed pixels, with mirrored
        descriptors, while crops, blur and attributes come from the photo's own pixels."""
        work = pixels
        restored = self.settings["deblock"] == "on" and restore.heavily_compressed(pixels)
        if restored:
            work = restore.deblock(pixels)
        dets, seen_on = self.detect(work)
        faces = [detect.detected_face(i, d.box, d.score, d.landmarks5, seen_on) for i, d in enumerate(dets)]
        if select is not None:
            faces = select(faces)
        size = (pixels.shape[1], pixels.shape[0])
        for f in faces:
            self.landmarks.fit(work, f)
            f.crop, f.crop_matrix = align.crop_face(pixels, f.landmarks5)
            quality.assess(f, size)
            if restored:
                restore.mark(f)
            if not with_crops:
                f.crop = None
        self.embedder.embed(work, faces, mirror=mirror or restored)
        if with_crops and self.settings["attributes"] == "on":
            self.attributes.estimate(faces)
        return faces

    def analyze_batch(self, photos: Sequence[np.ndarray], selects: Sequence[Select | None] | None = None,
                      with_crops: bool = True) -> list[list[Face]]:
        """``analyze`` of each photo in turn (``Analyzer.analyze_batch``)."""
        selects = [None] * len(photos) if selects is None else selects
        return [self.analyze(p, with_crops, select=s) for p, s in zip(photos, selects, strict=True)]

    def close(self) -> None:
        """Nothing to give back: the models stay loaded for the next photos."""

    def analyze_file(self, path: str | Path, with_crops: bool = True) -> list[Face]:
        """Load and analyze one file. Raises ImageError if unreadable, NoFaceError if faceless."""
        faces = self.analyze(self.load(path).pixels, with_crops)
        if not faces:
            raise NoFaceError(f"{path}: no face found")
        return faces


def faces_or_error(pipeline: Pipeline, path: str | Path) -> tuple[list[Face], str | None]:
    """(faces without crops, None) for one probe image, or ([], reason) if it has none or
    cannot be read. Module-level so worker processes can run it (see pof.runtime.workers)."""
    try:
        return pipeline.analyze_file(path, with_crops=False), None
    except PofError as exc:
        return [], str(exc)


def pipeline_for(descriptor_key: str, **settings: Any) -> Pipeline:
    """A pipeline whose descriptors match a dataset's ``descriptor_key``: the settings given
    (or the defaults), with the descriptor backend the dataset was built with where only that
    differs (a dataset built before the default changed stays searchable). Raises PofError
    when other models differ too, saying how to fix it."""
    pipe = Pipeline(**settings)
    if not descriptor_key or descriptor_key == pipe.descriptor_key():
        return pipe
    built = dict(part.split("=", 1) for part in descriptor_key.split("|") if "=" in part)
    name = built.get("embedder", "").split("/", 1)[0]
    changes: dict[str, Any] = {}
    if name in embed.EMBEDDERS and settings.get("embedder") is None:
        changes["embedder"] = name
    if settings.get("deblock") is None:     # built before deblocking existed, or with it off
        changes["deblock"] = "on" if "restoration" in built else "off"
    if changes:
        other = Pipeline(**{**settings, **changes})
        if other.descriptor_key() == descriptor_key:
            return other
    raise PofError(f"the dataset was built with other models ({descriptor_key}); this pof makes "
                   f"{pipe.descriptor_key()}. Rebuild it into a new folder"
                   + (f", or set POF_EMBEDDER={name}" if name in embed.EMBEDDERS else ""))
