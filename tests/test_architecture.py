"""The house rules of the code, checked on the source: imports point down the layers, nothing
below the faces draws, and no function grows past 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "costmodel"
#: Layers bottom-up; a module may import its own layer and those below (see each __init__).
LAYERS = ("specs", "formulas", "tables", "jobs", "search", "validation", "faces")
MAX_FUNCTION_LINES = 80


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _layer(path: Path) -> int:
    rel = path.relative_to(PACKAGE).parts
    if len(rel) == 1:  # costmodel/__init__.py, __main__.py: the public face, above everything
        return len(LAYERS)
    return LAYERS.index(rel[0])


def _imported_layers(path: Path):
    """(line, imported costmodel layer name) for every import in the file, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "costmodel" and len(parts) > 1 and parts[1] in LAYERS:
                yield node.lineno, parts[1]


def test_every_module_lives_in_a_layer_package_with_a_docstring():
    for pkg in LAYERS:
        init = PACKAGE / pkg / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{pkg}/__init__.py says what lives there"
    flat = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert flat == [], f"modules outside the layer packages: {flat}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_only(path):
    own = _layer(path)
    upward = [(line, layer) for line, layer in _imported_layers(path) if LAYERS.index(layer) > own]
    assert upward == [], f"{path.relative_to(ROOT)} imports a higher layer: {upward}"


def test_no_relative_imports_and_no_drawing_below_the_faces():
    for path in _modules():
        tree = ast.parse(path.read_text())
        rel = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
        assert rel == [], f"{path}: relative imports at lines {rel}"
        if _layer(path) < LAYERS.index("faces"):
            text = path.read_text()
            assert "import streamlit" not in text and "import plotly" not in text, path


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    for path in _modules():
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("costmodel."):
                deps.add(node.module)
        graph[mod] = deps
    # Package __init__ files re-export their layer; an edge into a package is an edge to its init.
    seen, stack = set(), []

    def visit(node, path):
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(node):], node]))
        if node in seen:
            return
        seen.add(node)
        for dep in graph.get(node, ()):
            visit(dep, [*path, node])

    for node in sorted(graph):
        visit(node, stack)


def test_functions_stay_under_80_lines():
    long = []
    for root in ("costmodel", "hardware_catalog", "app_pages", "benchmarks"):
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []
