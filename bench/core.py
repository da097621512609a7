"""Core benchmark: pof vs the face_recognition library, in one run, on the same photos.

Needs the set that ``python -m bench make_core_set`` writes under ``bench/work/core/``.

pof is driven through its command line (README, "Commands") exactly as a user would:
    pof build GALLERY --out DATASET
    pof search DATASET PROBE... --json          (batches of --batch probes per invocation)
    pof verify --pairs PAIRS.csv --root DIR --json   (falls back to: pof eval pairs ... --json)
The peer (face_recognition 1.3.0: dlib HOG detector, upsample 1, + dlib ResNet) runs in-process
with its documented tolerance 0.6 on the euclidean distance.

Writes bench/results/core.json (and core.md) and prints Markdown tables.

    python -m bench core                 # both systems
    python -m bench core --peer-only     # the peer alone
    python -m bench core --pof-only      # pof alone
"""
from __future__ import annotations

import shlex
import sys
import time
from collections import Counter
from pathlib import Path

from bench.common import (
    PEER_TOLERANCE,
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
from bench.harness import (
    PEER_HINT,
    REPO,
    RESULTS,
    WORK,
    add_cores,
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

DEFAULT_ROOT = WORK / "core"
DEFAULT_OUT = RESULTS / "core.json"
CONDITIONS = ["plain", "masked", "eyeband", "small", "jpeg_blur"]
SPEED_TESTS = ("build_small", "search_small", "build_large", "search_large")


def ident_by_condition(recs: list[dict]) -> dict:
    out = {c: ident_metrics([r for r in recs if r["condition"] == c]) for c in CONDITIONS
           if any(r["condition"] == c for r in recs)}
    out["overall"] = ident_metrics(recs)
    return out


# ----------------------------------------------------------------------------- report

def markdown(res: dict) -> str:
    systems = [s for s in ("pof", "peer") if res.get(s)]
    L = []
    L.append("### Open-set identification (largest face per probe)\n")
    L.append("| condition | system | mated | nonmated | rank-1 (detected) | rank-1 (all mated) "
             "| DIR | wrong-person match | FPIR | fail-to-detect |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in CONDITIONS + ["overall"]:
        for s in systems:
            m = (res[s].get("ident") or {}).get(c)
            if not m:
                L.append(f"| {c} | {s} | | | {res[s].get('error', 'n/a')} | | | | | |")
                continue
            extra = f" ({m['n_failed']} errored)" if m.get("n_failed") else ""
            L.append(f"| {c} | {s} | {m['n_mated']} | {m['n_nonmated']} | "
                     f"{fmt(m['rank1_detected'])} | {fmt(m['rank1_all'])} | {fmt(m['dir'])} | "
                     f"{fmt(m['mated_wrong_match'])} | {fmt(m['fpir'])} | "
                     f"{fmt(m['ftd'])}{extra} |")
    if (res.get("pof") or {}).get("search_threshold") is not None:
        L.append(f"\npof search decision threshold (median over faces): "
                 f"{res['pof']['search_threshold']}, reported FPIR target "
                 f"{res['pof'].get('search_fpir_target')}; peer: distance <= {PEER_TOLERANCE}")
    L.append("\n### Verification pairs\n")
    L.append("| system | pairs | accuracy | accuracy (scored pairs) | genuine accept | "
             "false accept | unscored | threshold | 10-fold accuracy (LFW protocol) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for s in systems:
        v = res[s].get("verify") or {}
        if "accuracy" not in v:
            L.append(f"| {s} | | {v.get('error', 'n/a')} | | | | | | |")
            continue
        L.append(f"| {s} | {v['n_pairs']} | {fmt(v['accuracy'])} | "
                 f"{fmt(v['accuracy_scored_pairs'])} | {fmt(v['genuine_accept_rate'])} | "
                 f"{fmt(v['false_accept_rate'])} | {v['n_failed']} | "
                 f"{fmt(v.get('threshold'), pct=False)} | {fmt(v.get('accuracy_10fold'))} |")
    L.append("\n### Speed (same run, same cores)\n")
    L.append("| test | pof | peer | pof/peer |")
    L.append("|---|---|---|---|")
    for key, label, unit in [("build_small", "build, core gallery", "faces/s"),
                             ("search_small", "search, core probes", "searches/s"),
                             ("build_large", "build, all Yale images", "faces/s"),
                             ("search_large", "search, core probes, one pof call", "searches/s")]:
        sp = res.get("speed", {}).get(key, {})
        field = "faces_per_s" if "faces" in unit else "searches_per_s"
        a = (sp.get("pof") or {}).get(field)
        b = (sp.get("peer") or {}).get(field)
        na = (sp.get("pof") or {}).get("images_in") or (sp.get("pof") or {}).get("probes")
        nb = (sp.get("peer") or {}).get("images_in") or (sp.get("peer") or {}).get("probes")
        ratio = sp.get("ratio_pof_over_peer")
        L.append(f"| {label} | {fmt(a, False)} {unit} (n={na}) | {fmt(b, False)} {unit} "
                 f"(n={nb}) | {'n/a' if ratio is None else f'{ratio:.2f}'} |")
    sl = res.get("speed", {}).get("pof_search_steady")
    if sl:
        L.append(f"\npof search fixed cost (one probe, incl. model load): "
                 f"{sl.get('one_probe_wall_s')} s; steady-state rate excluding it: "
                 f"{fmt(sl.get('steady_searches_per_s'), False)} searches/s")
    return "\n".join(L)


# ----------------------------------------------------------------------------- steps

def load_set(root: Path) -> dict:
    """The set's probes, pairs, gallery and all-images lists, and what the result records."""
    s = {"probes_rows": read_csv(root / "probes.csv"), "pairs": read_csv(root / "pairs.csv"),
         "gallery": sorted((p, p.parent.name) for p in (root / "gallery").glob("*/*") if p.is_file()),
         "allset": sorted((p, p.parent.name) for p in (root / "all").glob("*/*") if p.is_file())}
    s["probe_paths"] = [rel(root / r["path"]) for r in s["probes_rows"]]
    s["data"] = dict(gallery_images=len(s["gallery"]),
                     gallery_persons=len({g[1] for g in s["gallery"]}),
                     all_images=len(s["allset"]), probes=len(s["probes_rows"]),
                     probes_by_role=dict(Counter(r["role"] for r in s["probes_rows"])),
                     conditions=CONDITIONS, pairs=len(s["pairs"]))
    return s


def records(s: dict, outcomes: dict) -> list[dict]:
    """Per-probe outcomes (by the path passed to the system) joined with probes.csv."""
    return [dict(outcomes[p], person=r["person"], role=r["role"], condition=r["condition"],
                 path=r["path"]) for p, r in zip(s["probe_paths"], s["probes_rows"])]


def run_pof(args, root: Path, s: dict, log: Log, res: dict, speed: dict) -> None:
    """pof through its command line: build, search, verify; then the large-set speed tests."""
    base, why = find_pof(args.pof_cmd, log)
    pof: dict = {"command": None if base is None else shlex.join(base)}
    res["pof"] = pof
    if base is None:
        pof["error"] = f"pof CLI not available: {why}"
        print(f"pof: {pof['error']}", file=sys.stderr)
        return
    print(f"pof: {shlex.join(base)}", file=sys.stderr)
    probe_paths = s["probe_paths"]
    ds = root / "dataset"
    b = pof_build(base, log, root / "gallery", ds, len(s["gallery"]), args.timeout)
    speed["build_small"]["pof"] = b
    if b.get("rc") != 0:
        pof["error"] = f"pof build failed: {b.get('error', '')[-300:]}"
    else:
        out, info = pof_search(base, log, ds, probe_paths, args.batch, args.timeout)
        speed["search_small"]["pof"] = info
        pof["search"] = info
        recs = records(s, out)
        pof["ident"] = ident_by_condition(recs)
        pof["search_threshold"] = info.get("threshold_median")
        pof["search_fpir_target"] = info.get("fpir_reported_median")
        pof["per_probe"] = [{k: r.get(k) for k in ("path", "detected", "top_person",
                                                   "score", "match", "error")}
                            for r in recs]
    pof["verify"] = pof_verify(base, log, root / "pairs.csv", root, s["pairs"], args.timeout)
    if not args.no_large:
        pof_large(args, root, s, base, log, speed)


def pof_large(args, root: Path, s: dict, base, log: Log, speed: dict) -> None:
    """pof on every image: build, one search call over all probes, and one of a single probe
    (the fixed cost of a call)."""
    probe_paths = s["probe_paths"]
    dsl = root / "dataset_all"
    bl = pof_build(base, log, root / "all", dsl, len(s["allset"]), args.timeout)
    speed["build_large"]["pof"] = bl
    if bl.get("rc") != 0:
        return
    _, info = pof_search(base, log, dsl, probe_paths, len(probe_paths),
                         args.timeout, "pof search, one call")
    speed["search_large"]["pof"] = info
    _, one = pof_search(base, log, dsl, probe_paths[:1], 1, args.timeout,
                        "pof search, one probe")
    steady = None
    if info["wall_s"] and one["wall_s"] and info["wall_s"] > one["wall_s"]:
        steady = round((len(probe_paths) - 1) / (info["wall_s"] - one["wall_s"]), 3)
    speed["pof_search_steady"] = {"one_probe_wall_s": one["wall_s"],
                                  "steady_searches_per_s": steady}


def run_peer(args, root: Path, s: dict, res: dict, speed: dict) -> None:
    """The peer in-process: the core gallery and probes, then every image (the large
    gallery, whose encodings also serve the verification pairs)."""
    probe_paths = s["probe_paths"]
    peer = Peer()
    pr: dict = {"import_s": peer.import_s, "versions": peer.versions}
    res["peer"] = pr
    G, persons, _, binfo = peer.build(s["gallery"])
    speed["build_small"]["peer"] = binfo
    out, sinfo = peer.search(G, persons, [REPO / p for p in probe_paths])
    speed["search_small"]["peer"] = sinfo
    pr["search"] = sinfo
    recs = records(s, {rel(k): v for k, v in out.items()})
    pr["ident"] = ident_by_condition(recs)
    pr["per_probe"] = [{k: r.get(k) for k in ("path", "detected", "top_person", "score",
                                              "match")} for r in recs]
    GL, personsL, per_file, blinfo = peer.build(s["allset"])
    speed["build_large"]["peer"] = blinfo
    encs = {p.relative_to(root).as_posix(): e for p, e in per_file.items()}
    pr["verify"] = peer_verify(s["pairs"], encs)
    if not args.no_large:
        _, slinfo = peer.search(GL, personsL, [REPO / p for p in probe_paths])
        speed["search_large"]["peer"] = slinfo


def speed_ratios(speed: dict) -> None:
    for k, sp in speed.items():
        a, b = sp.get("pof") or {}, sp.get("peer") or {}
        f = "faces_per_s" if k.startswith("build") else "searches_per_s"
        if a.get(f) and b.get(f):
            sp["ratio_pof_over_peer"] = round(a[f] / b[f], 3)


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--peer-only", action="store_true", help="skip pof")
    ap.add_argument("--pof-only", action="store_true", help="skip the peer")
    ap.add_argument("--pof-cmd", default=None,
                    help="command that runs pof (default: python -m pof, else `pof`)")
    ap.add_argument("--batch", type=int, default=100, help="probes per pof search call")
    add_cores(ap)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per pof command")
    ap.add_argument("--no-large", action="store_true", help="skip the large-set speed tests")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    root = args.root.resolve()
    require([root / "gallery", root / "all", root / "probes.csv", root / "pairs.csv"],
            "run python -m bench make_core_set first")
    if not args.pof_only:
        need("face_recognition", PEER_HINT)
    cores = pin_cores(args.cores)
    log = Log()
    s = load_set(root)
    res: dict = {"benchmark": "core",
                 "invocation": shlex.join([sys.executable] + sys.argv),
                 "started": now(), "machine": machine_info(cores),
                 "data": {"source": "The Yale Face Database (Belhumeur, Hespanha, Kriegman "
                                    "1997)", "root": rel(root), **s["data"]},
                 "peer_rule": {"detector": "dlib HOG, upsample 1", "encoder": "dlib ResNet "
                               "(face_recognition.face_encodings)", "tolerance": PEER_TOLERANCE,
                               "identification": "nearest gallery encoding, match if "
                                                 "distance <= tolerance"}}
    speed: dict = {k: {} for k in SPEED_TESTS}
    res["speed"] = speed

    if not args.peer_only:
        run_pof(args, root, s, log, res, speed)
    if not args.pof_only:
        run_peer(args, root, s, res, speed)
    speed_ratios(speed)

    res["machine"]["loadavg_at_end"] = loadavg()
    res["commands"] = log.commands
    res["total_wall_s"] = round(time.perf_counter() - t_start, 1)
    res["table_md"] = markdown(res)
    save("core", res, res["table_md"], args.out)
    print(res["table_md"])
    print(f"\ntotal wall time {res['total_wall_s']} s on {res['machine']['nproc']} CPU "
          f"({res['machine']['cpu_model']}), pinned to cores {cores}, load average "
          f"{res['machine']['loadavg_at_start']} -> {res['machine']['loadavg_at_end']}; "
          f"results in {rel(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
