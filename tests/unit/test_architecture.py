"""The import graph of src/, tools/ and benchmarks/: arrows point one way (docs/architecture.md), no module is part
of a cycle.

    src/:        handler -> adapters -> pipeline (errors, settings, ports only) ;
                 handler -> pipeline -> monitoring -> scoring
    tools/:      commands -> emulated -> sam_template ; commands -> model_import, make_files ; all may use src/
    benchmarks/: -> tools/ and src/ ; nothing imports benchmarks/, and src/ imports neither tools/ nor benchmarks/

Read from the source with ast (every import statement, at module level or inside a function), not by importing.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC_PACKAGES = ("scoring", "monitoring", "pipeline", "adapters", "handler")
OUR_PACKAGES = (*SRC_PACKAGES, "tools", "benchmarks")
# For each layer (the longest matching prefix of a module's name wins), the modules of ours it may import (a
# package name allows all of that package).
ALLOWED: dict[str, tuple[str, ...]] = {
    "scoring": ("scoring",),
    "monitoring": ("monitoring", "scoring"),
    "pipeline": ("pipeline", "scoring", "monitoring"),
    "adapters": ("adapters", "pipeline.errors", "pipeline.settings", "pipeline.ports"),
    "handler": SRC_PACKAGES,
    "tools": ("tools",),  # the package's __init__ only
    "tools.sam_template": (),
    "tools.make_files": (),
    "tools.emulated": ("tools.emulated", "tools.sam_template", *SRC_PACKAGES),
    "tools.model_import": ("tools.model_import", *SRC_PACKAGES),
    "tools.commands": (
        "tools.commands",
        "tools.emulated",
        "tools.model_import",
        "tools.sam_template",
        "tools.make_files",
        *SRC_PACKAGES,
    ),
    "benchmarks": ("benchmarks", "tools", *SRC_PACKAGES),
}


def _root_of(path: Path, root: Path) -> Path:
    """Where a file's module name starts: src/ for the function's packages, the repository root otherwise."""
    return root / "src" if path.is_relative_to(root / "src") else root


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(_root_of(path, root)).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
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
    return {name for name in found if name.split(".")[0] in OUR_PACKAGES}


def _is_module(name: str, root: Path) -> bool:
    for base in (root / "src", root):
        path = base.joinpath(*name.split("."))
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


def _package_dirs(root: Path) -> list[Path]:
    return [d for d in [*(root / "src" / p for p in SRC_PACKAGES), root / "tools", root / "benchmarks"] if d.is_dir()]


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {
        module_name(path, root): imports_of(path, root)
        for package in _package_dirs(root)
        for path in sorted(package.rglob("*.py"))
    }


@functools.cache
def repository_graph() -> dict[str, set[str]]:
    """The repository's own graph, read once per session (ast over ~100 files: about a second)."""
    return import_graph()


def layer_of(module: str) -> str:
    matches = [layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")]
    return max(matches, key=len)


def forbidden_edges(graph: dict[str, set[str]]) -> list[str]:
    edges = []
    for module, targets in sorted(graph.items()):
        allowed = ALLOWED[layer_of(module)]
        for target in sorted(targets):
            if target == module or module.startswith(target + "."):
                continue  # a module's own package (its __init__), as Python imports it first anyway
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


@pytest.mark.parametrize("folder", ["src", "tools", "benchmarks"])
def test_imports_only_point_the_allowed_way(folder: str) -> None:
    # Given the import graph of the repository's code / When the folder's modules are checked against their arrows
    graph = repository_graph()
    edges = [e for e in forbidden_edges(graph) if _in_folder(e.split(" -> ")[0], folder)]
    # Then no module imports a layer (or, for adapters, a pipeline module) it may not
    assert edges == [], "forbidden imports:\n" + "\n".join(edges)


def _in_folder(module: str, folder: str) -> bool:
    top = module.split(".")[0]
    return top in SRC_PACKAGES if folder == "src" else top == folder


def test_every_module_of_tools_and_benchmarks_is_in_the_graph() -> None:
    # Given the files under tools/ and benchmarks/ / When the graph is built
    graph = repository_graph()
    # Then each one is a node (none escapes the check), and the layout has its two folders of tools
    files = [p for d in ("tools", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    assert {module_name(p) for p in files} <= set(graph)
    assert {"tools.emulated.local_stack", "tools.commands.score", "benchmarks.bench_e2e"} <= set(graph)


def test_there_is_no_import_cycle() -> None:
    # Given the import graph of src/, tools/ and benchmarks/ / When it is walked
    found = cycles(repository_graph())
    # Then no module imports itself through others
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def _module_path(name: str, root: Path = ROOT) -> Path | None:
    for base in (root / "src", root):
        path = base.joinpath(*name.split("."))
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _top_level_names(path: Path) -> set[str] | None:
    """What a module defines at its top level (None: it has a ``from x import *`` or a module ``__getattr__``)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # also inside if/try blocks at module level; functions' locals are harmless extras
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if node.name == "__getattr__" and node in tree.body:
                return None
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def missing_names(root: Path = ROOT) -> list[str]:
    """``from our.module import name`` where the module has no such name (nor a submodule of that name)."""
    missing = []
    for package in _package_dirs(root):
        for path in sorted(package.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in OUR_PACKAGES or (target := _module_path(node.module, root)) is None:
                    continue
                defined = _top_level_names(target)
                for alias in node.names:
                    absent = defined is not None and alias.name not in defined
                    if absent and _module_path(f"{node.module}.{alias.name}", root) is None:
                        missing.append(f"{module_name(path, root)}: from {node.module} import {alias.name}")
    return missing


def test_every_name_imported_from_our_modules_is_there() -> None:
    # Given every `from <our module> import <name>` in src/, tools/ and benchmarks/ (at any depth: function-level
    # imports run only when called, so a move that leaves one behind would fail at run time)
    # When each name is looked up in that module's source
    found = missing_names()
    # Then it is there
    assert found == [], "imported names that are not there:\n" + "\n".join(found)


def test_a_name_left_behind_by_a_move_is_found(tmp_path: Path) -> None:
    # Given a command importing, inside a function, a name that moved to another module
    (tmp_path / "tools" / "commands").mkdir(parents=True)
    (tmp_path / "tools" / "__init__.py").touch()
    (tmp_path / "tools" / "commands" / "__init__.py").touch()
    (tmp_path / "tools" / "commands" / "invoke.py").write_text("def run():\n    pass\n")
    (tmp_path / "tools" / "commands" / "serve.py").write_text(
        "def serve():\n    from tools.commands.invoke import make_uploader, run\n"
    )
    # When the imports are checked / Then exactly that name is reported
    assert missing_names(tmp_path) == ["tools.commands.serve: from tools.commands.invoke import make_uploader"]


TREE = (
    "src/pipeline/process.py", "src/pipeline/ports.py", "src/pipeline/errors.py", "src/adapters/s3.py",
    "src/handler/app.py", "src/scoring/scorer.py", "tools/sam_template.py", "tools/make_files.py",
    "tools/emulated/local_stack.py", "tools/emulated/s3_events.py", "tools/commands/score.py",
    "tools/commands/invoke.py", "benchmarks/burst.py",
)  # fmt: skip


@pytest.mark.parametrize(
    ("files", "forbidden", "cycle"),
    [
        ({"src/pipeline/process.py": "from adapters.s3 import S3Source\n"}, ["pipeline.process -> adapters.s3"], []),
        ({"src/scoring/scorer.py": "import pipeline.errors\n"}, ["scoring.scorer -> pipeline.errors"], []),
        ({"src/adapters/s3.py": "from handler import app\n"},
         ["adapters.s3 -> handler", "adapters.s3 -> handler.app"], []),
        ({"src/adapters/s3.py": "from pipeline.process import Pipeline\n"}, ["adapters.s3 -> pipeline.process"], []),
        ({"src/adapters/s3.py": "from pipeline.ports import ObjectRef\n"}, [], []),
        (
            {"src/pipeline/a.py": "def f():\n    from pipeline import b\n", "src/pipeline/b.py": "from . import a\n"},
            [],
            [["pipeline.a", "pipeline.b", "pipeline.a"]],
        ),
        ({"src/handler/app.py": "from tools.emulated import local_stack\n"},
         ["handler.app -> tools.emulated", "handler.app -> tools.emulated.local_stack"], []),
        ({"tools/emulated/local_stack.py": "from tools.commands.invoke import patch_event\n"},
         ["tools.emulated.local_stack -> tools.commands.invoke"], []),
        ({"tools/sam_template.py": "from tools.emulated.local_stack import REGION\n"},
         ["tools.sam_template -> tools.emulated.local_stack"], []),
        ({"tools/commands/score.py": "from benchmarks import burst\n"},
         ["tools.commands.score -> benchmarks", "tools.commands.score -> benchmarks.burst"], []),
        ({"tools/commands/score.py": "from tools.emulated.local_stack import local_stack\nimport handler.app\n"},
         [], []),
        (
            {"tools/emulated/s3_events.py": "from tools.emulated.local_stack import BUCKET\n",
             "tools/emulated/local_stack.py": "def f():\n    from tools.emulated.s3_events import upload\n"},
            [],
            [["tools.emulated.local_stack", "tools.emulated.s3_events", "tools.emulated.local_stack"]],
        ),
        (
            {"tools/commands/score.py": "from tools.commands import invoke\n",
             "tools/commands/invoke.py": "from . import score\n"},
            [],
            [["tools.commands.invoke", "tools.commands.score", "tools.commands.invoke"]],
        ),
    ],
    ids=["pipeline-imports-adapter", "scoring-imports-pipeline", "adapter-imports-handler", "adapter-imports-process",
         "adapter-imports-ports", "cycle-through-a-function-import", "src-imports-tools", "emulated-imports-a-command",
         "template-reader-imports-the-stack", "tools-import-benchmarks", "command-imports-emulated-and-src",
         "cycle-in-emulated", "cycle-in-commands"],
)  # fmt: skip
def test_the_checks_find_a_forbidden_edge_or_a_cycle(
    tmp_path: Path, files: dict[str, str], forbidden: list[str], cycle: list[list[str]]
) -> None:
    # Given a small tree with one bad (or one allowed) import
    for name in TREE:
        for parent in reversed((tmp_path / name).relative_to(tmp_path).parents[:-1]):
            if parent != Path("src"):
                (tmp_path / parent).mkdir(parents=True, exist_ok=True)
                (tmp_path / parent / "__init__.py").touch()
        (tmp_path / name).write_text("")
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
    app = ROOT / "src" / "handler" / "app.py"
    # When its code is measured / Then it is the composition and one call: at most 40 lines, lambda_handler one line
    assert code_lines(app) <= 40
    [handler] = [
        n for n in ast.parse(app.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "lambda_handler"
    ]
    assert len(handler.body) == 1 and isinstance(handler.body[0], ast.Return)
