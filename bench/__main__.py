"""python -m bench STUDY [ARGS...] runs one study; python -m bench --list names them all."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

from bench import STUDIES

USAGE = "usage: python -m bench STUDY [ARGS...]   (python -m bench --list; python -m bench STUDY --help)"


def summary(name: str) -> str:
    """The first line of a study's docstring, read from its source (nothing is imported)."""
    path = Path(__file__).with_name(f"{name}.py")
    doc = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
    return doc.strip().split("\n")[0]


def listing() -> str:
    width = max(map(len, STUDIES))
    return "\n".join(f"{name:<{width}}  {summary(name)}" for name in STUDIES)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + listing())
        return 0
    if argv[0] == "--list":
        print(listing())
        return 0
    name = argv[0]
    if name not in STUDIES:
        print(f"error: no study {name!r}; python -m bench --list names them", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
