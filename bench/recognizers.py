"""How much of each recognizer: dlib's ResNet, the second network, and their weighted sum.

pof's default descriptor (embedder ``dlib+mobilefacenet-onnx``; ``dlib+mobileface-onnx`` before
the default) is [sqrt(w) * dlib, sqrt(1 - w) * second] with w = its WEIGHT (0.8), so one inner
product scores w * dlib cosine + (1 - w) * second cosine. This study takes that descriptor
apart (both parts are unit vectors) and puts it back together at other weights, w = 0 (the
second network alone) to 1 (dlib alone), on the same faces:

- the public set (LFW, ``python -m bench make_public_set``): per condition, DIR at an observed FPIR of 1%
  (threshold set on that condition's non-enrolled probes: an oracle, the same for every w) and
  DIR / FPIR at the threshold pof calibrates from the gallery (template fusion, target 1%);
  verification pairs (LFW View 2 folds 1-2), 10-fold accuracy;
- the Yale core set (``python -m bench make_core_set``), which played no part in choosing w: the same.

Descriptors come from pof's own pipeline (cached as the public study caches them,
bench/descriptors.py). Prints Markdown,
writes bench/work/recognizers.json.

    python -m bench recognizers [--workers 2]
    python -m bench recognizers --candidate MODEL.onnx [--mean 127 --std 128] [--name NAME]
    python -m bench recognizers --third

``--third`` measures three networks at once: dlib, MobileFaceNet and MobileFace (the second
network of pof's former default, ``dlib+mobileface-onnx``, whose descriptors it caches in each
set's folder), at the shares of THIRD_WEIGHTS; output bench/work/recognizers_third.json.

``--candidate`` measures a recognizer pof does not ship, in place of the second network, without adding
it to pof: any ONNX model that takes (1 or N, 3, 112, 112) float32 RGB, (pixel - mean) / std,
cut to the ArcFace 5-point template from pof's own landmarks (``pof.stages.embed.mobileface.chip``),
and returns one descriptor per face. Its descriptors are cached in each set's folder under
the model's SHA-256 (``candidate_<sha12>.npz``); the output goes to
bench/work/recognizers_<sha12>.json. A way to judge a model before anyone decides to ship it.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path

import numpy as np

from bench.descriptors import PofFaces, Templates, evaluate_scores, stack
from bench.harness import WORK, add_workers, parser, read_csv, require, save

WEIGHTS = [0.0, 0.5, 0.8, 0.9, 0.93, 0.95, 1.0]
CANDIDATE_WEIGHTS = [0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0]
# --third: (dlib, MobileFaceNet, MobileFace) shares of the score
THIRD_WEIGHTS = [(a, round(1 - a - c, 2), c) for a in (0.7, 0.75, 0.8) for c in (0.0, 0.05, 0.1, 0.15)]
THIRD = "dlib+mobileface-onnx"   # the fused embedder whose second part is the third network
TARGET_FPIR = 0.01
_SESSIONS: dict = {}   # candidate model sessions, one per worker process


def fused_backend():
    """pof's default embedder: dlib + a second network (``pof.stages.embed.mobileface.DlibMobileFace``
    or a subclass), with its WEIGHT and SECOND."""
    from pof.stages.embed import backend
    from pof.settings import SETTINGS
    return backend(next(s.default for s in SETTINGS if s.name == "embedder"))


def split(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dlib and second-network unit vectors inside pof's fused descriptors."""
    w = fused_backend().WEIGHT
    d = D[:, :128] / math.sqrt(w)
    m = D[:, 128:] / math.sqrt(1 - w)
    return d, m


class ThreeParts:
    """dlib's, MobileFaceNet's and MobileFace's unit descriptors of each photo: pof's default
    descriptor and the former default's (``THIRD``) taken apart; ``fused(paths, (a, b, c))``
    scores a x dlib + b x MobileFaceNet + c x MobileFace cosines."""

    def __init__(self, faces: dict[str, dict], third: dict[str, dict]):
        self.faces, self.third = faces, third

    def fused(self, paths: list[str], w: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        from pof.stages.embed import backend
        D, found = stack([self.faces[p] for p in paths])
        T, found3 = stack([self.third[p] for p in paths])
        d, m = split(D)
        f = T[:, 128:] / math.sqrt(1 - backend(THIRD).WEIGHT)
        a, b, c = w
        return (np.hstack([math.sqrt(a) * d, math.sqrt(b) * m, math.sqrt(c) * f]).astype(np.float32),
                found & found3)


class Parts:
    """Per photo, dlib's unit descriptor and a second recognizer's: pof's own (taken out of
    pof's fused descriptor), or a candidate model's (``second``: path -> unit vector or None)."""

    def __init__(self, faces: dict[str, dict], second: dict[str, np.ndarray | None] | None = None):
        self.faces, self.second = faces, second

    def fused(self, paths: list[str], w: float) -> tuple[np.ndarray, np.ndarray]:
        """[sqrt(w) dlib, sqrt(1 - w) second] of each photo (zero rows where nothing was found)."""
        D, found = stack([self.faces[p] for p in paths])
        d, m = split(D)
        if self.second is not None:
            dim = next(v for v in self.second.values() if v is not None).shape[0]
            m = np.stack([self.second.get(p) if self.second.get(p) is not None else np.zeros(dim, np.float32)
                          for p in paths])
            found = found & np.array([self.second.get(p) is not None for p in paths])
        return np.hstack([math.sqrt(w) * d, math.sqrt(1 - w) * m]).astype(np.float32), found


def ident(gal_rows, probe_rows, parts: Parts, conditions, w) -> dict:
    from pof.matching.calibrate import calibrate
    Dg, fg = parts.fused([r["path"] for r in gal_rows], w)
    keep = [i for i in range(len(gal_rows)) if fg[i]]
    G = Dg[keep]
    persons = [gal_rows[i]["person"] for i in keep]
    t = Templates(G, persons, np.ones(len(keep)), "mean_descriptor")
    imp, best = t.impostors()
    # pof's rule: the template from 20 persons, the best image below (fusion "auto")
    if len(t.labels) < 20:
        t = Templates(G, persons, np.ones(len(keep)), "max")
        imp, best = t.impostors()
    cal = calibrate(imp, len(t.labels), TARGET_FPIR, best)
    out = {"threshold": round(cal.threshold, 4), "by_condition": {}}
    for c in conditions + ["overall"]:
        rows = [r for r in probe_rows if c == "overall" or r["condition"] == c]
        Dq, fq = parts.fused([r["path"] for r in rows], w)
        out["by_condition"][c] = evaluate_scores(
            t.scores(Dq), fq, [r["person"] for r in rows], [r["role"] for r in rows],
            t.labels, cal.threshold)
    return out


def pairs_accuracy(pairs, parts: Parts, w) -> float:
    from pof.evaluation.metrics import accuracy_10fold
    X, fx = parts.fused([p["file_x"] for p in pairs], w)
    Y, fy = parts.fused([p["file_y"] for p in pairs], w)
    scores = np.where(fx & fy, (X * Y).sum(axis=1), -np.inf)
    same = np.array([p["Decision"] == "Yes" for p in pairs])
    return round(accuracy_10fold(scores, same), 4)


def _candidate_vec(pipeline, path: str, model: str, mean: float, std: float,
                   rule: str) -> np.ndarray | None:
    """Module-level (pof worker processes): the candidate model's unit descriptor of the
    scored face of a photo (``rule``: "center" or "largest", as descriptors.PofFaces), from pof's
    own detection and landmarks; None if no face."""
    import onnxruntime as ort
    from pof.stages.embed.mobileface import chip
    from pof.pipeline import faces_or_error
    from pof.stages.select import subject
    faces, _err = faces_or_error(pipeline, path)
    if not faces:
        return None
    if model not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        _SESSIONS[model] = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    sess = _SESSIONS[model]
    pixels = pipeline.load(path).pixels
    face = subject(faces, rule, pixels.shape[1], pixels.shape[0])
    x = (chip(pixels, face).astype(np.float32) - mean) / std
    v = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})[0][0]
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def candidate_vectors(root: Path, paths: list[str], model: Path, sha: str, mean: float, std: float,
                      workers: int, rule: str) -> dict[str, np.ndarray | None]:
    """The candidate's descriptor of every photo, cached in ROOT/candidate_<sha12>.npz."""
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import Pipeline
    pipe = Pipeline(attributes="off")
    cache_path = root / f"candidate_{sha[:12]}.npz"
    key = f"{pipe.descriptor_key()}|mean{mean:g}|std{std:g}|face={rule}"
    cache = {}
    if cache_path.is_file():
        z = np.load(cache_path, allow_pickle=True)
        if str(z["key"]) == key:
            cache = z["cache"].item()
    todo = [p for p in dict.fromkeys(paths) if p not in cache]
    if todo:
        print(f"candidate: {len(todo)} photos ...", file=sys.stderr, flush=True)
        jobs = ((str(root / p), str(model), mean, std, rule) for p in todo)
        for p, v in zip(todo, pipeline_map(pipe, _candidate_vec, jobs, workers)):
            cache[p] = v
        tmp = cache_path.with_suffix(".tmp.npz")
        np.savez(tmp, key=key, cache=np.array(cache, dtype=object))
        os.replace(tmp, cache_path)
    return {p: cache[p] for p in paths}


def study(root: Path, gal_rows, conditions, workers: int, candidate=None, rule="center",
          third: bool = False) -> dict:
    """``candidate``: (model path, sha256, mean, std) to measure in place of the second network;
    ``third``: the three-network sweep (THIRD_WEIGHTS) instead."""
    probe_rows = read_csv(root / "probes.csv")
    pairs = read_csv(root / "pairs.csv")
    pf = PofFaces(root, workers, rule)
    name = fused_backend().name
    if not pf.key.split("embedder=")[1].startswith(name + "/"):
        raise SystemExit(f"this study needs pof's default embedder {name}")
    paths = list(dict.fromkeys([r["path"] for r in gal_rows] + [r["path"] for r in probe_rows]
                               + [p[k] for p in pairs for k in ("file_x", "file_y")]))
    second = None
    if candidate is not None:
        model, sha, mean, std = candidate
        second = candidate_vectors(root, paths, model, sha, mean, std, workers, rule)
    parts = Parts(pf.get(paths), second)
    weights = sorted(set(WEIGHTS) | {fused_backend().WEIGHT}) if candidate is None else CANDIDATE_WEIGHTS
    if third:
        parts = ThreeParts(pf.get(paths), PofFaces(root, workers, rule, THIRD).get(paths))
        weights = THIRD_WEIGHTS
    out = {}
    for w in weights:
        res = ident(gal_rows, probe_rows, parts, conditions, w)
        res["pairs_accuracy_10fold"] = pairs_accuracy(pairs, parts, w)
        out[" / ".join(f"{x:g}" for x in w) if third else str(w)] = res
        print(f"  w={w}: done", file=sys.stderr, flush=True)
    return out


def markdown(name: str, res: dict, conditions, second: str, pof_w: float | None) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"
    lines = [f"#### {name}", "",
             "DIR at observed FPIR 1% (oracle) | DIR / FPIR at pof's calibrated threshold", "",
             ("| shares dlib / MobileFaceNet / MobileFace | " if any("/" in w for w in res)
              else "| w (dlib share) | ") + " | ".join(conditions + ["overall"]) + " | pairs 10-fold |",
             "|---" * (len(conditions) + 3) + "|"]
    for w, r in res.items():
        cells = []
        for c in conditions + ["overall"]:
            e = r["by_condition"][c]
            cells.append(f"{pct(e.get('dir_at_observed_fpir_1pct'))} \\| "
                         f"{pct(e.get('dir_at_threshold'))} / {pct(e.get('fpir_at_threshold'))}")
        label = {"0.0": f"0 ({second})", "1.0": "1 (dlib)"}.get(w, w)
        if pof_w is not None and "/" not in w and float(w) == pof_w:
            label = f"**{w} (pof)**"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {pct(r['pairs_accuracy_10fold'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    add_workers(ap)
    ap.add_argument("--candidate", type=Path, help="an ONNX face recognizer to measure in place of the second network")
    ap.add_argument("--mean", type=float, default=127.0, help="candidate input: (pixel - mean) / std")
    ap.add_argument("--std", type=float, default=128.0)
    ap.add_argument("--name", default="candidate", help="the candidate's name in the tables")
    ap.add_argument("--third", action="store_true",
                    help="dlib + MobileFaceNet + MobileFace (pof's former second network) at "
                         "the shares of THIRD_WEIGHTS")
    args = ap.parse_args(argv)
    pub = WORK / "public"
    core = WORK / "core"
    require([pub / "gallery.csv", core / "probes.csv"],
            "run python -m bench make_public_set and python -m bench make_core_set first")
    fb = fused_backend()
    candidate, second, out_name, pof_w = None, fb.SECOND.__name__, "recognizers.json", fb.WEIGHT
    if args.candidate:
        sha = hashlib.sha256(args.candidate.read_bytes()).hexdigest()
        candidate, second = (args.candidate.resolve(), sha, args.mean, args.std), args.name
        pof_w = None
        out_name = f"recognizers_{sha[:12]}.json"
        print(f"candidate {args.candidate} sha256 {sha}", file=sys.stderr)
    if args.third:
        second, out_name, pof_w = "MobileFaceNet + MobileFace", "recognizers_third.json", None
    out = {"second": second, "candidate_sha256": candidate[1] if candidate else None}
    pub_cond = ["plain", "masked", "eyeband", "small", "jpeg_blur", "pose"]
    out["public"] = study(pub, read_csv(pub / "gallery.csv"), pub_cond, args.workers, candidate,
                          third=args.third)
    core_gal = [{"path": str(p.relative_to(core)), "person": p.parent.name}
                for p in sorted((core / "gallery").glob("*/*")) if p.is_file()]
    core_cond = ["plain", "masked", "eyeband", "small", "jpeg_blur"]
    out["core"] = study(core, core_gal, core_cond, args.workers, candidate, rule="largest",
                        third=args.third)
    tables = (markdown("Public set (LFW, 50 enrolled persons)", out["public"], pub_cond, second, pof_w)
              + "\n" + markdown("Yale core set (10 enrolled persons)", out["core"], core_cond, second, pof_w))
    save(out_name[:-len(".json")], out, tables, WORK / out_name)
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
