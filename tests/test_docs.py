"""The documents say what the code does: every command and option of the command line is in
docs/cli.md, every setting in docs/settings.md, every relative link leads to a file (and a
heading) that exists, and no document points outside the repository.

The command line is read by walking the click tree from ``pof.cli.main``, so a command or an
option added anywhere in it must be documented before this test passes.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCUMENTS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def commands(group: click.Command, path: tuple[str, ...] = ()):
    """(path, command) for the group and every command beneath it, hidden ones left out."""
    yield path, group
    if isinstance(group, click.Group):
        for name, sub in sorted(group.commands.items()):
            if not sub.hidden:
                yield from commands(sub, path + (name,))


def option_names(command: click.Command) -> list[str]:
    """Every long or short spelling of every option (``--mirror`` and ``--no-mirror`` alike)."""
    return [name for p in command.params if isinstance(p, click.Option) and not p.hidden
            for name in (*p.opts, *p.secondary_opts)]


def sections(text: str) -> dict[str, str]:
    """Text under each ``## `` heading, by heading."""
    parts = re.split(r"^## +(.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def section_for(path: tuple[str, ...], text: str) -> str:
    """The part of docs/cli.md about command ``path``: the section headed by the longest
    ``pof ...`` prefix of it (``pof users`` for ``users add``), else the whole page."""
    found = sections(text)
    for n in range(len(path), 0, -1):
        heading = "pof " + " ".join(path[:n])
        if heading in found:
            return found[heading]
    return text


def undocumented(group: click.Command, text: str) -> list[str]:
    """'pof CMD' or 'pof CMD --option' for everything in the click tree missing from ``text``."""
    missing = []
    for path, command in commands(group):
        name = " ".join(("pof",) + path)
        if path and name not in text:
            missing.append(name)
        part = section_for(path, text)
        missing += [f"{name} {opt}" for opt in option_names(command)
                    if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", part)]
    return missing


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, markup and punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", path.read_text()), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def broken_links(doc: Path) -> list[str]:
    """Relative links of ``doc`` whose file, or heading, does not exist."""
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"[a-z]+:", target):            # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        where = (doc.parent / file).resolve() if file else doc
        if not where.exists():
            broken.append(f"{doc.name}: {target} (no such file)")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{doc.name}: {target} (no such heading)")
    return broken


def test_every_command_and_option_in_cli_reference():
    from pof.cli import main
    assert undocumented(main, (DOCS / "cli.md").read_text()) == []


def test_every_setting_in_settings_page():
    from pof.settings import SETTINGS
    text = (DOCS / "settings.md").read_text()
    assert [s.name for s in SETTINGS if f"`{s.name}`" not in text] == []


def test_every_web_limit_in_settings_page():
    from pof.web.state import WebConfig
    text = (DOCS / "settings.md").read_text()
    fields = [f.name for f in dataclasses.fields(WebConfig) if f.name != "hasher"]
    assert [name for name in fields if f"`{name}`" not in text] == []


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(doc):
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_stay_inside_the_repository(doc):
    text = doc.read_text()
    assert "SPEC" not in text
    assert "../shared" not in text


def test_docs_pages_link_nothing_outside_the_repository():
    outside = [f"{p.name}: {t}" for p in DOCS.glob("*.md")
               for t in LINK.findall(p.read_text()) if re.match(r"[a-z]+:", t)]
    assert outside == []


def test_the_checks_can_fail(tmp_path):
    """An undocumented command or option, a link to a missing file or heading, are caught."""
    @click.group()
    def cli():
        pass

    @cli.command(name="grab")
    @click.option("--mirror/--no-mirror", default=True)
    @click.option("--out")
    def grab(mirror, out):
        pass

    assert undocumented(cli, "## pof grab\n`--mirror` `--out`") == ["pof grab --no-mirror"]
    assert undocumented(cli, "## pof other\n--mirror --no-mirror --out") == ["pof grab"]
    assert undocumented(cli, "## pof grab\n--mirror --no-mirror --outside") == ["pof grab --out"]

    (tmp_path / "a.md").write_text("# Title\n## The web app's limits\n")
    doc = tmp_path / "b.md"
    doc.write_text("[ok](a.md#the-web-apps-limits) [x](missing.md) [y](a.md#nowhere)\n"
                   "```\n[not a link](in-a-fence.md)\n```\n[web](https://example.org)\n")
    assert broken_links(doc) == ["b.md: missing.md (no such file)", "b.md: a.md#nowhere (no such heading)"]
