"""The ``pof`` command line (README, "Commands"). Errors are reported per item, never as a traceback."""
from __future__ import annotations

import csv
import functools
import json
import os
import sys
from pathlib import Path

import click
from tqdm import tqdm

from pof.errors import PofError

# exit statuses (README, "Exit status"); 75, a dataset busy, is pof.dataset.lock.EXIT_BUSY
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_ALL_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_EXIT_HELP = """\b
Exit status:
  0    everything done
  1    internal error (a bug: POF_DEBUG=1 shows the traceback)
  2    usage or user error (bad arguments, missing dataset, a folder that is not a dataset)
  3    some inputs failed, each reported; the rest was done
  4    every input failed
  75   the dataset is being written by another pof process; run again when it is done
  130  interrupted (Ctrl-C); run the same command again to resume"""


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"pof: {message}", err=True)
    sys.exit(code)


def _finish(done: int, failed: int) -> None:
    """Exit with the status of a run over many inputs: 0, 3 (some failed) or 4 (all did)."""
    if failed:
        sys.exit(EXIT_SOME_FAILED if done else EXIT_ALL_FAILED)


def friendly(fn):
    """Turn PofError into a one-line message, Ctrl-C into a resumable stop, and any other
    exception into a short report (set POF_DEBUG=1 for the traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PofError as exc:
            _fail(str(exc), getattr(exc, "exit_code", EXIT_USAGE))
        except KeyboardInterrupt:
            _fail("interrupted; nothing committed was lost; run the same command again to resume",
                  EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001
            if _disk_full(exc):
                _fail(f"no space left on the disk ({exc}); free some and run the same command again "
                      "(a build resumes where it stopped; `pof fsck` checks a dataset)")
            if os.environ.get("POF_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (POF_DEBUG=1 shows details)", EXIT_INTERNAL)
    return wrapper


class _SettingOption(click.Option):
    """An option that sets one of pof's settings. It has no default of its own (None: not
    given), so the value resolves in pof.settings: default < POF_<NAME> < the option. Its help
    shows the value it takes when left out, from the environment where set there."""

    def __init__(self, param_decls, setting: str, **attrs) -> None:
        from pof.settings import get
        decl = get(setting)
        attrs.setdefault("help", decl.help)
        if decl.choices and "type" not in attrs:
            attrs["type"] = click.Choice(decl.choices)
        super().__init__(param_decls, default=None, show_default=False, **attrs)
        self.setting = setting

    def get_help_record(self, ctx):
        record = super().get_help_record(ctx)
        if record is None:
            return None
        from pof.settings import current
        env = f"POF_{self.setting.upper()}"
        try:
            shown = f"{current(self.setting)}; {'from' if env in os.environ else 'or set'} {env}"
        except PofError:
            shown = f"{env} is not valid"
        return record[0], f"{record[1]}  [default: {shown}]"


def _setting(name: str, **attrs):
    """A click option ``--NAME`` for setting ``name``."""
    return click.option(f"--{name.replace('_', '-')}", name, cls=_SettingOption, setting=name, **attrs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EXIT_HELP)
@click.version_option(package_name="pof")
def main() -> None:
    """pof: build, search and publish a face dataset of public officials, for accountability
    research. Every identification is a candidate with its error rate, never a verdict.

    Settings (see each option) come from pof's defaults, overridden by the environment
    (POF_<NAME>, e.g. POF_DETECTOR=hog), overridden by the command line."""
    os.umask(0o077)     # what pof writes (photos, crops, records) is private to its owner


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="dataset folder")
@_setting("workers", type=click.IntRange(0, 64))
@_setting("device")
@_setting("detector")
@click.option("--licence", default="", help="licence or terms of the images, recorded with each")
@click.option("--legal-basis", default="", help="legal basis for processing, recorded with each image")
@click.option("--agreement", type=click.Path(dir_okay=False, exists=True), help="licence agreement text (Markdown) for AGREEMENT.md")
@click.option("--quiet", is_flag=True, help="no progress bar")
@friendly
def build(sources, out, workers, device, detector, licence, legal_basis, agreement, quiet) -> None:
    """Enrol images from SOURCES (PERSON/IMAGE folders, .csv/.json manifests, files) into OUT.

    OUT is a new or empty folder, or a pof dataset: building again into it adds only what is
    new, and an interrupted build resumes. One build at a time writes a dataset; a second
    one stops at once (exit status 75)."""
    from pof.dataset.build import Builder
    from pof.settings import value
    engine = None
    if value("device", device) == "cuda":
        from pof.runtime.device import build_engine
        engine = build_engine()
    b = Builder(out, workers=workers, detector=detector, engine=engine,
                device="cpu" if engine else device)
    text = Path(agreement).read_text(encoding="utf-8") if agreement else None
    report = b.run(list(sources), {"licence": licence, "legal_basis": legal_basis},
                   progress=not quiet, agreement=text)
    for loc, status, reason in report.problems:
        click.echo(f"{status}: {loc}: {reason}", err=True)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(report.counts.items())) or "nothing to do"
    click.echo(f"built {out}: {report.added_faces} faces from {report.added_images} new images ({summary})")
    _finish(report.done, report.failed)


def _probe_workers(requested: int, n_images: int) -> int:
    """Worker processes for probes: none for a few images (start-up costs ~1 s each)."""
    if n_images < 4:
        return 1
    return requested if requested > 0 else min(os.cpu_count() or 1, n_images // 2)


def _analyzed(pipeline, paths: list[str], workers: int):
    """(path, faces, error) for each probe, in order, with a progress bar."""
    from pof.runtime.parallel import pipeline_map
    from pof.pipeline import faces_or_error
    jobs = ((p,) for p in paths)
    results = pipeline_map(pipeline, faces_or_error, jobs, _probe_workers(workers, len(paths)))
    for path, (faces, error) in zip(paths, results):
        yield path, faces, error


@main.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1, required=True)
@_setting("top", type=click.IntRange(1, 100))
@_setting("fpir", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per image, one per line")
@_setting("workers", type=click.IntRange(0, 64))
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="search only persons whose attribution matches, e.g. agency=NYPD; repeatable")
@click.option("--same-person", is_flag=True,
              help="IMAGES show one unknown person: fuse the largest face of each into one query")
@click.option("--stride", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="videos: run the detector on every Nth frame (0: about 8 frames a second)")
@friendly
def search(dataset, images, top, fpir, as_json, workers, where, same_person, stride) -> None:
    """Search every face in IMAGES against DATASET: ranked candidates, open-set decision.

    IMAGES are files or folders (every file inside, recursively, in name order, whatever its
    extension); an unreadable or faceless one is reported and the rest go on.
    With --where the gallery is narrowed first (the threshold is then calibrated for the
    persons left, so the FPIR stays as stated). With --same-person the largest face of each
    image is taken as the same unknown person and one fused query is searched, judged by a
    rule calibrated for that many images (one result for all the images).

    Videos (MP4, MOV, MKV, WebM, AVI, recognised by their bytes) are read frame by frame:
    each face followed through the clip is one track with one decision, judged like
    --same-person from its best frames (one result per video, after the images)."""
    from pof.pipeline import pipeline_for
    from pof.matching.search import Gallery, Searcher, result_line
    from pof.settings import value
    top, fpir, workers = value("top", top), value("fpir", fpir), value("workers", workers)
    gallery = Gallery.load(dataset)
    if where:
        conditions: dict[str, list[str]] = {}
        for w in where:
            key, sep, val = w.partition("=")
            if not sep or not key:
                raise PofError(f"--where needs KEY=VALUE, got {w!r}")
            conditions.setdefault(key.strip(), []).append(val.strip())
        gallery = gallery.filter(**conditions)
    pipeline = pipeline_for(gallery.descriptor_key)   # the descriptor backend it was built with
    images, empty = _expand(images)
    from pof.pipeline import OPENVINO_MIN_PHOTOS
    from pof.video.search import is_video
    kinds = [is_video(p) for p in images]
    videos = [p for p, v in zip(images, kinds) if v]
    images = [p for p, v in zip(images, kinds) if not v]
    pipeline.settle_runtime(len(images) + OPENVINO_MIN_PHOTOS * len(videos))
    from pof.matching.calibrate import resolve_fusion
    index = None       # a subset (--where), or template fusion: the Searcher needs no saved index
    if not where and resolve_fusion(pipeline.settings["fusion"], len(gallery.labels)) != "template":
        from pof.dataset.index import load_or_build
        index = load_or_build(Path(dataset), gallery.descriptors, gallery.descriptor_key)
    searcher = Searcher(gallery, target_fpir=fpir, index=index, fusion=pipeline.settings["fusion"],
                        min_interocular=pipeline.settings["min_interocular"],
                        max_blur=pipeline.settings["max_blur"])
    for folder in empty:
        if as_json:
            click.echo(result_line(folder, [], "folder holds no files"))
        else:
            _print_search(folder, [], "folder holds no files")
    if same_person:
        done, failed = _search_same_person(searcher, pipeline, images, top, as_json, workers) \
            if images else (0, 0)
        vdone, vfailed = _search_videos(searcher, pipeline, videos, top, as_json, stride)
        _finish(done + vdone, failed + vfailed + len(empty))
        return
    bar = tqdm(total=len(images), desc="search", unit="img", disable=len(images) < 5 or as_json)
    failed = len(empty)
    for path, faces, error in _analyzed(pipeline, images, workers):
        bar.update(1)
        failed += error is not None
        results = searcher.search(faces, top) if faces else []
        if as_json:
            click.echo(result_line(path, results, error))
        else:
            _print_search(path, [r.to_json() for r in results], error)
    bar.close()
    vdone, vfailed = _search_videos(searcher, pipeline, videos, top, as_json, stride)
    _finish(len(images) + len(empty) - failed + vdone, failed + vfailed)


def _search_videos(searcher, pipeline, videos: list[str], top: int, as_json: bool,
                   stride: int) -> tuple[int, int]:
    """Each video's tracks, one decision each (pof.video.search). Returns how many videos
    were searched and how many failed."""
    if not videos:
        return 0, 0
    from pof.video.search import search_video, thresholds
    limits = thresholds(searcher.gallery.descriptors)
    failed = 0
    for path in videos:
        bar = None

        def progress(read: int, estimate: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=estimate or None, desc=Path(path).name, unit="frame",
                           disable=as_json or estimate < 250, leave=False)
            bar.update(1)
        result = search_video(path, pipeline, searcher, top, stride, progress, limits).to_json()
        if bar is not None:
            bar.close()
        failed += result["error"] is not None
        if as_json:
            click.echo(json.dumps(result))
        else:
            _print_video(result)
    return len(videos) - failed, failed


def _clock(seconds: float) -> str:
    """mm:ss (minutes go past 59 for long videos)."""
    s = int(seconds)
    return f"{s // 60:02d}:{s % 60:02d}"


def _print_video(r: dict) -> None:
    if r["error"]:
        click.echo(r["error"] if r["error"].startswith(f"{r['video']}: ") else f"{r['video']}: {r['error']}")
    if not r["tracks"]:
        return
    click.echo(f"{r['video']}: {_clock(r['duration'])}, {r['fps']:g} fps, {r['frames_read']} frames "
               f"read, {r['frames_analysed']} analysed, {len(r['tracks'])} face "
               f"track{'s' if len(r['tracks']) > 1 else ''}")
    click.echo("  track  start  end    frames  quality  decision")
    for t in r["tracks"]:
        row = f"  {t['track']:<5}  {_clock(t['start'])}  {_clock(t['end'])}  {t['frames_used']:>6}  {t['quality']:>7.2f}  "
        if t["decision"] == "quality_too_low":
            click.echo(row + f"not searched: {t.get('reason', 'quality too low')}")
            continue
        click.echo(row + _verdict(t))
        _print_candidates(t["candidates"])


def _expand(inputs) -> tuple[list[str], list[str]]:
    """Files to search: each input as given, or for a folder every file inside it,
    recursively, in name order, whatever its extension (hidden ones left out); and the
    folders that hold none. A missing path stays in, to be reported with its reason."""
    paths, empty = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            paths += found
            if not found:
                empty.append(str(p))
        else:
            paths.append(str(item))
    return paths, empty


def _search_same_person(searcher, pipeline, images: list[str], top: int, as_json: bool,
                        workers: int) -> tuple[int, int]:
    """--same-person: one fused query from the largest face of each image. Returns how many
    images were used and how many failed."""
    faces, used, problems = [], [], []
    for path, found, error in _analyzed(pipeline, images, workers):
        if error:
            problems.append({"image": path, "reason": error})
            continue
        faces.append(max(found, key=lambda f: f.box[2] * f.box[3]))
        used.append(path)
        if len(found) > 1:
            problems.append({"image": path, "reason": f"{len(found)} faces; used the largest"})
    result = searcher.search_same_person(faces, top).to_json() if faces else None
    if result is not None:
        for probe, path in zip(result["probes"], used):
            probe["image"] = path
        for item in result["left_out"]:
            item["image"] = used[item.pop("probe")]
    error = None if faces else "no face found in any of the images"
    counts = len(used), len(images) - len(used)
    if as_json:
        click.echo(json.dumps({"images": images, "error": error, "notes": problems,
                               "faces": [result] if result else []}))
        return counts
    for p in problems:
        click.echo(f"{p['image']}: {p['reason']}")
    if result is None:
        click.echo(f"pof: {error}")
        return counts
    for item in result["left_out"]:
        click.echo(f"{item['image']}: left out: {item['reason']}")
    if result["decision"] == "quality_too_low":
        click.echo(f"not searched: {result['reason']}")
        return counts
    click.echo(f"one person in {result['probes_used']} images: {_verdict(result)}")
    _print_candidates(result["candidates"])
    return counts


def _verdict(r: dict) -> str:
    """A search result's decision in words, with the rule behind it."""
    verdict = "possible match" if r["decision"] == "match" else "no confident match"
    return f"{verdict} (threshold {r['threshold']:.3f}, FPIR {r['fpir']:.2%})"


def _print_candidates(cands: list[dict]) -> None:
    for c in cands:
        bound = "<" if c["fmr_upper_bound"] else ""
        click.echo(f"    {c['score']:.3f}  FMR {bound}{c['fmr']:.2g}  {c['name']} [{c['person']}]"
                   f"  evidence {' '.join(c['evidence'])}")
    click.echo("  candidates are leads for a person to check, not identifications.")


def _print_search(path: str, results: list[dict], error: str | None) -> None:
    if error:
        click.echo(error if error.startswith(f"{path}: ") else f"{path}: {error}")
        return
    for i, r in enumerate(results):
        x, y, w, h = r["box"]
        if r["decision"] == "quality_too_low":
            click.echo(f"{path} face {i + 1} at ({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}): not searched: {r['reason']}")
            continue
        restored = " (heavily JPEG-compressed photo: described after smoothing its blocks)" \
            if r.get("restored") else ""
        click.echo(f"{path} face {i + 1} at ({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}), quality "
                   f"{r['quality']:.2f}{restored}: {_verdict(r)}")
        _print_candidates(r["candidates"])


def _verify_options(fn):
    """--face and --mirror, shared by pof verify and pof eval pairs."""
    fn = click.option("--mirror/--no-mirror", default=True, show_default=True,
                      help="average each face's descriptor with its mirror image's (more accurate pairs)")(fn)
    fn = click.option("--face", type=click.Choice(["largest", "center"]), default="largest", show_default=True,
                      help="which face of each photo to compare: the largest, or the one nearest the centre")(fn)
    return fn


@main.command()
@click.argument("images", nargs=-1)
@click.option("--pairs", type=click.Path(dir_okay=False, exists=True), help="CSV with columns file_x,file_y")
@click.option("--root", type=click.Path(file_okay=False), default=".", help="folder the pair paths are relative to")
@click.option("--fmr", default=1e-3, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="target false-match rate")
@click.option("--json", "as_json", is_flag=True, help="JSON output, one object per pair")
@_setting("workers", type=click.IntRange(0, 64))
@_verify_options
@friendly
def verify(images, pairs, root, fmr, as_json, workers, face, mirror) -> None:
    """Are IMAGE_A and IMAGE_B the same person? Or every pair in --pairs."""
    from pof.runtime.parallel import pipeline_map
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
                                                _probe_workers(workers, len(paths)))):
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
    _finish(len(todo) - failed, failed)


def _read_pairs(pairs: Path, root: Path) -> list[tuple[str, str, str, str]]:
    try:
        with pairs.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PofError(f"{pairs}: cannot read ({exc})") from None
    if rows and not {"file_x", "file_y"} <= set(rows[0]):
        raise PofError(f"{pairs}: needs columns file_x,file_y")
    return [(r["file_x"], r["file_y"], str(root / r["file_x"]), str(root / r["file_y"])) for r in rows]


@main.group(name="eval")
def eval_group() -> None:
    """Measure pof on a labelled set: verification pairs or open-set identification."""


def _eval_common(fn):
    fn = click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", help="folder the CSV's paths are relative to")(fn)
    fn = click.option("--by", default=None, help="also give figures per value of this column")(fn)
    fn = click.option("--out", type=click.Path(file_okay=False), default="pof-eval", show_default=True, help="where figures and pictures go")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")(fn)
    fn = _setting("workers", type=click.IntRange(0, 64))(fn)
    return fn


def _print_eval(result: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result))
        return
    for name, fig in result["groups"].items():
        shown = ", ".join(f"{k} {v}" for k, v in fig.items() if not isinstance(v, list))
        click.echo(f"{name}: {shown}")
    click.echo("pictures: " + ", ".join(result["pictures"]))


@eval_group.command(name="pairs")
@click.argument("pairs", type=click.Path(dir_okay=False, exists=True))
@_eval_common
@_verify_options
@friendly
def eval_pairs(pairs, root, by, out, as_json, workers, face, mirror) -> None:
    """Verification figures over PAIRS.csv (columns file_x,file_y,Decision Yes/No; optional
    fold, e.g. LFW's ten sets, for the 10-fold accuracy): accuracy, ROC AUC, EER, TAR at FAR
    1e-2/1e-3/1e-4; ROC and DET curves as PNG."""
    from pof.evaluation.run import read_rows, run_pairs
    from pof.settings import value
    workers = value("workers", workers)
    n = len({p for r in read_rows(Path(pairs), {"file_x", "file_y"}) for p in (r["file_x"], r["file_y"])})
    with tqdm(total=n, desc="eval", unit="img", disable=as_json) as bar:
        result = run_pairs(Path(pairs), Path(root), Path(out), by, _probe_workers(workers, n),
                           lambda: bar.update(1), subject=face, mirror=mirror)
    _print_eval(result, as_json)


@eval_group.command(name="ident")
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True))
@_eval_common
@_setting("fpir", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--face", type=click.Choice(["largest", "center"]), default="largest", show_default=True,
              help="which face of each image is the labelled person: the largest, or the one nearest the centre (LFW-style sets)")
@friendly
def eval_ident(manifest, root, by, out, as_json, workers, fpir, face) -> None:
    """Open-set identification over MANIFEST.csv (columns path,person,role; role gallery or
    probe): rank-1/5, FNIR at FPIR 1%/5%, DIR and FPIR at pof's threshold, fail-to-detect;
    CMC and FNIR-FPIR curves as PNG."""
    from pof.evaluation.run import read_rows, run_ident
    from pof.settings import value
    workers, fpir = value("workers", workers), value("fpir", fpir)
    n = len({r["path"] for r in read_rows(Path(manifest), {"path", "person", "role"})})
    with tqdm(total=n, desc="eval", unit="img", disable=as_json) as bar:
        result = run_ident(Path(manifest), Path(root), Path(out), by, _probe_workers(workers, n),
                           lambda: bar.update(1), fpir, subject=face)
    _print_eval(result, as_json)


@main.command()
@click.argument("images", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for the redacted copies")
@click.option("--method", default="pixelate", show_default=True, type=click.Choice(["pixelate", "blur"]))
@click.option("--strength", default=1.0, show_default=True, type=click.FloatRange(0.1, 10), help="1 = default; higher is coarser (the first step; raised where the check needs it)")
@click.option("--margin", default=0.25, show_default=True, type=click.FloatRange(0, 2), help="widen each face box by this share of its size (the first step)")
@click.option("--keep", multiple=True, type=int, help="index of a face to leave visible in a photo (as listed by a run); repeatable")
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
        if video_kind(src):
            from pof.video.redact import redact_video
            r = redact_video(pipeline, Path(src), Path(out), taken, method, strength, margin,
                             not no_check, not no_audio, checker)
        else:
            dest = output_path(Path(out), Path(src), taken)
            r = redact_file(pipeline, Path(src), dest, method, strength, margin, tuple(keep),
                            not no_check, checker)
        if r.error:
            failed += 1
            click.echo(f"error: {src}: {r.error}" if not r.error.startswith(str(src))
                       else f"error: {r.error}", err=True)
            continue
        kept = f", kept face(s) {', '.join(map(str, r.kept))}" if r.kept else ""
        note = f" ({r.note})" if r.note else ""
        click.echo(f"{src}: {len(r.faces) - len(r.kept)} face(s) redacted{kept} -> {r.output}{note}")
        for i, (x, y, w, h) in enumerate(r.faces):
            step = f": {r.steps[i]}" if i < len(r.steps) else ""
            extra = " (found by the check)" if i >= len(r.faces) - r.added else ""
            click.echo(f"    face {i} at ({x:.0f}, {y:.0f}, {w:.0f} x {h:.0f}){extra}{step}")
        if r.still_found:
            missed += 1
            click.echo(f"WARNING: {r.output}: the check still finds {r.still_found} face(s) "
                       "after escalating as far as it goes; do not publish this copy", err=True)
    # a copy in which a face is still found failed, as an unreadable input did
    _finish(len(files) - failed - missed, failed + missed)


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


@main.command()
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


@main.command()
@click.option("--out", default="pof-demo", show_default=True, type=click.Path(file_okay=False), help="where to write the demo dataset")
@friendly
def demo(out) -> None:
    """Build a dataset from bundled public-domain photos, search it, say where things are."""
    from pof.demo import run_demo
    run_demo(Path(out))


# --- the web app and its records (pof serve, users, audit, cluster) -----------------------

@main.command()
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (keep 127.0.0.1 behind an https proxy)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--trusted-proxies", default="", metavar="ADDRESSES",
              help="reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For "
                   "and X-Forwarded-Proto are believed; none by default")
@click.option("--limit-concurrency", default=64, show_default=True, type=click.IntRange(1),
              help="open connections at most; beyond, requests get 503")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="seconds a client has to send its request line and headers")
@click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="seconds a request body may stall before the request gets 408")
@friendly
def serve(dataset, host, port, trusted_proxies, limit_concurrency, header_timeout, body_timeout) -> None:
    """Serve the web app for DATASET: search, review, gallery, unknown faces, audit log.

    Add accounts first with `pof users add`. Serve over https (a reverse proxy) for anything
    but a test on this machine: session cookies are marked Secure when the request is https.
    Bodies are bounded per route and read only from a signed-in client (README, Security)."""
    import uvicorn
    from pof.web.app import create_app
    from pof.web.auth import parse_proxies
    from pof.web.guard import Transport, header_timeout_protocol
    from pof.web.state import WebConfig
    config = WebConfig(trusted_proxies=parse_proxies(trusted_proxies))
    app = create_app(Path(dataset), config,
                     transport=Transport(body_timeout=body_timeout, header_timeout=header_timeout))
    with app.state.web.db() as db:
        if not db.execute("SELECT 1 FROM users WHERE disabled = 0").fetchone():
            click.echo(f"pof: no accounts yet; add one with `pof users add {dataset} NAME --role admin`", err=True)
    click.echo(f"pof: serving {dataset} at http://{host}:{port}/ (Ctrl-C stops)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("pof: listening beyond this machine: put it behind https", err=True)
    # uvicorn's own proxy handling stays off: pof reads forwarded headers from trusted proxies only
    uvicorn.run(app, host=host, port=port, proxy_headers=False,
                log_level="warning", http=header_timeout_protocol(header_timeout),
                limit_concurrency=limit_concurrency, backlog=256, timeout_keep_alive=5,
                h11_max_incomplete_event_size=16 * 2**10)


@main.group(name="users")
def users_group() -> None:
    """Accounts of the web app (roles: viewer, reviewer, admin)."""


@users_group.command(name="add")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["viewer", "reviewer", "admin"]))
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True),
              help="read the password from the first line of this file (else a prompt asks)")
@click.option("--token", "with_token", is_flag=True, help="also print a new API token (shown once)")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="days the new API token lasts")
@click.option("--label", default="", help="what the new API token is for (shown in token lists)")
@friendly
def users_add(dataset, name, role, password_file, with_token, days, label) -> None:
    """Add user NAME to DATASET's web app (or reset their role and password: that signs them
    out everywhere and revokes their API tokens)."""
    from pof.casework import audit
    from pof.casework.accounts import Accounts
    from pof.dataset.catalog import Catalog
    if password_file:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with Catalog(dataset) as cat:
        accounts = Accounts(cat.db)
        saved = accounts.add(name, role, password)
        audit.append(cat.db, "cli", "user_add" if saved.new else "user_reset", user=name, role=role,
                     sessions_ended=saved.sessions_ended, tokens_revoked=saved.tokens_revoked)
        click.echo(f"user {name} ({role}) saved in {dataset}")
        if not saved.new:
            click.echo(f"existing user reset: {saved.sessions_ended} session(s) ended, "
                       f"{saved.tokens_revoked} API token(s) revoked")
        _print_team(cat.db)
        if with_token:
            _new_token(cat.db, accounts, name, days, label)


def _print_team(db) -> None:
    """How many reviewers a confirmation needs on this dataset, and a warning (on stderr)
    when its reviewer and admin accounts are too few to confirm anything."""
    from pof.casework import review
    review.ensure_schema(db)
    need = review.min_reviewers(db)
    click.echo(f"confirming a proposed name needs {need} reviewer{'' if need == 1 else 's'} besides "
               f"the proposer ({need + 1} reviewer or admin accounts in all; an admin changes "
               "this on the admin page)")
    warning = review.team_check(db)
    if warning:
        click.echo(f"pof: warning: {warning}", err=True)


def _new_token(db, accounts, name: str, days: int, label: str) -> None:
    """Make an API token, audit it, print its id and expiry (stderr) and the token (stdout)."""
    from pof.casework import audit
    token = accounts.new_token(name, days, label)
    row = accounts.token_row(token)
    audit.append(db, "cli", "token_add", user=name, token_id=row["id"], label=row["label"], expires=row["expires"])
    click.echo(f"API token {row['id']} for {name}, expires {row['expires']} (shown once):", err=True)
    click.echo(token)


@users_group.command(name="tokens")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("name", required=False)
@click.option("--revoke", "revoke_id", metavar="ID", help="revoke the API token with this id")
@click.option("--new", "make_new", is_flag=True, help="make a new API token for NAME (shown once)")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="days a new token lasts")
@click.option("--label", default="", help="what a new token is for")
@friendly
def users_tokens(dataset, name, revoke_id, make_new, days, label) -> None:
    """List the API tokens of DATASET's web app (of user NAME only, if given): id, user, label,
    created, expires, last used, state. --revoke ID revokes one; --new makes one for NAME."""
    from pof.casework import audit
    from pof.casework.accounts import Accounts
    from pof.dataset.catalog import Catalog
    if revoke_id and make_new:
        _fail("give either --revoke or --new")
    with Catalog(dataset) as cat:
        accounts = Accounts(cat.db)
        if revoke_id:
            row = accounts.revoke_token(revoke_id)
            audit.append(cat.db, "cli", "token_revoke", user=row["user"], token_id=row["id"])
            click.echo(f"API token {row['id']} of {row['user']} revoked"
                       + (" (it already was)" if row["revoked"] else ""))
            return
        if make_new:
            if not name:
                _fail("--new needs the user NAME")
            _new_token(cat.db, accounts, name, days, label)
            return
        rows = accounts.tokens(name)
        click.echo("id\tuser\tlabel\tcreated\texpires\tlast used\tstate")
        for t in rows:
            state = "revoked" if t["revoked"] else "expired" if t["expired"] else "active"
            click.echo("\t".join([t["id"], t["user"], t["label"] or "-", t["created"], t["expires"],
                                  t["last_used"] or "never", state]))


@users_group.command(name="list")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@friendly
def users_list(dataset) -> None:
    """List the users of DATASET's web app."""
    from pof.casework.accounts import Accounts
    from pof.dataset.catalog import Catalog
    with Catalog(dataset) as cat:
        for u in Accounts(cat.db).list():
            click.echo(f"{u['name']}\t{u['role']}\t{'disabled' if u['disabled'] else 'active'}\t{u['created']}")


@users_group.command(name="disable")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("name")
@friendly
def users_disable(dataset, name) -> None:
    """Disable user NAME (kept for the record), revoking their tokens and sessions."""
    from pof.casework import audit
    from pof.casework.accounts import Accounts
    from pof.dataset.catalog import Catalog
    with Catalog(dataset) as cat:
        Accounts(cat.db).disable(name)
        audit.append(cat.db, "cli", "user_disable", user=name)
    click.echo(f"user {name} disabled")


@main.group(name="audit")
def audit_group() -> None:
    """The append-only, hash-chained audit log of a dataset."""


@audit_group.command(name="verify")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--expect", metavar="SEQ:HASH", help="a head saved earlier (`pof audit head`): the "
              "chain must still hold that row with that hash")
@friendly
def audit_verify(dataset, expect) -> None:
    """Check every row of DATASET's audit log; exit status 4 names the first bad row."""
    from pof.casework import audit
    from pof.dataset.catalog import Catalog
    if expect is not None:
        audit.parse_head(expect)               # a malformed head stops before the catalog opens
    with Catalog(dataset) as cat:
        v = audit.verify(cat.db, expect)
    if not v.ok:
        click.echo(f"audit log BROKEN at row {v.bad_seq}: {v.problem}")
        sys.exit(EXIT_ALL_FAILED)
    click.echo(f"audit log intact: {v.rows} rows; head {v.head_text} (keep it elsewhere: "
               "`pof audit verify --expect` then detects a rewrite of the whole log)")
    if v.after is not None:
        click.echo(f"the saved head {expect.strip()} is in the chain; {v.after} "
                   f"{'row' if v.after == 1 else 'rows'} came after it")


@audit_group.command(name="head")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="print seq, hash, time and SEQ:HASH as JSON")
@friendly
def audit_head(dataset, as_json) -> None:
    """Print the head of DATASET's audit log (SEQ:HASH, then its time) once the whole log
    verifies: keep it elsewhere and check later with `pof audit verify --expect SEQ:HASH`."""
    from pof.casework import audit
    from pof.dataset.catalog import Catalog
    with Catalog(dataset) as cat:
        v = audit.verify(cat.db)
    if not v.ok:
        click.echo(f"audit log BROKEN at row {v.bad_seq}: {v.problem}")
        sys.exit(EXIT_ALL_FAILED)
    if as_json:
        click.echo(json.dumps({"seq": v.seq, "hash": v.head, "at": v.at, "head": v.head_text}))
    else:
        click.echo(f"{v.head_text} {v.at or '(empty log)'}")


@audit_group.command(name="show")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@friendly
def audit_show(dataset, limit) -> None:
    """Print the newest rows of DATASET's audit log, one JSON object per line."""
    from pof.casework import audit
    from pof.dataset.catalog import Catalog
    with Catalog(dataset) as cat:
        for row in audit.rows(cat.db, limit):
            click.echo(json.dumps(row))


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for groups and clusters.json")
@click.option("--fmr", default=1e-3, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="false-match rate of a link between two faces (sets the linkage threshold)")
@_setting("workers", type=click.IntRange(0, 64))
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object (no progress bars)")
@friendly
def cluster(inputs, out, fmr, workers, quiet, as_json) -> None:
    """Group the faces in IMAGE_OR_DIR... into unknown persons (one folder per group in OUT).

    Two groups are joined when their faces' average similarity passes the verification
    threshold at --fmr (from pof's reference impostor scores); only groups linked in a
    nearest-neighbour graph of the faces are compared, so 10^5 faces fit in minutes. Look-alikes
    can merge and one person can split: groups are leads for a person to check."""
    from pof.matching.cluster import cluster_files, expand_inputs, write_groups
    from pof.settings import value
    workers = value("workers", workers)
    paths, problems = expand_inputs(list(inputs))
    result = cluster_files(paths, fmr=fmr, workers=_probe_workers(workers, len(paths)),
                           progress=not (quiet or as_json))
    write_groups(result, Path(out))
    for path, reason in problems + result.problems:
        click.echo(f"error: {path}: {reason}", err=True)
    if as_json:
        click.echo(json.dumps({"faces": len(result.faces), "images": len(paths), "groups": result.n_groups,
                               "threshold": round(result.threshold, 4), "fmr": fmr, "out": str(out),
                               "errors": [{"image": p, "reason": r} for p, r in problems + result.problems]}))
    else:
        click.echo(f"{len(result.faces)} faces in {len(paths)} images -> {result.n_groups} groups "
                   f"(link threshold {result.threshold:.3f} at FMR {fmr:g}) in {out}")
    _finish(len(paths) - len(result.problems), len(problems) + len(result.problems))


@main.command()
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.option("--repair", is_flag=True, help="rebuild what the catalog can rebuild; move unknown and "
              "corrupt files into DATASET/lost+found/")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: problems, repairs, status")
@friendly
def fsck(dataset, repair, as_json) -> None:
    """Check DATASET's files against CHECKSUMS.sha256 and its catalog, one line a problem.

    Exit status: 0 clean, 3 problems --repair can mend, 4 problems it cannot (a damaged
    catalog: restore it from a backup, or build the same sources again)."""
    from pof.dataset.fsck import fsck as check
    result = check(Path(dataset), repair=repair)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        for line in result.repaired:
            click.echo(f"repaired: {line}")
        for p in result.problems:
            click.echo(("" if p.repairable else "NOT REPAIRABLE: ") + p.line())
        if not result.problems:
            click.echo(f"{dataset}: clean" + (" after repair" if result.repaired else ""))
        elif repair:
            click.echo(f"{dataset}: {len(result.problems)} problem(s) left that --repair cannot mend")
        else:
            n = sum(not p.repairable for p in result.problems)
            click.echo(f"{dataset}: {len(result.problems)} problem(s)"
                       + (f", {n} not repairable" if n else "; `pof fsck --repair` mends them"))
    sys.exit(result.status)


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    import errno
    import sqlite3
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc))


if __name__ == "__main__":
    main()
