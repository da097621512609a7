"""pof redact and pof report: what may be shown of photos and of a dataset."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from pof.cli.common import EXIT_SOME_FAILED, finish, friendly


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for the redacted copies")
@click.option("--method", default="pixelate", show_default=True, type=click.Choice(["pixelate", "blur"]))
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0.1, 10), help="1 = default; higher is coarser (the first step; raised where the check needs it)")
@click.option("--margin", default=0.25, show_default=True, type=click.FloatRange(0, 2), help="widen each face box by this share of its size (the first step)")
@click.option("--keep", multiple=True, type=int, help="index of a face to leave visible in a photo (as listed by a run), or number of a track in a video (as pof search lists them); repeatable")
@click.option("--no-check", is_flag=True, help="skip looking for faces again in the result (and so escalating)")
@click.option("--no-audio", is_flag=True, help="videos: leave the sound out of the copy")
@friendly
def redact(images, out, method, strength, margin, keep, no_check, no_audio) -> None:
    """Obscure every face in IMAGES (photos, videos, folders of them); copies go to OUT,
    without metadata. Each copy is checked and faces escalated until pof finds none."""
    from pof.pipeline import Pipeline
    from pof.redact import Checker, output_path, redact_file
    from pof.video.reader import video_kind
    files = _redact_inputs(images)
    pipeline = Pipeline()
    checker, taken, missed, failed = Checker(pipeline), set(), 0, 0
    for src in tqdm(files, desc="redact", unit="file", disable=len(files) < 5):
        video = video_kind(src) is not None
        if video:
            from pof.video.redact import redact_video
            r = redact_video(pipeline, Path(src), Path(out), taken, method, strength, margin,
                             not no_check, not no_audio, checker, keep=tuple(keep))
        else:
            dest = output_path(Path(out), Path(src), taken)
            r = redact_file(pipeline, Path(src), dest, method, strength, margin, tuple(keep),
                            not no_check, checker)
        if r.error:
            failed += 1
            click.echo(f"error: {src}: {r.error}" if not r.error.startswith(str(src))
                       else f"error: {r.error}", err=True)
            continue
        kept = f", kept {'track' if video else 'face'}(s) {', '.join(map(str, r.kept))}" if r.kept else ""
        note = f" ({r.note})" if r.note else ""
        redacted = len(r.faces) - (0 if video else len(r.kept))   # a kept track is not listed
        click.echo(f"{src}: {redacted} face(s) redacted{kept} -> {r.output}{note}")
        for i, (x, y, w, h) in enumerate(r.faces):
            step = f": {r.steps[i]}" if i < len(r.steps) else ""
            extra = " (found by the check)" if i >= len(r.faces) - r.added else ""
            click.echo(f"    face {i} at ({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}){extra}{step}")
        if r.still_found:
            missed += 1
            click.echo(f"WARNING: {r.output}: the check still finds {r.still_found} face(s) "
                       "after escalating as far as it goes; do not publish this copy", err=True)
    # a copy in which a face is still found failed, as an unreadable input did
    finish(len(files) - failed - missed, failed + missed)


def _redact_inputs(items) -> list[str]:
    """The files named, with folders expanded to the files in them (sorted, hidden ones left
    out); a missing path stays in the list and is reported by its reader."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += [str(f) for f in sorted(p.rglob("*")) if f.is_file()
                    and not any(part.startswith(".") for part in f.relative_to(p).parts)]
        else:
            out.append(str(item))
    return out


@click.command()
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="report folder  [default: DATASET/report]")
@click.option("--image", "images", multiple=True, metavar="ID", help="chart this image (its id); repeatable")
@click.option("--sample", default=20, show_default=True, type=click.IntRange(0), help="without --image: chart this many images, a reproducible random sample")
@click.option("--all-images", is_flag=True, help="chart every image (slow for a large dataset)")
@click.option("--per-sheet", default=100, show_default=True, type=click.IntRange(1, 1000), help="crops per contact sheet")
@click.option("--quiet", is_flag=True, help="no progress bar")
@friendly
def report(dataset, out, images, sample, all_images, per_sheet, quiet) -> None:
    """Pictures and an HTML dataset card of DATASET: per-image attribute charts, redacted
    contact sheets (GIF) and mosaic, statistics. No face is left recognisable, no person named."""
    from pof.report import make_report
    warn = lambda item, reason: tqdm.write(f"warning: {item}: {reason}", file=sys.stderr)  # noqa: E731
    r = make_report(dataset, out, tuple(images), sample, all_images, per_sheet, progress=not quiet, warn=warn)
    click.echo(f"report of {dataset}: {len(r.charted)} image chart(s), {len(r.sheets)} contact sheet(s), "
               f"{len(r.files)} files in {r.out}; open {r.out / 'index.html'}")
    if r.problems:
        click.echo(f"{len(r.problems)} problem(s): listed above and in index.html", err=True)
    if r.faces_left or r.problems:
        sys.exit(EXIT_SOME_FAILED)
