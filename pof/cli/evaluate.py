"""pof eval pairs and pof eval ident: measuring pof on a labelled set."""
from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from pof.cli.common import friendly, probe_workers, setting
from pof.cli.verify import _verify_options


@click.group(name="eval")
def eval_group() -> None:
    """Measure pof on a labelled set: verification pairs or open-set identification."""


def _eval_common(fn):
    fn = click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", help="folder the CSV's paths are relative to")(fn)
    fn = click.option("--by", default=None, help="also give figures per value of this column")(fn)
    fn = click.option("--out", type=click.Path(file_okay=False), default="pof-eval", show_default=True, help="where figures and pictures go")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")(fn)
    fn = setting("workers")(fn)
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
        result = run_pairs(Path(pairs), Path(root), Path(out), by, probe_workers(workers, n),
                           lambda: bar.update(1), subject=face, mirror=mirror)
    _print_eval(result, as_json)


@eval_group.command(name="ident")
@click.argument("manifest", type=click.Path(dir_okay=False, exists=True))
@_eval_common
@setting("fpir")
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
        result = run_ident(Path(manifest), Path(root), Path(out), by, probe_workers(workers, n),
                           lambda: bar.update(1), fpir, subject=face)
    _print_eval(result, as_json)
