"""The MTCNN cascade batched across photos, in torch: the same networks, thresholds, resampling
and second look as ``pof.stages.detect.mtcnn.MTCNNDetector``, with every stage run once for a whole
batch of same-sized photos instead of once per photo.

How it follows the CPU detector: it runs the CPU detector's own rules
(``pof.stages.detect._mtcnn_ops``: pyramid levels, crops, cell boxes, regression, jitters, the
landmark mapping; ``pof.stages.detect.mtcnn.second_look``) on tensors. One summed-area table
per photo (int32, exact) feeds every resampling, so pyramid levels and RNet/ONet crops are
the same block means; candidate boxes carry the index of their photo, and each non-maximum suppression
runs within a photo (and within a pyramid level where the CPU code does). What differs is only
floating-point rounding and, among boxes of exactly equal score, which one NMS keeps first.

Non-maximum suppression uses torchvision's batched kernel when torchvision is installed (it is
on the GPU machines pof is measured on); without it, the IoU-based suppressions fall back to
the CPU detector's numpy code per photo (slow, but exact, for tests on machines without
torchvision). The final ONet suppression (overlap over the smaller box) runs on the device
for all photos at once: few boxes remain by then.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pof.stages.detect import _mtcnn_ops as ops
from pof.stages.detect.mtcnn import (MODEL_DIR, NMS_ONET, NMS_PNET_ALL, NMS_PNET_SCALE, NMS_RNET,
                                     ONET_SIZE, RNET_SIZE, second_look)
from pof.errors import ImageError
from pof.gpu import onnx_torch

try:  # batched NMS on the device; optional (see the module docstring)
    from torchvision.ops import batched_nms as _tv_batched_nms
except ImportError:  # pragma: no cover - depends on the machine
    _tv_batched_nms = None

class BatchMTCNN:
    """MTCNN over batches of same-sized photos on one torch device.

    Args mirror ``MTCNNDetector``'s (min_face_size, thresholds, factor, rescue); ``device`` is
    a torch device. ``detect(images)`` takes a uint8 tensor (B, H, W, 3) RGB on that device
    and returns, per photo, ``(boxes (n, 5) x1 y1 x2 y2 score, points (n, 5, 2))`` as numpy,
    boxes clipped to the photo, best score first.
    """

    def __init__(self, device, min_face_size: float = 20, thresholds: Sequence[float] = (0.5, 0.6, 0.7),
                 factor: float = 0.709, rescue: bool = True, nets: dict | None = None) -> None:
        self.device = torch.device(device)
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.rescue = bool(rescue)
        self.nets = nets if nets is not None else {
            name: onnx_torch.load(MODEL_DIR / f"{name}.onnx", self.device).eval()
            for name in ("pnet", "rnet", "onet")}

    # -- the cascade -------------------------------------------------------------------
    @torch.inference_mode()
    def detect(self, images: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ImageError(f"BatchMTCNN.detect expects uint8 (B, H, W, 3), got "
                             f"{images.dtype} {tuple(images.shape)}")
        b, h, w = images.shape[:3]
        table = ops.integral(images)
        boxes, img = self._stage_pnet(table)
        if len(boxes):
            boxes, img = self._stage_rnet(table, boxes, img)
        if len(boxes):
            boxes, points, img = self._stage_onet(table, boxes, img)
        else:
            points = boxes.new_zeros((0, 5, 2))
        return _per_photo(boxes, points, img, b, w, h)

    def _pnet(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reg, prob = self.nets["pnet"](level)
        return reg, prob[:, 1]

    def _stage_pnet(self, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PNet over every pyramid level of every photo -> squared candidates (N, 5) and the
        photo index of each."""
        h, w = table.shape[1] - 1, table.shape[2] - 1
        found, owners = [], []
        scales = ops.pyramid_scales(h, w, self.min_face_size, self.factor)
        for s, scale in enumerate(scales):
            reg, prob = self._pnet(ops.pyramid_level(table, scale))
            bi, ys, xs = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            if not len(bi):
                continue
            cand = torch.cat([ops.cell_corners(xs, ys, scale), prob[bi, ys, xs][:, None],
                              reg[bi, :, ys, xs]], 1)
            keep = nms(cand, bi * len(scales) + s, NMS_PNET_SCALE)
            found.append(cand[keep])
            owners.append(bi[keep])
        if not found:
            return (torch.zeros((0, 5), dtype=torch.float32, device=table.device),
                    torch.zeros(0, dtype=torch.int64, device=table.device))
        boxes, img = torch.cat(found), torch.cat(owners)
        keep = nms(boxes, img, NMS_PNET_ALL)
        boxes, img = boxes[keep], img[keep]
        return ops.square(ops.regress(boxes, boxes[:, 5:9], plus_one=False)), img

    def _classify(self, net: str, table: torch.Tensor, boxes: torch.Tensor, img: torch.Tensor,
                  size: int, threshold: float) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """RNet or ONet on every candidate (with the second look for rejected ones); keeps
        the faces: (boxes (K, 5) with the probability in column 4, the net's outputs, photo
        index)."""
        outs = list(self.nets[net](ops.crop_patches(table, boxes, size, photo=img)))
        boxes, prob = boxes.clone(), outs[-1][:, 1].clone()
        keep = prob > threshold
        if self.rescue and not bool(keep.all()):
            self._second_look(net, table, size, threshold, boxes, img, outs, prob, keep)
        boxes = boxes[keep]
        boxes[:, 4] = prob[keep]
        return boxes, [o[keep] for o in outs], img[keep]

    def _second_look(self, net, table, size, threshold, boxes, img, outs, prob, keep) -> None:
        """``pof.stages.detect.mtcnn.second_look`` for all photos at once (updates in place)."""
        def look(tries, of, per_box):
            return self.nets[net](ops.crop_patches(table, tries, size, photo=img[of].repeat_interleave(per_box)))

        second_look(look, threshold, boxes, outs, prob, keep, photo=img)

    def _stage_rnet(self, table, boxes, img):
        boxes, (reg, _), img = self._classify("rnet", table, boxes, img, RNET_SIZE, self.thresholds[1])
        keep = nms(boxes, img, NMS_RNET)
        return ops.square(ops.regress(boxes[keep], reg[keep])), img[keep]

    def _stage_onet(self, table, boxes, img):
        boxes, (reg, rel, _), img = self._classify("onet", table, boxes, img, ONET_SIZE, self.thresholds[2])
        points = ops.landmarks_in_box(boxes, rel)
        boxes = ops.regress(boxes, reg)
        keep = nms_min(boxes, img, NMS_ONET)
        return boxes[keep], points[keep], img[keep]


# -- suppression on the device, and the final split by photo ------------------------------------
def nms(boxes: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy IoU suppression within each group (photo, or photo and pyramid level): the
    indices kept, best first within a group."""
    if len(boxes) == 0:
        return groups.new_zeros(0)
    if _tv_batched_nms is not None:
        return _tv_batched_nms(boxes[:, :4].float(), boxes[:, 4].float(), groups, threshold)
    b, g = boxes.detach().cpu().numpy(), groups.cpu().numpy()
    keep = [np.flatnonzero(g == k)[ops.nms(b[g == k], threshold)] for k in np.unique(g)]
    return torch.from_numpy(np.concatenate(keep)).to(boxes.device)


def nms_min(boxes: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy suppression by overlap over the smaller box (+1 pixel convention, as
    ``ops.nms(method="min")``) within each group, for all groups at once: the greedy result is
    the fixed point of "keep a box unless a kept, better box of its group overlaps it", reached
    in at most as many rounds as a group has boxes. Returns kept indices."""
    n = len(boxes)
    if n == 0:
        return groups.new_zeros(0)
    order = torch.argsort(-boxes[:, 4], stable=True)
    b, g = boxes[order].to(torch.float64), groups[order]
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    iw = (torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None]) + 1).clamp(min=0)
    ih = (torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None]) + 1).clamp(min=0)
    over = iw * ih / torch.minimum(area[:, None], area[None])
    rank = torch.arange(n, device=boxes.device)
    # suppresses[i, j]: box i (better, same photo) would remove box j
    suppresses = (over > threshold) & (g[:, None] == g[None]) & (rank[:, None] < rank[None])
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    for _ in range(n):
        new = ~(suppresses & keep[:, None]).any(dim=0)
        if bool((new == keep).all()):
            break
        keep = new
    return order[keep]


def _per_photo(boxes: torch.Tensor, points: torch.Tensor, img: torch.Tensor, count: int,
               width: int, height: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Final boxes clipped to the photo, dropped if empty (``ops.clip_boxes``), best first;
    split by photo."""
    b, ok = ops.clip_boxes(boxes.detach().cpu().numpy(), width, height)
    p = points.detach().to(torch.float32).cpu().numpy()
    owner = img.cpu().numpy()
    out = []
    for i in range(count):
        sel = np.flatnonzero(ok & (owner == i))
        sel = sel[np.argsort(-b[sel, 4], kind="stable")]
        out.append((b[sel].astype(np.float32), p[sel]))
    return out
