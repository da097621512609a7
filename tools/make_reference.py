"""Make pof/data/reference_impostors_<embedder>.npy: similarity scores of face pairs of different people.

pof uses them (a) as the verification threshold's reference and (b) pooled with a gallery's
own impostor scores when the gallery is too small to calibrate alone (see pof/matching/calibrate.py).
Run again whenever the detector, alignment or descriptor model changes:

    python tools/make_reference.py FACES_DIR [--exclude FILES.csv ...] [--people N] [--seed S]
                                   [--embedder NAME]   # one file per descriptor backend
                                   [--mirror]          # for pof verify's mirrored descriptors

FACES_DIR holds PERSON/IMAGE folders (or files named PERSON.anything). The shipped file was
made from Labeled Faces in the Wild (deep-funneled; see bench/README.md for where to get it):
one photo each of N = 1,000 people drawn at random (seed 0) among those that no benchmark uses
(``--exclude bench/public/files.csv``: every person named in its ``person`` column is left
out), so that the benchmarks never judge pof on the people its reference came from. News
photos of many people, lights and cameras: a better picture of the impostors a real gallery
meets than the Yale faces used before (15 people under studio light, whose impostors are
unusually close). Only scores are stored, no image and no descriptor.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pof.pipeline import Pipeline  # noqa: E402
from pof.matching.verify import subject_or_error  # noqa: E402


def files_and_people(folder: Path) -> list[tuple[Path, str]]:
    out = []
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() not in (".md", ".txt", ".csv"):
            person = f.parent.name if f.parent != folder else f.name.split(".")[0]
            out.append((f, person))
    return out


def excluded_people(paths: list[Path]) -> set[str]:
    people: set[str] = set()
    for p in paths:
        with open(p, newline="", encoding="utf-8") as fh:
            people.update(r["person"] for r in csv.DictReader(fh) if r.get("person"))
    return people


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("faces", type=Path)
    ap.add_argument("--exclude", type=Path, nargs="*", default=[], help="CSV files with a person column")
    ap.add_argument("--people", type=int, default=1000, help="one photo each of this many people")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embedder", default=None, help="descriptor backend (default: pof's default)")
    ap.add_argument("--mirror", action="store_true",
                    help="descriptors averaged with the mirror image's, as pof verify makes them")
    args = ap.parse_args()
    skip = excluded_people(args.exclude)
    by_person: dict[str, list[Path]] = {}
    for f, person in files_and_people(args.faces):
        if person not in skip:
            by_person.setdefault(person, []).append(f)
    rng = np.random.default_rng(args.seed)
    people = sorted(by_person)
    chosen = [people[i] for i in np.sort(rng.choice(len(people), min(args.people, len(people)), replace=False))]
    pipe = Pipeline(**({"embedder": args.embedder} if args.embedder else {}), attributes="off")
    desc, kept = [], []
    for person in tqdm(chosen, desc="reference", unit="person"):
        f = by_person[person][int(rng.integers(len(by_person[person])))]
        face, error = subject_or_error(pipe, f, "largest", args.mirror)
        if face is None:
            print("skipped:", error)
            continue
        desc.append(face.descriptor)
        kept.append(person)
    d = np.stack(desc)
    iu = np.triu_indices(len(d), 1)
    imp = np.sort((d @ d.T)[iu]).astype(np.float32)       # one photo a person: all impostors
    from pof.matching.calibrate import reference_path
    out = reference_path(pipe.settings["embedder"], args.mirror)
    np.save(out, imp)
    print(f"{len(d)} faces of {len(kept)} people ({len(skip)} excluded): {len(imp)} impostor pairs "
          f"(mean {imp.mean():.3f}, 99.9th pct {np.quantile(imp, 0.999):.3f}, max {imp.max():.3f}) -> {out}")
    print(f"models: {pipe.descriptor_key()}")


if __name__ == "__main__":
    main()
