"""pof verify and pof cluster: comparing faces with each other, without a dataset."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import click
from tqdm import tqdm

from pof.cli.common import finish, friendly, probe_workers, setting
from pof.errors import PofError


def _verify_options(fn):
    """--face and --mirror, shared by pof verify and pof eval pairs."""
    fn = click.option("--mirror/--no-mirror", default=True, show_default=True,
                      help="average each face's descriptor with its mirror image's (more accurate pairs)")(fn)
    fn = click.option("--face", type=click.Choice(["largest", "center"]), default="largest", show_default=True,
                      help="which face of each photo to compare: the largest, or the one nearest the centre")(fn)
    return fn


@click.command()
@click.argument("images", nargs=-1)
@click.option("--pairs", type=click.Path(dir_okay=False, exists=True), help="CSV with columns file_x,file_y")
@click.option("--root", type=click.Path(file_okay=False), default=".", help="folder the pair paths are relative to")
@click.option("--fmr", default=1e-3, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="target false-match rate")
@click.option("--json", "as_json", is_flag=True, help="JSON output, one object per pair")
@setting("workers")
@_verify_options
@friendly
def verify(images, pairs, root, fmr, as_json, workers, face, mirror) -> None:
    """Are IMAGE_A and IMAGE_B the same person? Or every pair in --pairs."""
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import Pipeline
    from pof.settings import value
    from pof.matching.verify import Verifier, subject_or_error
    workers = value("workers", workers)
    if pairs:
        todo = _read_pairs(Path(pairs), Path(root))
    elif len(images) == 2:
        todo = [(images[0], images[1], images[0], images[1])]
    else:
        raise PofError("give two images, or --pairs PAIRS.csv")
    verifier = Verifier(fmr, mirror=mirror)
    paths = list(dict.fromkeys(p for t in todo for p in t[2:]))
    bar = tqdm(total=len(paths), desc="verify", unit="img", disable=len(paths) < 5 or as_json)
    face_of = {}
    jobs = ((p, face, mirror) for p in paths)
    pipeline = Pipeline()
    pipeline.settle_runtime(len(paths))
    for path, result in zip(paths, pipeline_map(pipeline, subject_or_error, jobs,
                                                probe_workers(workers, len(paths)))):
        face_of[path] = result
        bar.update(1)
    bar.close()
    failed = 0
    for shown_x, shown_y, px, py in todo:
        (fa, ea), (fb, eb) = face_of[px], face_of[py]
        out = {"file_x": shown_x, "file_y": shown_y}
        out.update({"error": ea or eb} if (ea or eb) else verifier.compare(fa, fb).to_json())
        failed += "error" in out
        if as_json:
            click.echo(json.dumps(out))
        elif "error" in out:
            click.echo(f"{shown_x} / {shown_y}: {out['error']}")
        else:
            word = "same person (candidate)" if out["same"] else "not the same person"
            click.echo(f"{shown_x} / {shown_y}: {word}, score {out['score']:.3f} "
                       f"(threshold {out['threshold']:.3f}, FMR {out['fmr']:.2g})")
            for side, shown in (("x", shown_x), ("y", shown_y)):
                if f"faces_{side}" in out:
                    x, y, w, h = out[f"box_{side}"]
                    click.echo(f"  {shown}: {out[f'faces_{side}']} faces; compared the {face} one at "
                               f"({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}). If another was meant, crop "
                               f"the photo to that person" + ("" if face == "center" else " or try --face center"))
    finish(len(todo) - failed, failed)


def _read_pairs(pairs: Path, root: Path) -> list[tuple[str, str, str, str]]:
    try:
        with pairs.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PofError(f"{pairs}: cannot read ({exc})") from None
    if rows and not {"file_x", "file_y"} <= set(rows[0]):
        raise PofError(f"{pairs}: needs columns file_x,file_y")
    return [(r["file_x"], r["file_y"], str(root / r["file_x"]), str(root / r["file_y"])) for r in rows]


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for groups and clusters.json")
@click.option("--fmr", default=1e-3, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="false-match rate of a link between two faces (sets the linkage threshold)")
@setting("workers")
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object (no progress bars)")
@friendly
def cluster(inputs, out, fmr, workers, quiet, as_json) -> None:
    """Group the faces in IMAGE_OR_DIR... into unknown persons (one folder per group in OUT).

    Videos among them (recognised by their bytes) are read as pof search reads them: each face
    followed through a clip is one face to group, named like "clip.mp4 00:12-00:19".

    Two groups are joined when their faces' average similarity passes the verification
    threshold at --fmr (from pof's reference impostor scores); only groups linked in a
    nearest-neighbour graph of the faces are compared, so 10^5 faces fit in minutes. Look-alikes
    can merge and one person can split: groups are leads for a person to check."""
    from pof.matching.cluster import expand_inputs, write_groups
    from pof.settings import value
    from pof.video.cluster import cluster_media
    workers = value("workers", workers)
    paths, problems = expand_inputs(list(inputs))
    result = cluster_media(paths, fmr=fmr, workers=probe_workers(workers, len(paths)),
                           progress=not (quiet or as_json))
    write_groups(result, Path(out))
    for path, reason in problems + result.problems:
        click.echo(f"error: {path}: {reason}", err=True)
    tracks = [{"video": f["image"], "track": f["track"], "name": f["name"], "start": f["start"],
               "end": f["end"], "group": f["group"] + 1} for f in result.faces if "track" in f]
    if as_json:
        summary = {"faces": len(result.faces), "images": len(paths), "groups": result.n_groups,
                   "threshold": round(result.threshold, 4), "fmr": fmr, "out": str(out),
                   "errors": [{"image": p, "reason": r} for p, r in problems + result.problems]}
        if tracks:
            summary["tracks"] = tracks
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{len(result.faces)} faces in {len(paths)} images -> {result.n_groups} groups "
                   f"(link threshold {result.threshold:.3f} at FMR {fmr:g}) in {out}")
        for t in tracks:
            click.echo(f"  {t['name']}: group {t['group']}")
    finish(len(paths) - len(result.problems), len(problems) + len(result.problems))
