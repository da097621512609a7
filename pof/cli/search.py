"""pof search: faces in photos and videos against a dataset."""
from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from pof.cli.common import finish, friendly, probe_workers, setting
from pof.cli.show import _print_candidates, _print_search, _print_video, _verdict
from pof.errors import PofError


@click.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1, required=True)
@setting("top")
@setting("fpir")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per image, one per line")
@setting("workers")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="search only persons whose attribution matches, e.g. agency=NYPD; repeatable")
@click.option("--same-person", is_flag=True,
              help="IMAGES show one unknown person: fuse the largest face of each into one query")
@click.option("--stride", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="videos: run the detector on every Nth frame (0: about 8 frames a second)")
@setting("device")
@friendly
def search(dataset, images, top, fpir, as_json, workers, where, same_person, stride, device) -> None:
    """Search every face in IMAGES against DATASET: ranked candidates, open-set decision.

    IMAGES are files or folders (every file inside, recursively, in name order, whatever its
    extension); an unreadable or faceless one is reported and the rest go on.
    With --where the gallery is narrowed first (the threshold is then calibrated for the
    persons left, so the FPIR stays as stated). With --same-person the largest face of each
    image is taken as the same unknown person and one fused query is searched, judged by a
    rule calibrated for that many images (one result for all the images).

    Videos (MP4, MOV, MKV, WebM, AVI, recognised by their bytes) are read frame by frame:
    each face followed through the clip is one track with one decision, judged like
    --same-person from its best frames (one result per video, after the images). With
    --device cuda the frames of a video are analysed on the GPU, gpu_batch at a time."""
    from pof.dataset.handle import Dataset
    from pof.matching.search import result_line
    from pof.settings import value
    top, workers = value("top", top), value("workers", workers)
    ds = Dataset.open(dataset)
    gallery = ds.gallery()
    if where:
        conditions: dict[str, list[str]] = {}
        for w in where:
            key, sep, val = w.partition("=")
            if not sep or not key:
                raise PofError(f"--where needs KEY=VALUE, got {w!r}")
            conditions.setdefault(key.strip(), []).append(val.strip())
        gallery = gallery.filter(**conditions)
    engine = None
    if value("device", device) == "cuda":
        from pof.runtime.device import build_engine
        engine = build_engine()     # "cuda": pof's GPU engine; None: ONNX Runtime's CUDA provider
    # the descriptor backend it was built with (photos on the CPU where the engine has the GPU)
    pipeline = ds.pipeline(device="cpu") if engine else ds.pipeline()
    images, empty = _expand(images)
    from pof.pipeline import OPENVINO_MIN_PHOTOS
    from pof.video.search import is_video
    kinds = [is_video(p) for p in images]
    videos = [p for p, v in zip(images, kinds) if v]
    if videos and engine:
        from pof.gpu.engine import GpuEngine
        analyzer = GpuEngine(engine, settings=pipeline.settings)
    else:
        analyzer = pipeline
    images = [p for p, v in zip(images, kinds) if not v]
    pipeline.settle_runtime(len(images) + OPENVINO_MIN_PHOTOS * len(videos))
    # a subset (--where) is searched without the saved index (made for the whole gallery)
    searcher = ds.searcher(gallery, saved_index=not where, fpir=fpir)
    for folder in empty:
        if as_json:
            click.echo(result_line(folder, [], "folder holds no files"))
        else:
            _print_search(folder, [], "folder holds no files")
    if same_person:
        done, failed = _search_same_person(searcher, pipeline, images, top, as_json, workers) \
            if images else (0, 0)
        vdone, vfailed = _search_videos(searcher, analyzer, videos, top, as_json, stride)
        if analyzer is not pipeline:
            analyzer.close()
        finish(done + vdone, failed + vfailed + len(empty))
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
    vdone, vfailed = _search_videos(searcher, analyzer, videos, top, as_json, stride)
    if analyzer is not pipeline:
        analyzer.close()
    finish(len(images) + len(empty) - failed + vdone, failed + vfailed)


def _analyzed(pipeline, paths: list[str], workers: int):
    """(path, faces, error) for each probe, in order, with a progress bar."""
    from pof.runtime.workers import pipeline_map
    from pof.pipeline import faces_or_error
    jobs = ((p,) for p in paths)
    results = pipeline_map(pipeline, faces_or_error, jobs, probe_workers(workers, len(paths)))
    for path, (faces, error) in zip(paths, results):
        yield path, faces, error


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
