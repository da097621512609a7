"""Validate pof's attribute scores against hand labels (bench/attributes/labels.csv).

    python -m bench attributes                 # per-attribute accuracy table (Markdown)
    python -m bench attributes --write         # ... and pof/stages/attributes/validation.json
    python -m bench attributes --sheets DIR    # contact sheets of the labelled crops
    python -m bench attributes --set lfw [--write] [--sheets DIR]   # the LFW colour set

Two labelled sets. ``core`` (bench/attributes/labels.csv) is described next. ``lfw``
(bench/attributes/labels_lfw.csv) holds 198 LFW deep-funneled colour photos of 184 people,
labelled for hair colour, baldness, hats, facial hair and the forehead; each row names the
file by its path under ``--lfw`` and its SHA-256 (checked), and the face is the one nearest
the image's centre. It validates the ``regions`` estimator: its thresholds were set on the
rows before TUNING_END_LFW (by name), so "held out" there is the rows from it on. With
``--write``, each set writes only its own attributes into validation.json (lfw: those the
``regions`` estimator scores; core: the rest).

Images (none are committed; see bench/attributes/CREDITS.md): the Yale Face Database
(``--yale``, default /work/shared/testdata/yalefaces; byte-identical copies dropped), pof's
demo photos, and official White House photos from the face_recognition repository
(``--extra``, default bench/work/attributes/extra: ``git show`` them out of
ageitgey/face_recognition at the commit named in CREDITS.md). Each label row names its image
(``yale:NAME``, ``demo:PATH``, ``fr:FILE``), the centre of the face's box in it (x, y, source
pixels) and a variant: empty, or "blur" (the photo blurred, labelled Blurry by construction).

A score of 0.5 or more counts as "has the attribute". Per attribute the table gives the
labelled faces with and without it, accuracy, balanced accuracy (the mean of the recall on
both sides: 0.5 is chance whatever the balance) and the majority-class rate (what always
answering the commoner label would score). Timing: ms per face of each estimator, batch 1,
one thread. "held out": the balanced accuracy without Yale subjects 01-05, on which the
thresholds of the pixel measures were set.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from pof import Pipeline
from pof.stages.attributes import ESTIMATORS, FaceView, AttributeStage
from pof.stages.attributes.card import VALIDATION, judge

from bench.harness import BENCH, DEMO, REPO, WORK, parser, require, save

LABELS = BENCH / "attributes" / "labels.csv"
LABELS_LFW = BENCH / "attributes" / "labels_lfw.csv"
LFW_CENTRE = (125.0, 125.0)     # LFW deep-funneled images are 250 x 250, the face centred
# The regions thresholds were set on LFW rows sorting before this (about half the set).
TUNING_END_LFW = "Joe_Paterno"
# The pixel measures' thresholds were set by looking at Yale subjects 01-05 (sources sorting
# before this); "held out" figures leave those faces out.
TUNING_END = "yale:subject06"

# label column -> {attribute: values of that column meaning "has it"}
TRUTH = {
    "male": {"Male": {"1"}},
    "age": {"Child": {"child"}, "Youth": {"youth"}, "Middle Aged": {"middle"}, "Senior": {"senior"}},
    "eyewear": {"Eyeglasses": {"glasses"}, "Sunglasses": {"sun"}, "No Eyewear": {"none"}},
    "smiling": {"Smiling": {"1"}},
    "frowning": {"Frowning": {"1"}},
    "mouth": {"Mouth Closed": {"closed"}, "Mouth Slightly Open": {"slight"}, "Mouth Wide Open": {"wide"}},
    "teeth": {"Teeth Not Visible": {"0"}},
    "eyes_open": {"Eyes Open": {"1"}},
    "lighting": {"Harsh Lighting": {"harsh"}, "Soft Lighting": {"soft"}},
    "blurry": {"Blurry": {"1"}},
    "color": {"Color Photo": {"1"}},
}
# the LFW set: columns and values as bench/attributes/CREDITS.md describes them
TRUTH_LFW = {
    "male": {"Male": {"1"}},
    "age": {"Youth": {"youth"}, "Middle Aged": {"middle"}, "Senior": {"senior"}},
    "hair": {"Black Hair": {"black"}, "Brown Hair": {"brown"}, "Blond Hair": {"blond"},
             "Gray Hair": {"gray"}},
    "bald": {"Bald": {"1"}},
    "mustache": {"Mustache": {"1"}},
    "beard": {"No Beard": {"0"}},
    "forehead": {"Fully Visible Forehead": {"full"}, "Partially Visible Forehead": {"partial"},
                 "Obstructed Forehead": {"obstructed"}},
}


def image_path(source: str, args: argparse.Namespace) -> Path:
    kind, name = source.split(":", 1)
    return {"yale": args.yale, "demo": DEMO, "fr": args.extra}[kind] / name


def labelled_images(args: argparse.Namespace) -> list[str]:
    """Every image of the set, as label-row sources (Yale byte-identical copies dropped)."""
    seen, out = set(), []
    for p in sorted(args.yale.glob("subject*")):
        h = hashlib.sha256(p.read_bytes()).hexdigest()
        if h not in seen:
            seen.add(h)
            out.append(f"yale:{p.name}")
    out += [f"demo:{p.relative_to(DEMO)}"
            for p in sorted(DEMO.glob("*/*.jpg"))]
    out += [f"fr:{p.name}" for p in sorted(args.extra.glob("*.jpg"))] if args.extra.is_dir() else []
    return out


def faces_of(pipe: Pipeline, path: Path) -> list:
    """The faces of one image, left to right."""
    return sorted(pipe.analyze_file(path), key=lambda f: f.box[0])


def labelled_face(pipe: Pipeline, row: dict, args: argparse.Namespace):
    """The face a label row means (the one whose box centre is nearest the row's x, y), in
    the row's variant of the image ("blur": Gaussian blur, sigma = 1/40 of the face's width,
    so about 2.5 px at the crop's scale), or None if pof finds no face there."""
    pixels = pipe.load(image_path(row["source"], args)).pixels
    x, y = float(row["x"]), float(row["y"])
    if row["variant"] == "blur":
        w = min(pipe.analyze(pixels, with_crops=False), key=lambda f: _dist(f, x, y)).box[2]
        pixels = cv2.GaussianBlur(pixels, (0, 0), w / 40)
    faces = pipe.analyze(pixels)
    near = [f for f in faces if _dist(f, x, y) < f.box[2] / 2]
    return min(near, key=lambda f: _dist(f, x, y)) if near else None


def _dist(f, x: float, y: float) -> float:
    return float(np.hypot(f.box[0] + f.box[2] / 2 - x, f.box[1] + f.box[3] / 2 - y))


def lfw_rows(args: argparse.Namespace) -> list[tuple[dict, Path]]:
    """The LFW label rows whose file is present and has the row's SHA-256."""
    out = []
    for r in csv.DictReader(LABELS_LFW.open()):
        path = args.lfw / r["path"]
        if not path.is_file():
            print(f"warning: {path} is missing (see CREDITS.md)", file=sys.stderr)
        elif hashlib.sha256(path.read_bytes()).hexdigest() != r["sha256"]:
            print(f"warning: {path} is not the labelled file (SHA-256 differs)", file=sys.stderr)
        else:
            out.append((r, path))
    return out


def lfw_face(pipe: Pipeline, path: Path):
    """The face nearest the centre of an LFW image, or None if pof finds none."""
    faces = pipe.analyze_file(path)
    return min(faces, key=lambda f: _dist(f, *LFW_CENTRE)) if faces else None


def sheets(args: argparse.Namespace) -> None:
    from PIL import Image, ImageDraw
    pipe = Pipeline(attributes="off")
    tiles = []
    if args.set == "lfw":
        for r, path in lfw_rows(args):
            face = lfw_face(pipe, path)
            if face is not None:
                tiles.append((r["path"].split("/")[-1], face.crop))
    for src in labelled_images(args) if args.set == "core" else []:
        for k, f in enumerate(faces_of(pipe, image_path(src, args))):
            tiles.append((f"{src}#{k}", f.crop))
    args.sheets.mkdir(parents=True, exist_ok=True)
    per = 24
    for s in range(0, len(tiles), per):
        sheet = Image.new("RGB", (8 * 200, 3 * 300), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (name, crop) in enumerate(tiles[s:s + per]):
            x, y = (i % 8) * 200, (i // 8) * 300
            sheet.paste(Image.fromarray(crop), (x, y))
            draw.text((x + 2, y + 282), f"{s + i} {name.replace('.jpg', '')[:30]}", fill="black")
        sheet.save(args.sheets / f"sheet{s // per:02d}.png")
    print(f"{len(tiles)} faces on {(len(tiles) + per - 1) // per} sheets in {args.sheets}")


def evaluate(args: argparse.Namespace) -> dict:
    rows = list(csv.DictReader(LABELS.open()))
    pipe = Pipeline(attributes="off")
    stage = AttributeStage(demographics=True)
    views, keep = [], []
    for r in rows:
        if not image_path(r["source"], args).is_file():
            print(f"warning: {image_path(r['source'], args)} is missing (see CREDITS.md)", file=sys.stderr)
            continue
        face = labelled_face(pipe, r, args)
        if face is None:
            print(f"warning: no face at {r['x']}, {r['y']} in {r['source']} {r['variant']}", file=sys.stderr)
            continue
        stage.estimate([face])
        views.append(FaceView.of(face))
        keep.append((r, face.attributes))
    timing = _timing(stage, views)
    figures = _score(keep, TRUTH, lambda r: r["source"] < TUNING_END)
    srcs = {r["source"].split(":")[0] for r, _ in keep}
    yale = sum(r["source"].startswith("yale:") for r, _ in keep)
    return {"set": {"faces": len(keep), "images": len({r["source"] for r, _ in keep}),
                    "sources": sorted(srcs), "labels": "bench/attributes/labels.csv",
                    "note": (f"{yale} of the {len(keep)} faces are Yale's (15 people, grayscale, "
                             "frontal, studio light); the rest are official US government photos "
                             "of a few people. Labels by one annotator; 0.5 is the decision point. "
                             "Pixel-measure thresholds were set on Yale subjects 01-05 "
                             "(balanced_accuracy_heldout leaves them out).")},
            "ms_per_face": timing, "attributes": figures}


def evaluate_lfw(args: argparse.Namespace) -> dict:
    """Figures on the LFW colour set (the face nearest each image's centre)."""
    pipe = Pipeline(attributes="off")
    stage = AttributeStage(demographics=True)
    views, keep = [], []
    for r, path in lfw_rows(args):
        face = lfw_face(pipe, path)
        if face is None:
            print(f"warning: no face in {path}", file=sys.stderr)
            continue
        stage.estimate([face])
        views.append(FaceView.of(face))
        keep.append((r, face.attributes))
    figures = _score(keep, TRUTH_LFW, lambda r: r["path"] < TUNING_END_LFW)
    return {"set": {"faces": len(keep), "images": len(keep),
                    "persons": len({r["path"].split("/")[0] for r, _ in keep}),
                    "sources": ["lfw"], "labels": "bench/attributes/labels_lfw.csv",
                    "note": ("LFW deep-funneled colour photos (news photos of public figures), "
                             "chosen to hold enough bald, gray- and blond-haired, bearded, "
                             "moustached and hatted faces; labels by one annotator; 0.5 is the "
                             "decision point. The regions thresholds were set on the rows "
                             f"before {TUNING_END_LFW} (by name); balanced_accuracy_heldout "
                             "is the rows from it on.")},
            "ms_per_face": _timing(stage, views), "attributes": figures}


def _timing(stage: AttributeStage, views: list) -> dict[str, float]:
    """ms per face of each estimator, batch 1."""
    timing = {}
    for name in ESTIMATORS:
        b = stage.backend(name)
        b.estimate(views[:1])
        t = time.perf_counter()
        for v in views:
            b.estimate([v])
        timing[name] = round(1000 * (time.perf_counter() - t) / max(len(views), 1), 2)
    return timing


def _score(keep: list[tuple[dict, dict]], truth: dict, tuning) -> dict:
    """Per-attribute figures of (label row, scores) pairs; a row's empty cell, or a face the
    estimator gave no score, is left out of that attribute. tuning(row): True for the rows
    thresholds were set on ("held out" leaves them out)."""
    figures = {}
    for col, attrs in truth.items():
        for attr, yes in attrs.items():
            pairs = [(r[col] in yes, s[attr] >= 0.5, tuning(r))
                     for r, s in keep if r.get(col, "") not in ("", "?") and attr in s]
            if not pairs:
                continue
            figures[attr] = _figures([(t, p) for t, p, _ in pairs])
            held = _figures([(t, p) for t, p, tuned in pairs if not tuned])
            figures[attr]["balanced_accuracy_heldout"] = held["balanced_accuracy"]
    return figures


def write_validation(res: dict, which: str) -> None:
    """Update validation.json with this set's own attributes (lfw: those the regions
    estimator scores; core: the rest), keeping the other set's."""
    from pof.stages.attributes.regions import NAMES
    old = json.loads(VALIDATION.read_text()) if VALIDATION.is_file() else {}
    figs = dict(old.get("attributes", {}))
    owned = (lambda n: n in NAMES) if which == "lfw" else (lambda n: n not in NAMES)
    figs = {n: f for n, f in figs.items() if not owned(n)}
    figs.update({n: dict(f, labels=res["set"]["labels"]) for n, f in res["attributes"].items()
                 if owned(n)})
    old["set" if which == "core" else "set_lfw"] = res["set"]
    old["attributes"] = figs
    VALIDATION.write_text(json.dumps(old, indent=1) + "\n")


def _figures(pairs: list[tuple[bool, bool]]) -> dict:
    """Counts and rates of (truth, prediction) pairs."""
    from pof.evaluation.metrics import balanced_accuracy
    pos = [p for t, p in pairs if t]
    neg = [p for t, p in pairs if not t]
    acc = np.mean([t == p for t, p in pairs]) if pairs else float("nan")
    bal = balanced_accuracy([t for t, _ in pairs], [p for _, p in pairs])
    return {"faces": len(pairs), "positives": len(pos), "negatives": len(neg),
            "accuracy": round(float(acc), 3), "balanced_accuracy": round(float(bal), 3),
            "majority": round(max(len(pos), len(neg)) / max(len(pairs), 1), 3)}


def table(res: dict) -> str:
    lines = ["| attribute | faces | with / without | accuracy | balanced accuracy | ... held out | majority class | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for name, f in res["attributes"].items():
        unreliable, why = judge(f)
        lines.append(f"| {name} | {f['faces']} | {f['positives']} / {f['negatives']} | {f['accuracy']:.1%} | "
                     f"{f['balanced_accuracy']:.1%} | {f['balanced_accuracy_heldout']:.1%} | {f['majority']:.1%} | "
                     f"{'unreliable: ' + why if unreliable else 'ok'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = parser(__name__, __doc__)
    ap.add_argument("--yale", type=Path, default=Path("/work/shared/testdata/yalefaces"))
    ap.add_argument("--extra", type=Path, default=WORK / "attributes" / "extra")
    ap.add_argument("--set", choices=("core", "lfw"), default="core", help="which labelled set")
    ap.add_argument("--lfw", type=Path, default=Path("/work/data/public/lfw_deepfunneled"),
                    help="LFW deep-funneled folder (PERSON/PERSON_NNNN.jpg)")
    ap.add_argument("--sheets", type=Path, help="write contact sheets of every face here, then stop")
    ap.add_argument("--write", action="store_true", help="also write pof/stages/attributes/validation.json")
    args = ap.parse_args(argv)
    if args.set == "core":
        require([args.yale], "the Yale Face Database is needed (--yale DIR)")
    else:
        require([args.lfw], "LFW deep-funneled is needed (--lfw DIR; see bench/README.md)")
    if args.sheets:
        sheets(args)
        return 0
    res = evaluate(args) if args.set == "core" else evaluate_lfw(args)
    print(f"{res['set']['faces']} labelled faces from {res['set']['images']} images\n")
    print(table(res))
    print("\nms per face (batch 1, one thread): "
          + ", ".join(f"{k} {v}" for k, v in res["ms_per_face"].items()))
    save("attributes" if args.set == "core" else "attributes_lfw", res, table(res))
    if args.write:
        write_validation(res, args.set)
        print(f"wrote {VALIDATION.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
