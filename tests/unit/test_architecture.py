"""The import graph of src/: arrows point one way (docs/architecture.md), and no module is part of a cycle.

    handler -> adapters -> pipeline (errors, settings, ports only) ; handler -> pipeline -> scoring

Read from the source with ast (every import statement, at module level or inside a function), not by importing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("scoring", "pipeline", "adapters", "handler")
# For each package, the modules of ours it may import (a package name allows all of that package).
ALLOWED: dict[str, tuple[str, ...]] = {
    "scoring": ("scoring",),
    "pipeline": ("pipeline", "scoring"),
    "adapters": ("adapters", "pipeline.errors", "pipeline.settings", "pipeline.ports"),
    "handler": PACKAGES,
}


def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = SRC) -> set[str]:
    """The modules of ours that a file imports (``from a import b`` counts as ``a.b`` when a.b is a module)."""
    this = module_name(path, root)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = this.split(".") if path.name == "__init__.py" else this.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}", root))
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    return {
        module_name(path, root): imports_of(path, root)
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }


def forbidden_edges(graph: dict[str, set[str]]) -> list[str]:
    edges = []
    for module, targets in sorted(graph.items()):
        allowed = ALLOWED[module.split(".")[0]]
        for target in sorted(targets):
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                edges.append(f"{module} -> {target}")
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, from where the walk entered it)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the walk's path, "done" after

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target not in graph or target == module:
                continue  # a package's __init__ importing its own submodule is not an edge here
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    return found


def test_src_imports_only_point_the_allowed_way() -> None:
    # Given the import graph of src/ / When it is checked against the allowed arrows
    edges = forbidden_edges(import_graph())
    # Then no module imports a package (or a pipeline module, for adapters) it may not
    assert edges == [], "forbidden imports:\n" + "\n".join(edges)


def test_src_has_no_import_cycle() -> None:
    # Given the import graph of src/ / When it is walked
    found = cycles(import_graph())
    # Then no module imports itself through others
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize(
    ("files", "forbidden", "cycle"),
    [
        ({"pipeline/process.py": "from adapters.s3 import S3Source\n"}, ["pipeline.process -> adapters.s3"], []),
        ({"scoring/scorer.py": "import pipeline.errors\n"}, ["scoring.scorer -> pipeline.errors"], []),
        ({"adapters/s3.py": "from handler import app\n"}, ["adapters.s3 -> handler", "adapters.s3 -> handler.app"], []),
        ({"adapters/s3.py": "from pipeline.process import Pipeline\n"}, ["adapters.s3 -> pipeline.process"], []),
        ({"adapters/s3.py": "from pipeline.ports import ObjectRef\n"}, [], []),
        (
            {"pipeline/a.py": "def f():\n    from pipeline import b\n", "pipeline/b.py": "from . import a\n"},
            [],
            [["pipeline.a", "pipeline.b", "pipeline.a"]],
        ),
    ],
    ids=["pipeline-imports-adapter", "scoring-imports-pipeline", "adapter-imports-handler", "adapter-imports-process",
         "adapter-imports-ports", "cycle-through-a-function-import"],
)  # fmt: skip
def test_the_checks_find_a_forbidden_edge_or_a_cycle(
    tmp_path: Path, files: dict[str, str], forbidden: list[str], cycle: list[list[str]]
) -> None:
    # Given a small tree with one bad (or one allowed) import
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name in ("pipeline/process.py", "pipeline/ports.py", "pipeline/errors.py", "adapters/s3.py", "handler/app.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "scoring/scorer.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    # When the graph is built and checked
    graph = import_graph(tmp_path)
    # Then exactly the planted edge or cycle is reported
    assert forbidden_edges(graph) == forbidden
    assert cycles(graph) == cycle


def code_lines(path: Path) -> int:
    """Lines that are not blank, a comment or a docstring."""
    text = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef) and ast.get_docstring(node) is not None:
            first = node.body[0]
            docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return sum(
        1
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    )


def test_the_handler_is_thin() -> None:
    # Given the Lambda entry point's module
    app = SRC / "handler" / "app.py"
    # When its code is measured / Then it is the composition and one call: at most 40 lines, lambda_handler one line
    assert code_lines(app) <= 40
    [handler] = [
        n for n in ast.parse(app.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "lambda_handler"
    ]
    assert len(handler.body) == 1 and isinstance(handler.body[0], ast.Return)
