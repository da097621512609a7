"""pof audit: the dataset's hash-chained audit log."""
from __future__ import annotations

import json
import sys

import click

from pof.cli.common import EXIT_ALL_FAILED, friendly


@click.group(name="audit")
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
    from pof.dataset.handle import Dataset
    if expect is not None:
        audit.parse_head(expect)               # a malformed head stops before the catalog opens
    with Dataset.open(dataset).catalog() as cat:
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
    from pof.dataset.handle import Dataset
    with Dataset.open(dataset).catalog() as cat:
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
    from pof.dataset.handle import Dataset
    with Dataset.open(dataset).catalog() as cat:
        for row in audit.rows(cat.db, limit):
            click.echo(json.dumps(row))
