"""``pof demo``: the main job on a few bundled public-domain photos.

Builds a two-person dataset from ``pof/data/demo/manifest.csv`` (with provenance), then searches
two probes: another photo of an enrolled person, and a person who is not enrolled.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

DEMO = Path(__file__).parent / "data" / "demo"


def run_demo(out: Path) -> None:
    from pof.dataset.build import Builder
    from pof.pipeline import Pipeline
    from pof.matching.search import Gallery, Searcher

    click.echo(f"1. Building a dataset from {DEMO / 'manifest.csv'} into {out}/ ...")
    report = Builder(out).run([str(DEMO / "manifest.csv")], progress=True)
    click.echo(f"   {report.added_faces} new faces; dataset files: "
               f"{', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))}")
    searcher = Searcher(Gallery.load(out))
    cal = searcher.calibration
    click.echo(f"2. Decision threshold {cal.threshold:.3f} for FPIR <= {cal.target_fpir:.0%} "
               f"over {cal.persons} persons ({cal.method}).")
    pipeline = Pipeline()
    results = []
    for probe in sorted((DEMO / "probes").glob("*.jpg")):
        faces = pipeline.analyze_file(probe, with_crops=False)
        found = [r.to_json() for r in searcher.search(faces, top=2)]
        results.append({"image": probe.name, "faces": found})
        for r in found:
            top = r["candidates"][0]
            verdict = ("possible match: " + top["name"]) if r["decision"] == "match" else "no confident match"
            click.echo(f"3. {probe.name}: {verdict} (best score {top['score']:.3f} for {top['name']}, "
                       f"FMR at that score {top['fmr']:.2g}, evidence {', '.join(top['evidence'])})")
    (out / "demo_search.json").write_text(json.dumps(results, indent=1) + "\n")
    click.echo(f"Done. Crops in {out / 'images'}, metadata in {out / 'metadata.csv'}, search results in "
               f"{out / 'demo_search.json'}.\nA match is a lead for a person to check, never an identification.")
