"""The package's folders are its design: each layer imports only from the layers beneath it.

    errors, record, settings          the vocabulary every layer shares
    runtime                           model files, ONNX / OpenVINO sessions, worker processes
    stages                            one step of the analysis each (load ... attributes)
    pipeline, gpu                     the stages in order, on the CPU or batched on a GPU
    dataset, matching                 what a build writes; galleries, search, calibration
    evaluation, redact, report, video what is made from the dataset and the search
    casework                          accounts, the audit log, reviews
    web, cli, demo                    the ways people use all of it

The test reads every module's imports (module level and inside functions alike) from the
source, so a lazy import cannot hide an upward dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pof

PACKAGE = Path(pof.__file__).resolve().parent

LAYERS = {
    "pof.errors": 0, "pof.record": 0, "pof.settings": 0,
    "pof.runtime": 1,
    "pof.stages": 2,
    "pof.pipeline": 3, "pof.gpu": 3,
    "pof.dataset": 4, "pof.matching": 4,
    "pof.evaluation": 5, "pof.redact": 5, "pof.report": 5, "pof.video": 5,
    "pof.casework": 6,
    "pof.web": 7, "pof.cli": 7, "pof.demo": 7, "pof.__main__": 7,
}
MOST_TOP_LEVEL_MODULES = 12


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of a pof module: the longest prefix in LAYERS; None for the package root."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    return None


def imports_of(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of a pof module in one file."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pof"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "pof":
                continue
            if target == "pof":   # from pof import x: x may be a subpackage
                found += [(node.lineno, f"pof.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def test_every_module_has_a_layer():
    homeless = [module_name(p) for p in PACKAGE.rglob("*.py")
                if module_name(p) != "pof" and layer_of(module_name(p)) is None]
    assert homeless == []


def test_imports_point_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(module_name(path))
        if here is None:      # the package root re-exports the public API, lazily
            continue
        for line, target in imports_of(path):
            there = layer_of(target)
            if there is not None and there > here:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert upward == []


def test_top_level_is_small():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= MOST_TOP_LEVEL_MODULES, modules


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule can fail: imports of the web app from a stage are caught, relative or not,
    inside a function or not."""
    stage = tmp_path / "pof" / "stages" / "example.py"
    stage.parent.mkdir(parents=True)
    stage.write_text("from ..web import app\n"
                     "def later():\n    import pof.casework.audit\n    from pof import cli\n")
    found = sorted(imports_of(stage, root=tmp_path))
    assert [target for _, target in found] == ["pof.web", "pof.casework.audit", "pof.cli"]
    assert all(layer_of(t) > layer_of("pof.stages.example") for _, t in found)
