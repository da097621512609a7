"""The GPU engine: batches of photos in, pof Faces out, every model on one torch device.

Stages, each run once per batch of same-sized photos (``GpuEngine.analyze``):

0. upload (``GpuEngine._upload``) and the photos' JPEG blockiness (``pof.gpu.restore``):
   heavily compressed photos go through apart, smoothed first, as in the CPU pipeline;
1. detection: ``pof.gpu.mtcnn.BatchMTCNN``; photos where nothing passes ``det_threshold``
   are tried again contrast-equalised, as ``pof.pipeline.Pipeline.detect`` does;
2. landmarks: every face warped into its upright 256 x 256 frame, dlib's 68-point trees run
   there (``pof.gpu.shape68``) on the box dlib's HOG detector would give, points mapped back;
3. align: the 200 x 280 dataset crop, dlib's 150 x 150 chip and the second network's 112 x 112
   ArcFace-layout chip (``pof.gpu.chips``), rounded to 8-bit pixels as the CPU pipeline's are;
4. embed: dlib's ResNet and the default embedder's second network (MobileFaceNet;
   ``pof.gpu.onnx_torch``), fused as ``pof.stages.embed.mobileface.DlibMobileFace`` fuses them;
5. quality (``pof.gpu.quality``): blur on the device for all crops at once; the head pose by
   OpenCV, as the CPU pipeline fits it, in worker processes while the device runs steps 3-4.

The descriptors are those of pof's default embedder (``dlib+mobilefacenet-onnx``), so a dataset
built on the GPU is searched with the CPU pipeline and the other way round; the tests measure
how close the two paths' descriptors are. ``analyze`` estimates no attributes;
``analyze_batch`` (the ``pof.pipeline.Analyzer`` a build runs) adds them where the
``attributes`` setting is on.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
import torch

from pof.stages import detect, embed, quality, restore
from pof.stages.align import CROP_H, CROP_W, FRAME_SIZE, invert, transform_points
from pof.stages.embed import mobileface
from pof.stages.embed.onnx_resnet import MODEL as DLIB_MODEL
from pof.errors import ImageError, PofError
from pof.stages.landmarks import hog_like_box, rect_ltrb
from pof.record import Face, Pose
from pof.pipeline import Pipeline
from pof.settings import defaults, resolve
from pof.gpu import torch_device
from pof.gpu import chips, onnx_torch
from pof.gpu import quality as device_quality
from pof.gpu import restore as device_restore
from pof.gpu.mtcnn import BatchMTCNN
from pof.gpu.poses import Poses
from pof.gpu.shape68 import ShapePredictor68
from pof.runtime.workers import Workers

DLIB_CHIP = 150
MOBILE_CHIP = mobileface.CHIP
# photos that go through the device together hold at most this many pixels: device memory
# grows about 50 bytes a pixel (20 GiB for 512 photos of 1024 x 768 on an H200)
MAX_GROUP_PIXELS = 256_000_000
DEVICE_BLOCKINESS_ON_CPU = False    # tests set it to run the GPU's code path on the CPU


class GpuEngine:
    """pof's analysis of photos, batched on one torch device.

    device: "cuda" (default) or "cpu" (for tests: the same code on the CPU); min_face,
    det_threshold: as pof's settings of the same names; half: run the two recognizers in
    float16 (a third faster on an H200; cosine to their float32 descriptors above 0.99999,
    tests/test_gpu_onnx_torch.py and BENCHMARKS.md; in float32, TF32 is switched off for
    convolutions and matrix products, process-wide); embedder: a fused embedder's name (default:
    the ``embedder`` setting). settings: a build's resolved settings (``pof.settings.resolve``),
    from which min_face, det_threshold, embedder, deblock, gpu_batch (``batch_size``) and
    attributes are taken instead; the engine is then the build's ``pof.pipeline.Analyzer``.

    Example::

        engine = GpuEngine("cuda")
        faces_per_photo = engine.analyze([rgb1, rgb2, ...])   # uint8 (H, W, 3) arrays
    """

    def __init__(self, device: str = "cuda", min_face: float = 20, det_threshold: float = 0.7,
                 half: bool = False, embedder: str | None = None, deblock: bool = True,
                 settings: dict[str, Any] | None = None) -> None:
        if settings is None:       # an engine for its own analyses: no attributes
            settings = resolve({"min_face": min_face, "det_threshold": det_threshold, "embedder": embedder,
                                "deblock": "on" if deblock else "off", "attributes": "off"})
        else:                      # the settings of a build (``Analyzer.settings``)
            min_face, det_threshold = settings["min_face"], settings["det_threshold"]
            embedder, deblock = settings["embedder"], settings["deblock"] == "on"
        self.settings = settings
        self.batch_size = int(settings["gpu_batch"])
        self._attributes = None
        self.device = torch_device(device)
        self.deblock = bool(deblock)      # as the pipeline's setting of that name (pof.stages.restore)
        if not half:
            # float32 means float32: PyTorch lets cuDNN run convolutions in TF32 (a 10-bit
            # mantissa) on Ampere and later GPUs by default, which moves descriptors away from
            # the CPU's (a worst cosine of 0.978 was measured on an H200 with it on)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.det_threshold = float(det_threshold)
        self.detector = BatchMTCNN(self.device, min_face_size=min_face)
        self.shape = ShapePredictor68.load(self.device)
        self.dtype = torch.float16 if half else torch.float32
        self.dlib = onnx_torch.load(DLIB_MODEL, self.device, self.dtype).eval()
        # dlib + a second network (pof.stages.embed.mobileface.DlibMobileFace or a subclass)
        self.fused = embed.backend(embedder or defaults()["embedder"])
        if not hasattr(self.fused, "SECOND"):
            raise PofError(f"the GPU engine runs the fused embedders (dlib + a second network) "
                           f"only, not {self.fused.name}")
        self.mobile = onnx_torch.load(self.fused.SECOND.MODEL, self.device, self.dtype).eval()
        # worker processes for the CPU work of a batch (head poses here; pof build's
        # attributes too): the engine's own process is one core
        self.workers = Workers()
        self._poses = Poses(self.workers)
        self._pinned: torch.Tensor | None = None        # page-locked upload buffer (GPU)
        self._copier: ThreadPoolExecutor | None = None  # threads that fill it

    def describe(self) -> dict[str, str]:
        """What the descriptors depend on: the CPU pipeline's description for the same
        settings (the engine's descriptors are the default embedder's, as on the CPU)."""
        return Pipeline(**{**self.settings, "device": "cpu"}).describe()

    def descriptor_key(self) -> str:
        return Pipeline(**{**self.settings, "device": "cpu"}).descriptor_key()

    @property
    def attributes(self):
        """The attributes stage, estimated for all faces of a batch in the engine's worker
        processes (``analyze_batch`` with the ``attributes`` setting on)."""
        if self._attributes is None:
            from pof.stages.attributes import AttributeStage
            self._attributes = AttributeStage(self.settings["demographics"] == "on", self.settings["device"],
                                              self.settings["threads"] or 1)
        return self._attributes

    def analyze_batch(self, photos: Sequence[np.ndarray], selects: Sequence | None = None,
                      with_crops: bool = True) -> list[list[Face]]:
        """``Analyzer.analyze_batch``: ``analyze``, then the attributes of all the batch's
        faces in one run (with crops, where the ``attributes`` setting is on), then each
        photo's ``selects`` (every face is analysed; a selection only drops faces)."""
        found = self.analyze(photos)
        if with_crops and self.settings["attributes"] == "on":
            self.attributes.estimate([f for faces in found for f in faces], workers=self.workers)
        if selects is not None:
            found = [faces if pick is None or not faces else pick(faces)
                     for faces, pick in zip(found, selects, strict=True)]
        if not with_crops:
            for f in (f for faces in found for f in faces):
                f.crop = None
        return found

    def close(self) -> None:
        """Stop the worker processes, if any were started (the engine can still be used after)."""
        self.workers.close()
        if self._copier is not None:
            self._copier.shutdown()
            self._copier = None

    def analyze(self, photos: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces of every photo (uint8 RGB (H, W, 3) arrays), best detection first, each with
        landmarks, crop, descriptor and quality: what ``Pipeline.analyze`` gives with
        attributes off. Photos of the same size go through together (up to MAX_GROUP_PIXELS)."""
        out: list[list[Face]] = [[] for _ in photos]
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(photos):
            if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
                raise ImageError(f"photo {i}: expected uint8 (H, W, 3), got {p.dtype} {p.shape}")
            groups.setdefault(p.shape, []).append(i)
        for shape, members in groups.items():
            step = max(1, MAX_GROUP_PIXELS // (shape[0] * shape[1]))
            for k in range(0, len(members), step):
                part = members[k:k + step]
                pixels = [photos[i] for i in part]
                with torch.inference_mode():
                    on_device = self._upload(pixels)
                    # heavily compressed photos go through apart, smoothed, as in
                    # Pipeline.analyze
                    blocky = self._blocky(pixels, on_device)
                for heavy in (False, True):
                    rows = np.flatnonzero(blocky == heavy)
                    if not len(rows):
                        continue
                    sub = on_device
                    if len(rows) < len(part):
                        sub = on_device[torch.from_numpy(rows).to(self.device)]
                    group = [pixels[j] for j in rows]
                    smoothed = [restore.deblock(p) for p in group] if heavy else None
                    for j, faces in zip(rows, self._analyze_group(group, sub, smoothed), strict=True):
                        out[part[j]] = faces
        return out

    def _blocky(self, photos: list[np.ndarray], on_device: torch.Tensor) -> np.ndarray:
        """Which photos are heavily compressed (``pof.stages.restore``): measured on the device for
        the whole group, or with numpy on the CPU (faster there than torch)."""
        if not self.deblock:
            return np.zeros(len(photos), bool)
        if self.device.type == "cpu" and not DEVICE_BLOCKINESS_ON_CPU:
            return np.array([restore.heavily_compressed(p) for p in photos], bool)
        return (device_restore.blockiness(on_device) >= restore.HEAVY_BLOCKINESS).cpu().numpy()

    def _upload(self, photos: list[np.ndarray]) -> torch.Tensor:
        """Same-sized photos as one (N, H, W, 3) uint8 tensor on the device. To a GPU through
        a page-locked buffer (kept for the next group), filled by a thread per core: a
        transfer from ordinary memory is slower, and one thread stacking a group of 256
        1-megapixel photos copies 600 MB alone."""
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(photos)).to(self.device)
        shape = (len(photos), *photos[0].shape)
        size = math.prod(shape)
        if self._pinned is None or self._pinned.numel() < size:
            self._pinned = None
            self._pinned = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        else:
            torch.cuda.current_stream(self.device).synchronize()   # the last upload is done
        host = self._pinned[:size].view(shape)
        arr = host.numpy()
        if self._copier is None:
            self._copier = ThreadPoolExecutor(os.cpu_count() or 1)
        list(self._copier.map(lambda j: np.copyto(arr[j], photos[j]), range(len(photos))))
        return host.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def _analyze_group(self, photos: list[np.ndarray], originals: torch.Tensor,
                       smoothed: list[np.ndarray] | None = None) -> list[list[Face]]:
        """``photos`` and ``originals``, the same photos on the device; ``smoothed``: the
        photos deblocked (pof.stages.restore), for detection, landmarks and mirrored descriptors;
        crops still come from the originals."""
        restored = smoothed is not None
        images = torch.from_numpy(np.stack(smoothed)).to(self.device) if restored else originals
        found = self._detect(images, smoothed if restored else photos)
        owner = np.concatenate([np.full(len(b), i) for i, (b, _, _) in enumerate(found)]).astype(np.int64)
        if not len(owner):
            return [[] for _ in photos]
        boxes = np.concatenate([b for b, _, _ in found])
        points5 = np.concatenate([p for _, p, _ in found]).astype(np.float32)
        index = torch.from_numpy(owner).to(self.device)
        nchw = images.permute(0, 3, 1, 2)
        points68 = self._landmarks(nchw, index, points5)
        size = (photos[0].shape[1], photos[0].shape[0])
        poses = self._poses.start(points68, size)     # on the CPU while the device goes on
        crop_m = chips.crop_matrices(points5)
        crops = _to_uint8(chips.warp(originals.permute(0, 3, 1, 2), index, crop_m, (CROP_W, CROP_H),
                                     border="replicate", shrink="area"))
        blur = device_quality.blur(crops).cpu().numpy()
        descriptors = self._embed(nchw, index, points68, mirror=restored)
        crops_np = crops.permute(0, 2, 3, 1).cpu().numpy()
        desc_np = descriptors.cpu().numpy()
        out: list[list[Face]] = [[] for _ in photos]
        for k in range(len(owner)):
            i = int(owner[k])
            x1, y1, x2, y2, score = boxes[k].tolist()
            f = detect.detected_face(len(out[i]), (x1, y1, x2 - x1, y2 - y1), score, points5[k], found[i][2])
            f.landmarks68, f.crop, f.descriptor = points68[k], crops_np[k], desc_np[k]
            f.crop_matrix = crop_m[k].astype(np.float64)
            if restored:
                restore.mark(f)
            out[i].append(f)
        # faces were appended in detection order: the k-th face is the k-th pose and blur
        angles = poses.result()
        faces = [f for photo in out for f in photo]
        for f, (yaw, pitch, roll), b in zip(faces, angles.tolist(), blur.tolist(), strict=True):
            quality.complete(f, Pose(yaw, pitch, roll), round(b, 3))
        return out

    def _detect(self, images: torch.Tensor, photos: list[np.ndarray]) -> list[tuple]:
        """(boxes (n, 5), points (n, 5, 2), "original"/"equalized"/"clahe") per photo; photos
        with no face above the threshold are retried contrast-equalised
        (``pof.stages.detect.with_retries``)."""
        def passing(results):
            return [(b[b[:, 4] >= self.det_threshold], p[b[:, 4] >= self.det_threshold]) for b, p in results]

        def find(eq: list[np.ndarray]) -> list[_Found]:
            return [_Found(*r) for r in passing(self.detector.detect(torch.from_numpy(np.stack(eq)).to(self.device)))]

        first = [_Found(*r) for r in passing(self.detector.detect(images))]
        return [(f.boxes, f.points, seen_on) for f, seen_on in detect.with_retries(first, find, photos)]

    def _landmarks(self, nchw: torch.Tensor, index: torch.Tensor, points5: np.ndarray) -> np.ndarray:
        """68 landmarks (N, 68, 2) in source pixels, fitted in each face's upright frame."""
        frame_m = chips.frame_matrices(points5)
        frames = _to_uint8(chips.warp(nchw, index, frame_m, (FRAME_SIZE, FRAME_SIZE),
                                      border="replicate", shrink="area"))
        rects = np.array([rect_ltrb(hog_like_box(p)) for p in transform_points(points5, frame_m)])
        in_frame = self.shape.predict(self.shape.intensity(frames), rects).cpu().numpy()
        return transform_points(in_frame, invert(frame_m))

    def _embed(self, nchw: torch.Tensor, index: torch.Tensor, points68: np.ndarray,
               mirror: bool = False) -> torch.Tensor:
        """Fused unit descriptors (N, 128 + second's dim): dlib's and the second network's,
        weighted as the CPU's; ``mirror``: each part averaged with its mirrored chip's (as
        ``pof.stages.embed.with_mirror``)."""
        dchips = _to_uint8(chips.warp(nchw, index, chips.dlib_chip_matrices(points68),
                                      (DLIB_CHIP, DLIB_CHIP), border="zero", shrink="dlib"))
        mchips = _to_uint8(chips.warp(nchw, index, chips.mobileface_matrices(points68),
                                      (MOBILE_CHIP, MOBILE_CHIP), border="zero", shrink="none"))
        if mirror:    # NCHW: the last axis is the chip's width
            dchips = torch.cat([dchips, dchips.flip(-1)])
            mchips = torch.cat([mchips, mchips.flip(-1)])
        d = embed.unit(self.dlib(dchips.to(self.dtype))[0].float())
        m = embed.unit(self.mobile(mchips.permute(0, 2, 3, 1).contiguous().to(self.dtype))[0].float())
        if mirror:
            d, m = embed.mirror_mean(d), embed.mirror_mean(m)
        return self.fused.fuse(d, m)

class _Found:
    """One photo's detections: boxes (n, 5) and points (n, 5, 2), sized by their count."""

    def __init__(self, boxes: np.ndarray, points: np.ndarray) -> None:
        self.boxes, self.points = boxes, points

    def __len__(self) -> int:
        return len(self.boxes)


def _to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """Float 0-255 pixels rounded to whole levels (as OpenCV and dlib store them)."""
    return pixels.round().clamp(0, 255).to(torch.uint8)
