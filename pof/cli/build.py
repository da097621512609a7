"""pof build, pof fsck and pof demo: making and checking a dataset."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pof.cli.common import finish, friendly, setting


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="dataset folder")
@setting("workers")
@setting("device")
@setting("detector")
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
    finish(report.done, report.failed)


@click.command()
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


@click.command()
@click.option("--out", default="pof-demo", show_default=True, type=click.Path(file_okay=False), help="where to write the demo dataset")
@friendly
def demo(out) -> None:
    """Build a dataset from bundled public-domain photos, search it, say where things are."""
    from pof.demo import run_demo
    run_demo(Path(out))
