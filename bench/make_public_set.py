"""Build the public-photo benchmark set from Labeled Faces in the Wild.

Data: LFW, deep-funneled version (Huang, Ramesh, Berg, Learned-Miller 2007; deep funneling:
Huang, Mattar, Lee, Learned-Miller 2012), 13,233 news photos of 5,749 people, 250 x 250 JPEG,
folders ``PERSON/PERSON_NNNN.jpg``. The images are not in this repository (LFW is not ours to
redistribute): ``bench/public/files.csv`` lists every file the benchmark uses with its SHA-256,
and this script checks them before it writes anything. See bench/README.md for where to get the
images.

    python -m bench make_public_set --lfw DIR            # verify files.csv, write the set
    python -m bench make_public_set --lfw DIR --select   # (re)choose the files: analyse LFW
                                                         # with pof, write bench/public/files.csv

Writes under ``bench/work/public/`` (ignored by git):

  lfw/PERSON/FILE.jpg        copies of the listed LFW files (verified)
  gallery/PERSON/FILE.jpg    the enrolled persons' gallery images (5 near-frontal photos each)
  probes/COND/PERSON/FILE    probes, COND in plain, masked, eyeband, small, jpeg_blur, pose:
                             mated = enrolled persons, their other photos; nonmated = people not
                             enrolled (one photo each). The synthetic conditions are made from
                             the plain photos as in the core set (bench/conditions.py); ``pose``
                             are real photos whose head is turned by at least 45 degrees (yaw
                             estimated by pof's quality stage at selection time). Every face
                             used is the one nearest the photo's centre, the person LFW
                             labels; gallery photos are those where it is also the largest.
  gallery.csv                path,person (paths relative to bench/work/public)
  probes.csv                 path,person,role,condition
  nonmated.csv               path,person,use: the held-out non-enrolled probes (calibration
                             study: ``calib``; identification probes: ``ident``)
  calib_gallery.csv          path,person: the largest gallery (5 near-frontal photos of every
                             LFW person who has 5 and one more photo), for the calibration study
  pairs.csv                  file_x,file_y,Decision,fold: LFW View 2 pairs (pairs.txt), the
                             first --pair-folds folds
  landmarks.csv, set_info.json, probes_sheet.png   as in the core set
"""
from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from bench.conditions import contact_sheet, find_landmarks, load_rgb, save_condition
from bench.harness import (
    BENCH,
    PEER_HINT,
    WORK,
    add_workers,
    need,
    parser,
    read_csv,
    require,
    write_csv,
)

DEFAULT_LFW = Path("/work/data/public/lfw_deepfunneled")
DEFAULT_OUT = WORK / "public"
FILES_CSV = BENCH / "public" / "files.csv"
CONDITIONS = ["plain", "masked", "eyeband", "small", "jpeg_blur", "pose"]
SYNTHETIC = ["masked", "eyeband", "small", "jpeg_blur"]

SEED = 3
GALLERY_PER_PERSON = 5
ENROLLED = 50                 # persons enrolled in the head-to-head benchmark
MATED_PER_PERSON = 4          # plain (and synthetic) mated probes per enrolled person, at most
POSE_PER_PERSON = 8           # pose probes per enrolled person, at most
NONMATED_IDENT = 250          # non-enrolled probes per condition in the head-to-head benchmark
NONMATED_CALIB = 1000         # held-out non-enrolled probes for the calibration study
NONMATED_POSE = 120           # turned-head photos of people not enrolled
SINGLES_ANALYSED = 1400       # one-photo people analysed at selection time
POSE_MIN_YAW = 45.0
FRONTAL_MAX = 25.0            # |yaw| and |pitch| of a gallery photo, at most
PAIR_FOLDS = 2


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def lfw_people(lfw: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f"{d.name}/{f.name}" for f in d.glob("*.jpg"))
            for d in sorted(lfw.iterdir()) if d.is_dir()}


def read_pairs(pairs_txt: Path, folds: int) -> list[tuple[str, str, str, int]]:
    """LFW View 2 pairs.txt: first line "10 300", then per fold 300 matched ("name i j") and
    300 mismatched ("name1 i name2 j") lines."""
    lines = pairs_txt.read_text().split("\n")
    nf, n = (int(x) for x in lines[0].split())
    out, k = [], 1
    f = lambda name, i: f"{name}/{name}_{int(i):04d}.jpg"
    for fold in range(min(folds, nf)):
        for _ in range(n):
            a = lines[k].split()
            out.append((f(a[0], a[1]), f(a[0], a[2]), "Yes", fold + 1))
            k += 1
        for _ in range(n):
            a = lines[k].split()
            out.append((f(a[0], a[1]), f(a[2], a[3]), "No", fold + 1))
            k += 1
    return out


# ----------------------------------------------------------------------------- selection

def _analyse(pipeline, path: str) -> dict:
    """Module-level (runs in pof's worker processes): pose and quality of the face nearest the
    photo's centre, the one LFW labels (a larger face beside it is someone else's), and
    whether it is also the largest (what `pof build` enrols from a labelled photo)."""
    from pof.pipeline import faces_or_error
    from pof.stages.select import central, largest
    faces, _err = faces_or_error(pipeline, path)
    if not faces:
        return {"detected": False}
    from PIL import Image
    with Image.open(path) as im:
        f = central(faces, *im.size)
    return {"detected": True, "yaw": f.pose.yaw, "pitch": f.pose.pitch,
            "interocular": round(f.interocular, 1), "blur": f.blur, "quality": f.quality,
            "largest": f is largest(faces)}


def select(lfw: Path, pairs_txt: Path, workers: int, pair_folds: int) -> list[dict]:
    """Choose the files (deterministic given LFW and pof's pose estimates)."""
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import Pipeline

    people = lfw_people(lfw)
    rng = random.Random(SEED)
    multi = [p for p, fs in people.items() if len(fs) >= GALLERY_PER_PERSON + 1]
    singles = sorted(p for p, fs in people.items() if len(fs) == 1)
    singles = rng.sample(singles, SINGLES_ANALYSED)
    todo = [f for p in multi for f in people[p]] + [people[p][0] for p in singles]
    print(f"analysing {len(todo)} photos ({len(multi)} persons with >= "
          f"{GALLERY_PER_PERSON + 1} photos, {len(singles)} one-photo persons) ...", flush=True)
    info = {}
    for i, (f, r) in enumerate(zip(todo, pipeline_map(Pipeline(), _analyse,
                                                      ((str(lfw / f),) for f in todo), workers))):
        info[f] = r
        if (i + 1) % 500 == 0:
            print(f"  {i + 1}/{len(todo)}", flush=True)

    def yaw(f):
        r = info.get(f, {})
        return abs(r["yaw"]) if r.get("detected") else None

    def frontal(f):   # a gallery photo: near-frontal, and pof build enrols the labelled face
        r = info.get(f, {})
        return (r.get("detected") and abs(r["yaw"]) < FRONTAL_MAX and abs(r["pitch"]) < FRONTAL_MAX
                and r["largest"])

    def turned(f):
        y = yaw(f)
        return y is not None and y >= POSE_MIN_YAW

    rows: dict[str, dict] = {}

    def use(f, what):
        r = rows.setdefault(f, {"path": f, "person": f.split("/")[0], "uses": [],
                                "yaw": "" if yaw(f) is None else info[f]["yaw"]})
        if what not in r["uses"]:
            r["uses"].append(what)

    # persons who can be enrolled: 5 near-frontal photos and at least one more photo
    eligible = [p for p in multi if sum(frontal(f) for f in people[p]) >= GALLERY_PER_PERSON]
    gal = {}
    for p in eligible:
        fr = [f for f in people[p] if frontal(f)]
        gal[p] = sorted(random.Random(f"{SEED}{p}").sample(fr, GALLERY_PER_PERSON))
    # enrolled: persons with turned-head photos first (most first), then a seeded draw
    n_turned = {p: sum(turned(f) for f in people[p] if f not in gal[p]) for p in eligible}
    with_pose = sorted([p for p in eligible if n_turned[p]], key=lambda p: (-n_turned[p], p))
    rest = [p for p in eligible if not n_turned[p]]
    enrolled = with_pose[:ENROLLED]
    enrolled += rng.sample(rest, max(0, ENROLLED - len(enrolled)))
    enrolled = sorted(enrolled)
    for p in eligible:                                   # the calibration study's gallery
        for f in gal[p]:
            use(f, "calib_gallery")
    for p in enrolled:
        for f in gal[p]:
            use(f, "gallery")
        others = [f for f in people[p] if f not in gal[p]]
        plain = [f for f in others if not turned(f)]
        for f in sorted(random.Random(f"{SEED}m{p}").sample(plain, min(MATED_PER_PERSON,
                                                                        len(plain)))):
            use(f, "mated")
        pose = [f for f in others if turned(f)]
        for f in sorted(random.Random(f"{SEED}p{p}").sample(pose, min(POSE_PER_PERSON,
                                                                       len(pose)))):
            use(f, "pose_mated")
    # not enrolled anywhere: one-photo people (held out from every gallery)
    single_files = [people[p][0] for p in singles]
    plain_singles = [f for f in single_files if not turned(f)]
    for f in plain_singles[:NONMATED_CALIB]:
        use(f, "calib_nonmated")
    for f in plain_singles[:NONMATED_IDENT]:
        use(f, "nonmated")
    # turned heads of people not enrolled in the head-to-head benchmark (one photo a person)
    pose_non = []
    for p in sorted(set(multi) - set(enrolled)) + singles:
        t = [f for f in people[p] if turned(f)]
        if t:
            pose_non.append(min(t))
    for f in sorted(random.Random(f"{SEED}pn").sample(pose_non, min(NONMATED_POSE,
                                                                     len(pose_non)))):
        use(f, "pose_nonmated")
    for a, b, _d, _fold in read_pairs(pairs_txt, pair_folds):
        use(a, "pair")
        use(b, "pair")
    print(f"eligible persons: {len(eligible)}; enrolled: {len(enrolled)} "
          f"({len(with_pose)} eligible persons have turned-head photos); "
          f"turned-head photos of others: {len(pose_non)}")
    return [rows[f] for f in sorted(rows)]


# ----------------------------------------------------------------------------- set

def write_selection(args, lfw: Path) -> None:
    """Choose the files anew with pof and write files.csv and the pairs beside it."""
    pairs_txt = args.pairs_txt or lfw.parent / "lfw_pairs.txt"
    rows = select(lfw, pairs_txt, args.workers, args.pair_folds)
    for r in rows:
        r["sha256"] = sha256(lfw / r["path"])
    pairs = read_pairs(pairs_txt, args.pair_folds)
    args.files.parent.mkdir(parents=True, exist_ok=True)
    with open(args.files, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "sha256", "person", "uses", "yaw"])
        for r in rows:
            w.writerow([r["path"], r["sha256"], r["person"], ";".join(r["uses"]), r["yaw"]])
    with open(args.files.with_name("pairs.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_x", "file_y", "Decision", "fold"])
        w.writerows(pairs)
    print(f"wrote {args.files} ({len(rows)} files) and {args.files.with_name('pairs.csv')}")


def verify_files(files: list[dict], lfw: Path, listed: Path) -> bool:
    """Every listed file present with its SHA-256; prints what is not."""
    bad = []
    for r in files:
        p = lfw / r["path"]
        if not p.is_file():
            bad.append(f"{r['path']}: missing")
        elif sha256(p) != r["sha256"]:
            bad.append(f"{r['path']}: SHA-256 differs")
    if bad:
        print(f"error: {len(bad)} of {len(files)} listed files missing or different, e.g.\n  "
              + "\n  ".join(bad[:10]), file=sys.stderr)
        return False
    print(f"verified {len(files)} files against {listed}")
    return True


def copy_files(files: list[dict], lfw: Path, out: Path) -> tuple[dict, list[dict]]:
    """The listed files under lfw/, the enrolled gallery under gallery/, and the gallery,
    calibration and non-enrolled tables; returns (files by use, gallery rows)."""
    uses = defaultdict(list)
    for r in files:
        for u in r["uses"].split(";"):
            uses[u].append(r)
        dst = out / "lfw" / r["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw / r["path"], dst)
    gal_rows = []
    for r in uses["gallery"]:
        dst = out / "gallery" / r["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw / r["path"], dst)
        gal_rows.append({"path": f"gallery/{r['path']}", "person": r["person"]})
    write_csv(out / "gallery.csv", gal_rows, ["path", "person"])
    write_csv(out / "calib_gallery.csv",
              [{"path": f"lfw/{r['path']}", "person": r["person"]} for r in uses["calib_gallery"]],
              ["path", "person"])
    write_csv(out / "nonmated.csv",
              [{"path": f"lfw/{r['path']}", "person": r["person"], "use": u}
               for u, key in (("calib", "calib_nonmated"), ("ident", "nonmated"))
               for r in uses[key]], ["path", "person", "use"])
    return uses, gal_rows


def landmarks(uses: dict, lfw: Path, fr) -> tuple[dict, dict]:
    """68 landmarks of the face nearest each plain probe's centre; where dlib finds none, the
    median of the others (deep-funneled photos are aligned alike). Returns (landmarks, source)."""
    lms, lm_src = {}, {}
    for r in uses["mated"] + uses["nonmated"]:
        lms[r["path"]] = find_landmarks(fr, load_rgb(lfw / r["path"]), "center")
    found = [v for v in lms.values() if v is not None]
    median = np.median(np.stack(found), axis=0)
    for k, v in lms.items():
        lm_src[k] = "dlib" if v is not None else f"fallback_median_of_{len(found)}_images"
        if v is None:
            lms[k] = median
    return lms, lm_src


def write_probes(uses: dict, lms: dict, lm_src: dict, lfw: Path, out: Path) -> list[dict]:
    """Plain and synthetic probes from the same photos, pose probes from turned-head photos;
    probes.csv and landmarks.csv. Returns probes.csv's rows."""
    plain_src = [(r, "mated") for r in uses["mated"]] + [(r, "nonmated") for r in uses["nonmated"]]
    rows = []
    for r, role in plain_src:
        img, lm = load_rgb(lfw / r["path"]), lms[r["path"]]
        stem = Path(r["path"]).stem
        for cond in CONDITIONS[:-1]:
            ext = "jpg" if cond in ("plain", "jpeg_blur") else "png"
            rp = Path("probes") / cond / r["person"] / f"{stem}.{ext}"
            dst = out / rp
            dst.parent.mkdir(parents=True, exist_ok=True)
            if cond == "plain":
                shutil.copyfile(lfw / r["path"], dst)       # the original bytes
            else:
                save_condition(img, lm, cond, dst)
            rows.append({"path": rp.as_posix(), "person": r["person"], "role": role,
                         "condition": cond})
    for key, role in (("pose_mated", "mated"), ("pose_nonmated", "nonmated")):
        for r in uses[key]:
            rp = Path("probes") / "pose" / r["person"] / Path(r["path"]).name
            (out / rp).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lfw / r["path"], out / rp)
            rows.append({"path": rp.as_posix(), "person": r["person"], "role": role,
                         "condition": "pose"})
    write_csv(out / "probes.csv", rows, ["path", "person", "role", "condition"])
    write_csv(out / "landmarks.csv", [{"image": k, "landmarks": v} for k, v in lm_src.items()],
              ["image", "landmarks"])
    return rows


def write_pairs(listed: Path, out: Path) -> list[dict]:
    """LFW View 2 pairs (pairs.txt), the first folds, as paths under lfw/."""
    pairs = read_csv(listed.with_name("pairs.csv"))
    write_csv(out / "pairs.csv", [{"file_x": f"lfw/{p['file_x']}", "file_y": f"lfw/{p['file_y']}",
                                   "Decision": p["Decision"], "fold": p["fold"]} for p in pairs],
              ["file_x", "file_y", "Decision", "fold"])
    return pairs


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW,
                    help="folder of LFW deep-funneled images, PERSON/PERSON_NNNN.jpg")
    ap.add_argument("--pairs-txt", type=Path, default=None,
                    help="LFW pairs.txt (only with --select; default: LFW/../lfw_pairs.txt)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--files", type=Path, default=FILES_CSV)
    ap.add_argument("--select", action="store_true",
                    help="choose the files anew with pof (writes --files)")
    add_workers(ap)
    ap.add_argument("--pair-folds", type=int, default=PAIR_FOLDS)
    args = ap.parse_args(argv)
    lfw, out = args.lfw.resolve(), args.out
    require([lfw], "LFW deep-funneled is needed (--lfw DIR; see bench/README.md)")
    need("face_recognition", PEER_HINT)        # its landmarks place the masks and eye bands
    if args.select:
        write_selection(args, lfw)
    files = read_csv(args.files)
    if not verify_files(files, lfw, args.files):
        return 1

    import face_recognition as fr  # landmarks for the synthetic conditions (as the core set)

    for sub in ("lfw", "gallery", "probes", "dataset"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    uses, gal_rows = copy_files(files, lfw, out)
    lms, lm_src = landmarks(uses, lfw, fr)
    rows = write_probes(uses, lms, lm_src, lfw, out)
    pairs = write_pairs(args.files, out)

    by = Counter((r["condition"], r["role"]) for r in rows)
    info = {"source": "Labeled Faces in the Wild, deep-funneled (UMass Amherst), copy in "
                      "github.com/umass-vis-lfw/umass-vis-lfw.github.io images_deepfunneled/",
            "lfw": str(lfw), "files": len(files), "gallery_images": len(gal_rows),
            "enrolled_persons": len({r["person"] for r in gal_rows}),
            "calib_gallery_persons": len({r["person"] for r in uses["calib_gallery"]}),
            "calib_nonmated": len(uses["calib_nonmated"]),
            "probes": {f"{c}/{ro}": n for (c, ro), n in sorted(by.items())},
            "pairs": len(pairs), "landmark_fallbacks": sum(v != "dlib" for v in lm_src.values()),
            "pose_min_yaw": POSE_MIN_YAW, "seed": SEED}
    (out / "set_info.json").write_text(json.dumps(info, indent=1))
    sheet_rows = [r for r in rows if r["condition"] != "pose"]
    contact_sheet(out, sheet_rows, out / "probes_sheet.png",
                  extra=[Path(k).stem for k, v in lm_src.items() if v != "dlib"][:2],
                  conditions=CONDITIONS[:-1])
    pose_sheet(out, [r for r in rows if r["condition"] == "pose"], out / "pose_sheet.png")
    print(json.dumps(info, indent=1))
    return 0


def pose_sheet(root: Path, rows: list[dict], out: Path, cols: int = 16) -> None:
    """Every pose probe, small, for a visual check of the yaw estimates."""
    from PIL import Image
    if not rows:
        return
    cell = 96
    n_rows = (len(rows) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, n_rows * cell), "white")
    for i, r in enumerate(rows):
        with Image.open(root / r["path"]) as im:
            sheet.paste(im.convert("RGB").resize((cell - 2, cell - 2)),
                        ((i % cols) * cell, (i // cols) * cell))
    sheet.save(out)


if __name__ == "__main__":
    sys.exit(main())
