"""Public photos: pof vs the face_recognition library on LFW, in one run.

Needs the set that ``python -m bench make_public_set`` writes under ``bench/work/public/``.

1. Head to head, as the core study (bench/common.py): pof through its command line
   (``pof build``, ``pof search --json``, ``pof verify --pairs``), the peer in-process, on the
   same photos and pinned cores. Per condition (plain, masked, eyeband, small, jpeg_blur, pose):
   rank-1, DIR at pof's own threshold (FPIR target 1%), the peer's DIR at the distance that
   gives the same observed FPIR on the non-enrolled probes and at its usual 0.6, observed vs
   predicted FPIR, fail-to-detect. Verification: LFW View 2 pairs, 10-fold accuracy.
2. Calibration study (pof in-process, the product's own Searcher): galleries of 10, 20, 30 ...
   persons up to the largest the set gives, several random draws each; pof's predicted FPIR
   against the FPIR observed on held-out probes of people not enrolled.
3. Templates: ways to score a person from 5 photos (max, mean2, mean of top 3, mean of all,
   mean descriptor = pof's default fusion "template", quality-weighted mean descriptor):
   rank-1, DIR at an observed FPIR of 1%, and DIR / FPIR at a threshold calibrated the pof way.
4. Experiments (not pof's behaviour; labelled so): enrolling mirrored and synthetically masked
   copies of the gallery photos; DIR and FPIR by estimated yaw and blur (quality gate).

Prints Markdown; writes bench/work/public/results.json (and results.md beside it).

    python -m bench public [--workers 1] [--peer-only | --pof-only] [--no-pairs]
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench import common
from bench.common import (
    Log,
    Peer,
    find_pof,
    fmt,
    ident_metrics,
    peer_verify,
    pof_build,
    pof_search,
    pof_verify,
)
from bench.descriptors import PofFaces, Templates, evaluate_scores, rounded, stack
from bench.harness import (
    PEER_HINT,
    REPO,
    WORK,
    add_cores,
    add_workers,
    commit,
    loadavg,
    machine_info,
    need,
    now,
    parser,
    pin_cores,
    read_csv,
    rel,
    require,
    save,
)

DEFAULT_ROOT = WORK / "public"
CONDITIONS = ["plain", "masked", "eyeband", "small", "jpeg_blur", "pose"]
PEER_TOLERANCE = common.PEER_TOLERANCE
TARGET_FPIR = 0.01
CALIB_DRAWS = 5
SET_FILES = ("gallery.csv", "probes.csv", "nonmated.csv", "calib_gallery.csv", "pairs.csv")


def _score(o: dict, similarity: bool = True) -> float:
    """A probe's top score as a similarity; -inf when nothing was found or scored."""
    s = o.get("score")
    if not o.get("detected") or s is None:
        return -np.inf
    return float(s) if similarity else -float(s)


# ----------------------------------------------------------------------------- studies

def calibration_study(gal_rows, gal_faces, non_faces, fusion: str, draws: int, sizes) -> list:
    """pof's Searcher on random galleries of each size; held-out non-enrolled probes."""
    from pof.evaluation.metrics import wilson_interval
    from pof.matching.search import Gallery, Searcher
    persons = sorted({r["person"] for r in gal_rows})
    rows_of = {p: [i for i, r in enumerate(gal_rows) if r["person"] == p] for p in persons}
    Dg, fg = stack([gal_faces[r["path"]] for r in gal_rows])
    Dn, fn = stack(non_faces)
    out = []
    for size in sizes:
        pred, fm, searches, thr, methods, per_draw = [], 0, 0, [], Counter(), []
        for d in range(draws if size < len(persons) else 1):
            rng = np.random.default_rng(1000 * size + d)
            pick = sorted(rng.choice(len(persons), size, replace=False))
            idx = [i for p in pick for i in rows_of[persons[p]] if fg[i]]
            g = Gallery.from_arrays(Dg[idx], [gal_rows[i]["path"] for i in idx],
                                    [gal_rows[i]["person"] for i in idx])
            s = Searcher(g, target_fpir=TARGET_FPIR, fusion=fusion)
            top = np.where(fn, s.fused(Dn).max(axis=1), -np.inf)
            per_draw.append(round(float((top >= s.calibration.threshold).mean()), 4))
            fm += int((top >= s.calibration.threshold).sum())
            searches += len(top)
            pred.append(s.calibration.fpir())
            thr.append(s.calibration.threshold)
            methods[s.calibration.method] += 1
        obs = fm / searches
        p = float(np.mean(pred))
        lo, hi = wilson_interval(fm, searches)
        if fm == 0:
            verdict = ("below 1/N: cannot tell" if 1 / searches > p / 2 else
                       "observed below half the prediction (0 seen)")
            within = None if 1 / searches > p / 2 else False
        else:
            within = bool(0.5 <= obs / p <= 2.0)
            verdict = "within 2x" if within else ("over 2x" if obs > p else "under 1/2")
        out.append({"persons": size, "draws": len(pred), "searches": searches,
                    "false_matches": fm, "predicted_fpir": round(p, 5),
                    "observed_fpir": round(obs, 5), "observed_ci95": [round(lo, 5), round(hi, 5)],
                    "ratio": None if fm == 0 else round(obs / p, 3), "within_2x": within,
                    "verdict": verdict, "threshold_mean": round(float(np.mean(thr)), 4),
                    "methods": dict(methods), "observed_per_draw": per_draw})
        print(f"  calibration {fusion} {size:4d} persons: predicted {p:.4f} observed {obs:.4f} "
              f"({fm}/{searches})", file=sys.stderr, flush=True)
    return out


def templates_study(gal_rows, gal_faces, probe_rows, probe_faces) -> dict:
    from pof.matching.calibrate import calibrate
    Dg, fg = stack([gal_faces[r["path"]] for r in gal_rows])
    keep = [i for i in range(len(gal_rows)) if fg[i]]
    G = Dg[keep]
    persons = [gal_rows[i]["person"] for i in keep]
    q = np.array([gal_faces[gal_rows[i]["path"]]["quality"] for i in keep])
    res = {}
    for method in Templates.METHODS:
        t = Templates(G, persons, q, method)
        imp, best = t.impostors()
        cal = calibrate(imp, len(t.labels), TARGET_FPIR, best)
        res[method] = {"threshold": round(cal.threshold, 4), "predicted_fpir": round(cal.fpir(), 4),
                       "method": cal.method, "by_condition": {}}
        for c in CONDITIONS + ["overall"]:
            rows = [r for r in probe_rows if c == "overall" or r["condition"] == c]
            Dq, fq = stack([probe_faces[r["path"]] for r in rows])
            S = t.scores(Dq)
            res[method]["by_condition"][c] = evaluate_scores(
                S, fq, [r["person"] for r in rows], [r["role"] for r in rows], t.labels,
                cal.threshold)
    return res


def augmentation_study(root: Path, gal_rows, pof_faces: PofFaces, probe_rows, probe_faces,
                       fr) -> dict:
    """EXPERIMENT: enrol mirrored and synthetically masked copies of the gallery photos."""
    from bench.conditions import apply_mask, find_landmarks, load_rgb, save_png
    from PIL import Image

    from pof.matching.search import Gallery, Searcher
    aug = {"flip": [], "masked": []}
    for r in gal_rows:
        src = root / r["path"]
        rp = Path("aug") / "flip" / Path(r["path"]).relative_to("gallery")
        dst = root / rp
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(src) as im:
                im.transpose(Image.FLIP_LEFT_RIGHT).save(dst, quality=95)
        aug["flip"].append({"path": rp.as_posix(), "person": r["person"]})
        rp = Path("aug") / "masked" / Path(r["path"]).relative_to("gallery").with_suffix(".png")
        dst = root / rp
        if not dst.is_file():
            img = load_rgb(src)
            lm = find_landmarks(fr, img, "center")
            if lm is None:
                continue
            save_png(apply_mask(img, lm), dst)
        aug["masked"].append({"path": rp.as_posix(), "person": r["person"]})
    faces = dict(pof_faces.get([r["path"] for r in gal_rows]))
    for k in aug:
        faces.update(pof_faces.get([r["path"] for r in aug[k]]))
    variants = {"photos only (pof today)": gal_rows,
                "+ mirrored": gal_rows + aug["flip"],
                "+ masked copies": gal_rows + aug["masked"],
                "+ mirrored + masked copies": gal_rows + aug["flip"] + aug["masked"]}
    out = {}
    for name, rows in variants.items():
        D, f = stack([faces[r["path"]] for r in rows])
        idx = [i for i in range(len(rows)) if f[i]]
        g = Gallery.from_arrays(D[idx], [rows[i]["path"] for i in idx],
                                [rows[i]["person"] for i in idx])
        s = Searcher(g, target_fpir=TARGET_FPIR)
        out[name] = {"gallery_faces": len(idx), "threshold": round(s.calibration.threshold, 4),
                     "predicted_fpir": round(s.calibration.fpir(), 4), "by_condition": {}}
        for c in CONDITIONS:
            pr = [r for r in probe_rows if r["condition"] == c]
            Dq, fq = stack([probe_faces[r["path"]] for r in pr])
            S = s.fused(Dq)
            out[name]["by_condition"][c] = evaluate_scores(
                S, fq, [r["person"] for r in pr], [r["role"] for r in pr], g.labels,
                s.calibration.threshold)
    return out


def quality_study(probe_rows, probe_faces, gal_rows, gal_faces) -> dict:
    """DIR / FPIR by estimated |yaw| and blur (what a pose or blur gate would cut)."""
    from pof.matching.search import Gallery, Searcher
    D, f = stack([gal_faces[r["path"]] for r in gal_rows])
    idx = [i for i in range(len(gal_rows)) if f[i]]
    g = Gallery.from_arrays(D[idx], [gal_rows[i]["path"] for i in idx],
                            [gal_rows[i]["person"] for i in idx])
    s = Searcher(g, target_fpir=TARGET_FPIR)
    rows = [r for r in probe_rows if r["condition"] in ("plain", "pose", "jpeg_blur")]
    Dq, _found = stack([probe_faces[r["path"]] for r in rows])
    S = s.fused(Dq)
    top, arg = S.max(axis=1), S.argmax(axis=1)
    t = s.calibration.threshold
    recs = []
    for i, r in enumerate(rows):
        fi = probe_faces[r["path"]]
        if not fi.get("detected"):
            continue
        recs.append({"role": r["role"], "yaw": abs(fi["yaw"]), "blur": fi["blur"],
                     "ok": g.labels[arg[i]] == r["person"], "match": bool(top[i] >= t)})

    def summarise(sel):
        from pof.evaluation.metrics import ident_figures
        m = [x for x in sel if x["role"] == "mated"]
        n = [x for x in sel if x["role"] != "mated"]
        f = ident_figures([{"mated": x["role"] == "mated", "detected": True,
                            "rank": 1 if x["ok"] else 0, "top_ok": bool(x["ok"]),
                            "top_score": -np.inf, "decision_match": x["match"]} for x in sel],
                          max_rank=1)
        return {"mated": len(m), "nonmated": len(n), "rank1": f["rank1"],
                "dir": f["dir_at_threshold"],
                "wrong_match": round(np.mean([(not x["ok"]) and x["match"] for x in m]), 4)
                if m else None,
                "fpir": f["fpir_at_threshold"]}

    yaw_bins = [(0, 15), (15, 30), (30, 45), (45, 60), (60, 90)]
    blur_bins = [(0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)]
    return {"threshold": round(t, 4),
            "yaw": {f"{a}-{b}": summarise([x for x in recs if a <= x["yaw"] < b]) for a, b in yaw_bins},
            "blur": {f"{a}-{b}": summarise([x for x in recs if a <= x["blur"] < b]) for a, b in blur_bins}}


# ----------------------------------------------------------------------------- report

def pct(v):
    return fmt(v)


def markdown(res: dict) -> str:
    L = []
    H = res.get("head_to_head", {})
    if H:
        L.append("### Open-set identification per condition (the face nearest each probe's centre)\n")
        L.append("| condition | mated | nonmated | pof rank-1 | peer rank-1 | pof DIR (own threshold) "
                 "| pof FPIR observed / predicted | peer DIR at pof's observed FPIR | peer DIR / FPIR "
                 "at 0.6 | pof DIR at observed FPIR 1% | peer DIR at observed FPIR 1% "
                 "| fail-to-detect pof / peer |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in CONDITIONS + ["overall"]:
            p = (H.get("pof") or {}).get(c) or {}
            q = (H.get("peer") or {}).get(c) or {}
            L.append(f"| {c} | {p.get('n_mated', q.get('n_mated'))} | "
                     f"{p.get('n_nonmated', q.get('n_nonmated'))} | {pct(p.get('rank1_all'))} | "
                     f"{pct(q.get('rank1_all'))} | **{pct(p.get('dir'))}** | "
                     f"{pct(p.get('fpir'))} / {pct(p.get('predicted_fpir'))} | "
                     f"{pct(q.get('dir_at_matched_fpir'))} (FPIR {pct(q.get('matched_fpir'))}) | "
                     f"{pct(q.get('dir'))} / {pct(q.get('fpir'))} | "
                     f"{pct(p.get('dir_at_observed_fpir_1pct'))} | "
                     f"{pct(q.get('dir_at_observed_fpir_1pct'))} | "
                     f"{pct(p.get('ftd'))} / {pct(q.get('ftd'))} |")
        if res.get("pof", {}).get("threshold") is not None:
            L.append(f"\npof's threshold: score {res['pof']['threshold']} for "
                     f"{res['data']['enrolled_persons']} persons (predicted FPIR "
                     f"{pct(res['pof'].get('predicted_fpir'))}).")
    V = res.get("verify", {})
    if V:
        L.append("\n### Verification (LFW View 2 pairs)\n")
        L.append("| system | pairs | accuracy at own threshold | genuine accept | false accept "
                 "| unscored | 10-fold accuracy | threshold |")
        L.append("|---|---|---|---|---|---|---|---|")
        for s, v in V.items():
            if "accuracy" not in v:
                L.append(f"| {s} | | {v.get('error', 'n/a')} | | | | | |")
                continue
            L.append(f"| {s} | {v['n_pairs']} | {pct(v['accuracy'])} | "
                     f"{pct(v['genuine_accept_rate'])} | {pct(v['false_accept_rate'])} | "
                     f"{v['n_failed']} | **{pct(v.get('accuracy_10fold'))}** | "
                     f"{fmt(v.get('threshold'), pct=False)} |")
    for fusion, C in (res.get("calibration") or {}).items():
        L.append(f"\n### Calibration: predicted vs observed FPIR (fusion {fusion}, target 1%)\n")
        L.append("| persons | draws | non-enrolled searches | false matches | predicted FPIR "
                 "| observed FPIR (95% CI) | per draw min-max | observed / predicted | verdict "
                 "| rule |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in C:
            obs = (f"{100 * r['observed_fpir']:.2f}% ({100 * r['observed_ci95'][0]:.2f}–"
                   f"{100 * r['observed_ci95'][1]:.2f}%)") if r["false_matches"] else \
                f"0 (below 1/{r['searches']})"
            L.append(f"| {r['persons']} | {r['draws']} | {r['searches']} | {r['false_matches']} "
                     f"| {100 * r['predicted_fpir']:.2f}% | {obs} | "
                     f"{100 * min(r['observed_per_draw']):.1f}-{100 * max(r['observed_per_draw']):.1f}% | "
                     f"{'n/a' if r['ratio'] is None else r['ratio']} | {r['verdict']} | "
                     f"{', '.join(r['methods'])} |")
    T = res.get("templates")
    if T:
        L.append("\n### Templates: scoring a person from 5 photos (pof descriptors, in-process)\n")
        L.append("DIR at observed FPIR 1% (threshold set on the non-enrolled probes of that "
                 "condition) / rank-1; last columns: overall DIR and FPIR at the threshold "
                 "calibrated the pof way for that method.\n")
        L.append("| method | " + " | ".join(CONDITIONS) + " | overall | DIR / FPIR at calibrated "
                 "threshold (overall) |")
        L.append("|---" * (len(CONDITIONS) + 3) + "|")
        for m, v in T.items():
            cells = []
            for c in CONDITIONS + ["overall"]:
                b = v["by_condition"][c]
                cells.append(f"{pct(b.get('dir_at_observed_fpir_1pct'))} / {pct(b.get('rank1'))}")
            o = v["by_condition"]["overall"]
            L.append(f"| {m} | " + " | ".join(cells) +
                     f" | {pct(o.get('dir_at_threshold'))} / {pct(o.get('fpir_at_threshold'))} |")
    A = res.get("augmentation")
    if A:
        L.append("\n### EXPERIMENT (not pof's behaviour): enrolling extra copies of gallery "
                 "photos\n")
        L.append("DIR at pof's calibrated threshold / observed FPIR, per condition.\n")
        L.append("| gallery | faces | threshold | " + " | ".join(CONDITIONS) + " |")
        L.append("|---" * (len(CONDITIONS) + 3) + "|")
        for name, v in A.items():
            cells = [f"{pct(v['by_condition'][c].get('dir_at_threshold'))} / "
                     f"{pct(v['by_condition'][c].get('fpir_at_threshold'))}" for c in CONDITIONS]
            L.append(f"| {name} | {v['gallery_faces']} | {v['threshold']} | " + " | ".join(cells) + " |")
    Q = res.get("quality")
    if Q:
        L.append("\n### Quality gate: by estimated yaw and blur (plain, pose, jpeg_blur probes, "
                 "in-process, pof's threshold)\n")
        L.append("| bin | mated | nonmated | rank-1 | DIR | wrong-person match | FPIR |")
        L.append("|---|---|---|---|---|---|---|")
        for kind in ("yaw", "blur"):
            for b, v in Q[kind].items():
                L.append(f"| {kind} {b} | {v['mated']} | {v['nonmated']} | {pct(v['rank1'])} | "
                         f"{pct(v['dir'])} | {pct(v['wrong_match'])} | {pct(v['fpir'])} |")
    return "\n".join(L)


# ----------------------------------------------------------------------------- steps

def load_set(root: Path) -> dict:
    """The set's tables, and what the result records about it."""
    s = {"gal_rows": read_csv(root / "gallery.csv"), "probe_rows": read_csv(root / "probes.csv"),
         "non_rows": read_csv(root / "nonmated.csv"),
         "calib_rows": read_csv(root / "calib_gallery.csv"), "pairs": read_csv(root / "pairs.csv")}
    info = json.loads((root / "set_info.json").read_text()) if (root / "set_info.json").is_file() else {}
    s["probe_paths"] = [rel(root / r["path"]) for r in s["probe_rows"]]
    s["data"] = {"source": info.get("source"), "root": rel(root),
                 "enrolled_persons": len({r["person"] for r in s["gal_rows"]}),
                 "gallery_images": len(s["gal_rows"]),
                 "probes": dict(Counter(f"{r['condition']}/{r['role']}" for r in s["probe_rows"])),
                 "calib_gallery_persons": len({r["person"] for r in s["calib_rows"]}),
                 "calib_nonmated": sum(r["use"] == "calib" for r in s["non_rows"]),
                 "pairs": len(s["pairs"])}
    return s


def records(s: dict, outcomes: dict) -> list[dict]:
    """Per-probe outcomes (by the path passed to the system) joined with probes.csv."""
    return [dict(outcomes[p], person=r["person"], role=r["role"], condition=r["condition"],
                 path=r["path"]) for p, r in zip(s["probe_paths"], s["probe_rows"])]


def by_condition(recs, similarity: bool) -> dict:
    """ident_metrics per condition and overall, with the DIR at an observed FPIR of 1%; the
    scores behind it are kept under _ok, _ms, _ns for match_peer_to_pof."""
    from pof.evaluation.metrics import dir_at, threshold_for_fpir
    out = {}
    for c in CONDITIONS + ["overall"]:
        sub = [r for r in recs if c == "overall" or r["condition"] == c]
        m = ident_metrics(sub)
        mated = [r for r in sub if r["role"] == "mated"]
        non = [r for r in sub if r["role"] == "nonmated"]
        ok = [bool(r["detected"] and r.get("top_person") == r["person"]) for r in mated]
        ms = [_score(r, similarity) for r in mated]
        ns = [_score(r, similarity) for r in non]
        if non:
            t = threshold_for_fpir(ns, TARGET_FPIR)
            m["dir_at_observed_fpir_1pct"] = rounded(dir_at(ok, ms, t))
        out[c] = m
        out[c]["_ok"], out[c]["_ms"], out[c]["_ns"] = ok, ms, ns
    return out


def run_pof(args, root: Path, s: dict, log: Log, res: dict) -> None:
    """pof through its command line: build, search every probe, verify the pairs."""
    base, why = find_pof(args.pof_cmd, log)
    pof: dict = {"command": None if base is None else shlex.join(base)}
    res["pof"] = pof
    if base is None:
        pof["error"] = why
        return
    ds = root / "dataset"
    b = pof_build(base, log, root / "gallery", ds, len(s["gal_rows"]), args.timeout)
    pof["build"] = b
    if b.get("rc") == 0:
        out, info = pof_search(base, log, ds, s["probe_paths"], args.batch, args.timeout)
        pof["search"] = info
        pof["threshold"] = info.get("threshold_median")
        pof["predicted_fpir"] = info.get("fpir_reported_median")
        pof_recs = records(s, out)
        H = res["head_to_head"]
        H["pof"] = by_condition(pof_recs, True)
        for c, m in H["pof"].items():
            fp = [r.get("fpir") for r in pof_recs if (c == "overall" or r["condition"] == c)
                  and r.get("fpir") is not None]
            m["predicted_fpir"] = float(np.median(fp)) if fp else None
            m["quality_too_low"] = sum(1 for r in pof_recs if (c == "overall" or r["condition"] == c)
                                       and r.get("decision") == "quality_too_low")
        pof["per_probe"] = [{k: r.get(k) for k in ("path", "detected", "top_person", "score",
                                                   "decision", "error")} for r in pof_recs]
    else:
        pof["error"] = b.get("error")
    if not args.no_pairs:
        res["verify"]["pof"] = pof_verify(base, log, root / "pairs.csv", root, s["pairs"],
                                          args.timeout)


def reuse_peer(path: Path, s: dict, res: dict) -> None:
    """The peer's outcomes and pair figures from an earlier result of the same set."""
    prev = json.loads(path.read_text())
    res["peer"] = dict(prev["peer"], reused_from=rel(path), reused_started=prev.get("started"))
    got = {o["path"]: o for o in prev["peer"]["per_probe"]}
    peer_recs = records(s, {p: dict(got[r["path"]], failed=False)
                            for p, r in zip(s["probe_paths"], s["probe_rows"])})
    res["head_to_head"]["peer"] = by_condition(peer_recs, False)
    if "peer" in prev.get("verify", {}):
        res["verify"]["peer"] = prev["verify"]["peer"]


def run_peer(args, root: Path, s: dict, res: dict):
    """The peer in-process: build, search, and (unless --no-pairs) the pairs. Returns its
    face_recognition module (the augmentation study draws its landmarks with it)."""
    peer = Peer()
    pr: dict = {"versions": peer.versions}
    res["peer"] = pr
    G, persons, _, binfo = peer.build([(root / r["path"], r["person"]) for r in s["gal_rows"]])
    pr["build"] = binfo
    out, sinfo = peer.search(G, persons, [REPO / p for p in s["probe_paths"]])
    pr["search"] = sinfo
    peer_recs = records(s, {rel(k): v for k, v in out.items()})
    res["head_to_head"]["peer"] = by_condition(peer_recs, False)
    pr["per_probe"] = [{k: r.get(k) for k in ("path", "detected", "top_person", "score",
                                              "match")} for r in peer_recs]
    if not args.no_pairs:
        t0 = time.perf_counter()
        files = sorted({p[k] for p in s["pairs"] for k in ("file_x", "file_y")})
        encs = {f: peer.encode(root / f) for f in files}
        res["verify"]["peer"] = peer_verify(s["pairs"], encs)
        res["verify"]["peer"]["wall_s"] = round(time.perf_counter() - t0, 1)
    return peer.fr


def match_peer_to_pof(H: dict) -> None:
    """The peer's DIR at the distance that gives pof's observed FPIR, per condition; then the
    kept scores are dropped."""
    from pof.evaluation.metrics import dir_at, threshold_for_fpir
    for c, m in (H.get("peer") or {}).items():
        pm = (H.get("pof") or {}).get(c)
        if pm and pm.get("fpir") is not None and m["_ns"]:
            t = threshold_for_fpir(m["_ns"], pm["fpir"])
            m["matched_fpir"] = round(float(np.mean(np.asarray(m["_ns"]) >= t)), 4)
            m["dir_at_matched_fpir"] = rounded(dir_at(m["_ok"], m["_ms"], t))
            m["matched_distance"] = None if not np.isfinite(t) else round(-t, 4)
    for sysname in H:
        for m in H[sysname].values():
            for k in ("_ok", "_ms", "_ns"):
                m.pop(k, None)


def run_inprocess(args, root: Path, s: dict, fr, res: dict) -> None:
    """pof in-process: calibration, templates and the experiments."""
    gal_rows, probe_rows, calib_rows = s["gal_rows"], s["probe_rows"], s["calib_rows"]
    pf = PofFaces(root, args.workers)
    gal_faces = pf.get([r["path"] for r in gal_rows] + [r["path"] for r in calib_rows])
    probe_faces = pf.get([r["path"] for r in probe_rows])
    calib_non = [r for r in s["non_rows"] if r["use"] == "calib"]
    non_faces = pf.get([r["path"] for r in calib_non])
    n_persons = len({r["person"] for r in calib_rows})
    sizes = list(range(10, n_persons + 1, 10))
    if sizes[-1] != n_persons:
        sizes.append(n_persons)
    res["calibration"] = {}
    for fusion in ("template", "max"):
        res["calibration"][fusion] = calibration_study(
            calib_rows, gal_faces, [non_faces[r["path"]] for r in calib_non], fusion,
            args.draws, sizes)
    res["templates"] = templates_study(gal_rows, gal_faces, probe_rows, probe_faces)
    if fr is None:
        import face_recognition as fr
    res["augmentation"] = augmentation_study(root, gal_rows, pf, probe_rows, probe_faces, fr)
    res["quality"] = quality_study(probe_rows, probe_faces, gal_rows, gal_faces)
    res["pof_inprocess"] = {"photos_analysed": pf.analysed, "wall_s": round(pf.wall_s, 1),
                            "descriptor_key": pf.key}


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=None, help="default: ROOT/results.json")
    ap.add_argument("--peer-only", action="store_true")
    ap.add_argument("--pof-only", action="store_true")
    ap.add_argument("--pof-cmd", default=None)
    ap.add_argument("--batch", type=int, default=400, help="probes per pof search call")
    add_workers(ap, help="worker processes of pof's in-process studies (the pof command line "
                         "uses its default, one per core)")
    add_cores(ap)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--no-pairs", action="store_true", help="skip verification pairs")
    ap.add_argument("--draws", type=int, default=CALIB_DRAWS)
    ap.add_argument("--reuse-peer", type=Path, default=None,
                    help="take the peer's per-probe outcomes and pair figures from an earlier "
                         "results.json of the same set (the peer does not change; saves ~15 min)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    out_path = args.out or root / "results.json"
    require([root / p for p in SET_FILES], "run python -m bench make_public_set first")
    need("face_recognition", PEER_HINT)       # the peer, and the masks of the augmentation study
    common.FACE_RULE = "center"      # LFW labels the face at each photo's centre
    t_start = time.perf_counter()
    cores = pin_cores(args.cores)
    log = Log()
    s = load_set(root)
    res: dict = {"benchmark": "public photos",
                 "invocation": shlex.join([sys.executable] + sys.argv),
                 "started": now(), "pof_commit": commit(), "machine": machine_info(cores),
                 "data": s["data"], "head_to_head": {}, "verify": {}}

    if not args.peer_only:
        run_pof(args, root, s, log, res)
    fr = None
    if args.reuse_peer and not args.pof_only:
        reuse_peer(args.reuse_peer, s, res)
    elif not args.pof_only:
        fr = run_peer(args, root, s, res)
    match_peer_to_pof(res["head_to_head"])
    if not args.peer_only:
        run_inprocess(args, root, s, fr, res)

    res["machine"]["loadavg_at_end"] = loadavg()
    res["commands"] = log.commands
    res["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    res["table_md"] = markdown(res)
    save("public", res, res["table_md"], out_path)
    print(res["table_md"])
    print(f"\ntotal wall time {res['total_wall_s']} s on {res['machine']['nproc']} CPU "
          f"({res['machine']['cpu_model']}), pinned to cores {cores}, load average "
          f"{res['machine']['loadavg_at_start']} -> {res['machine']['loadavg_at_end']}; "
          f"results in {rel(out_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
