"""The layer rule of CONTRIBUTING.md, kept: imports go one way, and no module grows past ~400
lines."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

PACKAGE = ROOT / "pmbnn"
# Module (or subpackage) -> layer; a module may import only from its own layer or below.
LAYERS = {
    "errors": 0, "jsontext": 0, "interrupts": 0, "locks": 0, "manifest": 0, "files": 0,
    "trace": 0, "loss": 0, "published": 0, "verdicts": 0, "mixture": 0,
    "validation_messages": 0, "cores": 0,
    "spec": 1, "families": 1, "tables": 1, "examples": 1, "data": 1,
    "model": 2,
    "inference": 3,
    "predict": 4, "fitted": 4, "evaluation": 4, "prior_check": 4,
    "pipeline": 5, "run": 5, "uci": 5, "cluster": 5, "batch_predict": 5,
    "vi_quality": 6, "diagnostics": 6, "predictive_checks": 6, "compare": 6,
    "report": 7, "text": 7, "bench": 7, "sweep": 7, "sklearn": 7, "cli": 7, "arguments": 7,
}  # fmt: skip
MAX_LINES = 400


def _unit(path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pmbnn."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "pmbnn":
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pmbnn."))
    return names


def test_every_module_has_a_layer():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_go_down_the_layers_only():
    upward = [
        f"{path.relative_to(ROOT)} ({LAYERS[_unit(path)]}) imports {name} ({LAYERS[name]})"
        for path in PACKAGE.rglob("*.py")
        if _unit(path) in LAYERS
        for name in _imports(path)
        if name in LAYERS and LAYERS[name] > LAYERS[_unit(path)]
    ]
    assert upward == []


def test_no_module_over_the_size_limit():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_module_serializes_python_objects():
    """Saved artifacts are data (TOML, JSON, netCDF): no module imports an object serializer."""
    banned = {"pickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in banned]
    assert found == []
