"""MTCNN face detector (Zhang et al. 2016), facenet-pytorch's weights in ONNX, run by ONNX
Runtime or, for long jobs on the CPU, by OpenVINO (``runtime``).

The three networks were converted once by ``tools/convert_mtcnn.py`` into
``pof/runtime/weights/mtcnn/{pnet,rnet,onet}.onnx``; the cascade around them (image pyramid, NMS, box
regression, crops) is numpy, following facenet-pytorch 2.6.0 step by step (its "area"
resampling included, from one summed-area table), so no torch is needed at run time. Two
differences, both for the better: crops of boxes that leave the image are padded with black
as in the original MTCNN, where facenet-pytorch stretches the inside part; and, unless
``rescue=False``, rejected candidates get a second look (see ``MTCNNDetector``). With
``rescue=False``, faces whose candidate crops stay inside the image come out as
facenet-pytorch's to within 1e-4 px.

Example::

    detector = MTCNNDetector()
    for face in detector.detect(rgb):  # rgb: uint8 (H, W, 3)
        x, y, w, h = face.box
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pof.runtime.device import RUNTIMES, cpu_runtime
from pof.runtime.sessions import OpenVinoSession, ort_options, try_openvino
from pof.errors import ImageError, PofError, SettingError
from pof.stages.arrays import device, flatnonzero, namespace, sort_values
from pof.stages.detect import _mtcnn_ops as ops
from pof.stages.detect.base import Detection, Detector
from pof.runtime.weights import MODELS

MODEL_DIR = MODELS / "mtcnn"
RNET_SIZE = 24  # RNet's input side, pixels
ONET_SIZE = 48  # ONet's input side, pixels
# NMS overlap thresholds, as in facenet-pytorch
NMS_PNET_SCALE = 0.5  # among one pyramid level's PNet boxes (IoU)
NMS_PNET_ALL = 0.7  # among all levels' PNet boxes (IoU)
NMS_RNET = 0.7  # after RNet (IoU)
NMS_ONET = 0.7  # after ONet (intersection over the smaller box)
# A rejected box gets a second look only if its probability reached RESCUE_MIN_PROB (below
# that it is background; halves the cost) and no accepted box overlaps it by RESCUE_MAX_IOU
RESCUE_MIN_PROB = 0.03
RESCUE_MAX_IOU = 0.5


class MTCNNDetector(Detector):
    """Three-stage MTCNN cascade; gives boxes, scores and five landmarks.

    Args:
        min_face_size: smallest face side searched for, in pixels (default 20). Smaller
            values find smaller faces and cost time (the pyramid starts larger).
        thresholds: face-probability cut-offs of PNet, RNet and ONet (default 0.5, 0.6, 0.7;
            facenet-pytorch uses 0.6, 0.7, 0.7. Ours find more masked and rotated faces on
            the Yale checks of tools/check_mtcnn.py with no more false detections).
        factor: ratio between successive pyramid scales, in (0, 1) (default 0.709).
        providers: ONNX Runtime execution providers (default ``["CPUExecutionProvider"]``).
        rescue: give candidates that RNet or ONet reject a second look at shifted and
            rescaled crops (default True; see ``_second_look``). It finds many more faces that
            are partly covered (masks, eye bands) or rotated, at little cost in false
            detections; False (with thresholds 0.6, 0.7, 0.7) gives facenet-pytorch's results.
        threads: inference threads per network (default 1: pof parallelises by process).
        runtime: "onnxruntime", "openvino" (CPU only), or "auto" (default: ONNX Runtime;
            ``pof serve`` and long builds turn it into OpenVINO where installed, see
            ``pof.runtime.device.cpu_runtime``). Both run the same ONNX files; their outputs agree to
            about 1e-6.

    Sessions are created on the first :meth:`detect` call, not at construction.
    """

    name = "mtcnn"
    version = "facenet-pytorch-2.6.0-onnx"

    def __init__(
        self,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.5, 0.6, 0.7),
        factor: float = 0.709,
        providers: Sequence[str] | None = None,
        rescue: bool = True,
        threads: int = 1,
        runtime: str = "auto",
    ) -> None:
        if not min_face_size > 0:
            raise SettingError(f"min_face_size must be > 0 pixels, got {min_face_size!r}")
        if not 0 < factor < 1:
            raise SettingError(f"factor must be between 0 and 1 (e.g. 0.709), got {factor!r}")
        if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
            raise SettingError(f"thresholds must be three probabilities (PNet, RNet, ONet), "
                               f"e.g. (0.6, 0.7, 0.7); got {thresholds!r}")
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.rescue = bool(rescue)
        self.threads = max(1, int(threads))
        if runtime not in RUNTIMES:
            raise SettingError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if runtime == "openvino" and self.providers != ["CPUExecutionProvider"]:
            raise SettingError("runtime openvino runs on the CPU only; use runtime onnxruntime "
                               "(or auto) with --device cuda")
        self.runtime = runtime
        self._sessions: dict | None = None

    def settings_key(self) -> str:
        """The settings that change what this detector finds (part of the descriptor key).
        rescue2 is the shift-first second look (rescue1, every jitter at once, is retired)."""
        t = ",".join(f"{x:g}" for x in self.thresholds)
        return f"min{self.min_face_size:g}-t{t}-f{self.factor:g}-rescue{2 if self.rescue else 0}"

    def _session(self, net: str):
        """The session of ``net`` ("pnet", "rnet", "onet"), loaded on first use: OpenVINO's
        or ONNX Runtime's (``runtime``), both with ONNX Runtime's ``run`` interface."""
        if self._sessions is None:
            for name in ("pnet", "rnet", "onet"):
                if not (MODEL_DIR / f"{name}.onnx").is_file():
                    raise PofError(f"MTCNN model {MODEL_DIR / name}.onnx is missing; reinstall "
                                   f"pof or run tools/convert_mtcnn.py to recreate it")
            on_cpu = self.providers == ["CPUExecutionProvider"]
            if on_cpu and cpu_runtime(self.runtime) == "openvino":
                self._sessions = try_openvino(
                    lambda: {name: OpenVinoSession(MODEL_DIR / f"{name}.onnx", self.threads)
                             for name in ("pnet", "rnet", "onet")}, "the detector")
            if self._sessions is None:
                import onnxruntime as ort  # imported lazily: no work at import time

                opts = ort_options(self.threads)
                self._sessions = {name: ort.InferenceSession(str(MODEL_DIR / f"{name}.onnx"), opts,
                                                             providers=self.providers)
                                  for name in ("pnet", "rnet", "onet")}
        return self._sessions[net]

    def _run(self, net: str, batch: np.ndarray) -> list[np.ndarray]:
        """Run ``net`` on a normalised (N, 3, H, W) float32 batch; facenet-pytorch's outputs."""
        return self._session(net).run(None, {"input": batch})

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find every face in ``image`` (uint8 RGB, (H, W, 3)); best score first.

        Boxes are (x, y, w, h) clipped to the image; landmarks (5, 2) x, y in source pixels:
        image-left eye, image-right eye, nose tip, image-left and image-right mouth corners.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageError(f"detect expects a uint8 RGB array of shape (H, W, 3), got "
                             f"{image.dtype} {image.shape}; convert it with the load stage")
        table = ops.integral(np.ascontiguousarray(image))  # all resampling reads this
        boxes = self._stage_pnet(table)
        if len(boxes):
            boxes = self._stage_rnet(table, boxes)
        if not len(boxes):
            return []
        boxes, points = self._stage_onet(table, boxes)
        return _to_detections(boxes, points, image.shape[1], image.shape[0])

    def _stage_pnet(self, table: np.ndarray) -> np.ndarray:
        """Proposal stage: PNet over the pyramid -> squared candidate boxes (N, 5)."""
        h, w = table.shape[0] - 1, table.shape[1] - 1
        per_scale = []
        for scale in ops.pyramid_scales(h, w, self.min_face_size, self.factor):
            reg, prob = self._run("pnet", ops.pyramid_level(table, scale))
            cand = ops.generate_boxes(reg[0], prob[0, 1], scale, self.thresholds[0])
            per_scale.append(cand[ops.nms(cand, NMS_PNET_SCALE)])
        boxes = np.concatenate(per_scale) if per_scale else np.zeros((0, 9), np.float32)
        boxes = boxes[ops.nms(boxes, NMS_PNET_ALL)]
        boxes = ops.regress(boxes, boxes[:, 5:9], plus_one=False)
        return ops.square(boxes)

    def _classify(self, net: str, table: np.ndarray, boxes: np.ndarray, size: int,
                  threshold: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run RNet or ONet on every box in one batch; keep the boxes it calls faces.

        Returns the kept boxes (N, 5) with the face probability in column 4, and the net's
        outputs for them (``reg``, then for ONet ``landmarks``, then ``prob``).
        """
        outs = self._run(net, ops.crop_patches(table, boxes, size))
        boxes, prob = boxes.copy(), outs[-1][:, 1].copy()
        keep = prob > threshold
        if self.rescue and not keep.all():
            self._second_look(net, table, size, threshold, boxes, outs, prob, keep)
        boxes = boxes[keep]
        boxes[:, 4] = prob[keep]
        return boxes, [out[keep] for out in outs]

    def _second_look(self, net: str, table: np.ndarray, size: int, threshold: float,
                     boxes: np.ndarray, outs: list[np.ndarray], prob: np.ndarray,
                     keep: np.ndarray) -> None:
        """Rescue rejected boxes (``second_look``); updates ``boxes``, ``outs``, ``prob`` and
        ``keep`` in place."""
        def look(tries, of, per_box):
            return self._run(net, ops.crop_patches(table, tries, size))

        second_look(look, threshold, boxes, outs, prob, keep)

    def _stage_rnet(self, table: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Refinement stage: RNet on all candidates -> refined squares (N, 5)."""
        boxes, (reg, _) = self._classify("rnet", table, boxes, RNET_SIZE, self.thresholds[1])
        pick = ops.nms(boxes, NMS_RNET)
        return ops.square(ops.regress(boxes[pick], reg[pick]))

    def _stage_onet(self, table: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output stage: ONet -> final boxes (N, 5) and landmarks (N, 5, 2)."""
        boxes, (reg, rel_points, _) = self._classify("onet", table, boxes, ONET_SIZE,
                                                     self.thresholds[2])
        points = ops.landmarks_in_box(boxes, rel_points)  # relative to the ONet input box
        boxes = ops.regress(boxes, reg)
        pick = ops.nms(boxes, NMS_ONET, method="min")
        return boxes[pick], points[pick]


def second_look(look, threshold: float, boxes, outs: list, prob, keep, photo=None) -> None:
    """The rescue of candidates RNet or ONet rejected, for numpy arrays (one photo) and torch
    tensors (a batch of photos, ``photo``: the photo of each box) alike.

    Each rejected box is re-cropped at every ``ops.RESCUE_JITTERS`` shift and scale and kept
    if at least two of those crops pass; it then takes the best crop's box and outputs, and
    the second-best probability as its score. Clear background (below RESCUE_MIN_PROB), and
    boxes overlapping an accepted one of their photo by RESCUE_MAX_IOU (that face is found),
    are skipped. The shifted crops go first, in one batch; only boxes with a pass among them
    try the scaled ones (a third less work; tools/check_mtcnn.py finds the same faces either
    way). ``look(tries (M, 5), of, per_box)``: the net's outputs for the crops of ``tries``,
    ``per_box`` of them in turn for each of the boxes ``of`` (indices into ``boxes``).
    Updates ``boxes``, ``outs``, ``prob`` and ``keep`` in place.
    """
    xp = namespace(boxes)
    failed = flatnonzero(~keep & (prob >= RESCUE_MIN_PROB))
    if len(failed) and bool(keep.any()):
        iou = ops.pair_iou(boxes[failed], boxes[keep])
        if photo is not None:             # only boxes of the same photo count
            iou = iou * (photo[failed][:, None] == photo[keep][None, :])
        failed = failed[xp.amax(iou, axis=1) < RESCUE_MAX_IOU]
    if not len(failed):
        return
    tries = ops.jitter(boxes[failed], ops.RESCUE_JITTERS)  # (F, K, 5)
    tried = _tries(look, threshold, tries, failed)
    tried_prob = tried[-1][..., 1]                         # (F, K)
    ok = (tried_prob > threshold).sum(axis=1) >= 2
    if not bool(ok.any()):
        return
    rows = flatnonzero(ok)
    best = tried_prob[rows].argmax(axis=1)
    saved = failed[rows]
    boxes[saved, :4] = tries[rows, best, :4]
    for out, alt in zip(outs, tried, strict=True):
        out[saved] = alt[rows, best]
    prob[saved] = sort_values(tried_prob[rows], axis=1)[:, -2]
    keep[saved] = True


def _tries(look, threshold: float, tries, failed) -> list:
    """The net's outputs (F, K, ...) for every crop in ``tries`` (F, K, 5) of the boxes
    ``failed``: the first
    ``ops.RESCUE_SHIFTS`` crops of each box, then the rest only for boxes with a pass among
    those (the others get zeros: probability 0, never kept)."""
    xp = namespace(tries)
    f, k, first = tries.shape[0], tries.shape[1], ops.RESCUE_SHIFTS
    head = look(tries[:, :first].reshape(-1, 5), failed, first)
    go = (head[-1][:, 1].reshape(f, first) > threshold).any(axis=1)
    out = [xp.zeros((f, k) + tuple(o.shape[1:]), dtype=o.dtype, device=device(o)) for o in head]
    for o, h in zip(out, head, strict=True):
        o[:, :first] = h.reshape((f, first) + tuple(h.shape[1:]))
    if bool(go.any()):
        n = int(go.sum())
        tail = look(tries[go, first:].reshape(-1, 5), failed[go], k - first)
        for o, t in zip(out, tail, strict=True):
            o[go, first:] = t.reshape((n, k - first) + tuple(t.shape[1:]))
    return out


def _to_detections(boxes: np.ndarray, points: np.ndarray, width: int, height: int
                   ) -> list[Detection]:
    """Final (N, 5) boxes and (N, 5, 2) landmarks -> Detections, clipped, best first."""
    boxes, inside = ops.clip_boxes(boxes, width, height)
    out = [Detection(box=(x1, y1, x2 - x1, y2 - y1), score=float(score),
                     landmarks5=np.asarray(pts, dtype=np.float32))
           for (x1, y1, x2, y2, score), pts in zip(boxes[inside].tolist(), points[inside], strict=True)]
    return sorted(out, key=lambda d: d.score, reverse=True)
