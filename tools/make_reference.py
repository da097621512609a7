"""Make pof/data/reference_impostors.npy: similarity scores of face pairs of different people.

pof uses them (a) as the verification threshold's reference and (b) pooled with a gallery's
own impostor scores when the gallery is too small to calibrate alone (see pof/calibrate.py).
Run again whenever the detector, alignment or descriptor model changes:

    python tools/make_reference.py [FACES_DIR]

FACES_DIR defaults to ../shared/testdata/yalefaces (The Yale Face Database, Belhumeur,
Hespanha, Kriegman 1997: 15 people x 11 conditions); files named PERSON.anything, or
PERSON/IMAGE folders. Only scores are stored, no image and no descriptor.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pof.errors import PofError  # noqa: E402
from pof.pipeline import Pipeline  # noqa: E402
from pof.verify import largest  # noqa: E402


def files_and_people(folder: Path) -> list[tuple[Path, str]]:
    out = []
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.name.startswith(".") and f.name != "README.md":
            person = f.parent.name if f.parent != folder else f.name.split(".")[0]
            out.append((f, person))
    return out


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "testdata" / "yalefaces"
    pipe = Pipeline()
    desc, people = [], []
    for f, person in files_and_people(folder):
        try:
            desc.append(largest(pipe.analyze_file(f, with_crops=False)).descriptor)
            people.append(person)
        except PofError as exc:
            print("skipped:", exc)
    d = np.stack(desc)
    s = d @ d.T
    lab = np.array(people)
    iu = np.triu_indices(len(d), 1)
    diff = lab[iu[0]] != lab[iu[1]]
    imp, gen = np.sort(s[iu][diff]).astype(np.float32), s[iu][~diff]
    out = ROOT / "pof" / "data" / "reference_impostors.npy"
    np.save(out, imp)
    print(f"{len(d)} faces of {len(set(people))} people: {len(imp)} impostor pairs "
          f"(mean {imp.mean():.3f}, 99.9th pct {np.quantile(imp, 0.999):.3f}, max {imp.max():.3f}); "
          f"{len(gen)} genuine pairs (mean {gen.mean():.3f}, 1st pct {np.quantile(gen, 0.01):.3f}) -> {out}")
    print(f"models: {pipe.descriptor_key()}")


if __name__ == "__main__":
    main()
