"""The ``pof`` command line (docs/cli.md). Errors are reported per item, never as a traceback.

One module per group of commands: build (build, fsck, demo), search, verify (verify,
cluster), evaluate (eval), publish (redact, report), serve (serve, users), audit; common
holds the exit statuses, the error handling and the options of pof's settings.
"""
from __future__ import annotations

import os

import click

from pof.cli import audit, build, evaluate, publish, search, serve, verify
from pof.cli.common import EXIT_HELP


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
@click.version_option(package_name="pof")
def main() -> None:
    """pof: build, search and publish a face dataset of public officials, for accountability
    research. Every identification is a candidate with its error rate, never a verdict.

    Settings (see each option) come from pof's defaults, overridden by the environment
    (POF_<NAME>, e.g. POF_DETECTOR=hog), overridden by the command line."""
    os.umask(0o077)     # what pof writes (photos, crops, records) is private to its owner


for command in (build.build, build.fsck, build.demo, search.search, verify.verify, verify.cluster,
                evaluate.eval_group, publish.redact, publish.report, serve.serve, serve.users_group,
                audit.audit_group):
    main.add_command(command)
del command

if __name__ == "__main__":
    main()
