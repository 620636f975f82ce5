"""The import graph of reslab's modules has no cycle, and ``reslab.models`` is a leaf.

Every module under ``src/reslab`` is parsed with ``ast`` (imports inside function bodies
count: a lazy import is still a dependency).  ``from a.b import c`` is an edge to ``a.b.c``
when that is a module, else to ``a.b``; the parent packages' ``__init__`` are not edges
(every module would otherwise depend on ``reslab/__init__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "reslab").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            targets = [t for t in targets[:-1] if t in modules] or [base]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # `import a.b.c as x` where c is an attribute
                t = t.rpartition(".")[0]
            if t.startswith("reslab") and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    colour: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in colour:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = 2
        return None

    for start in sorted(graph):
        if start not in colour:
            found = visit(start)
            if found:
                return found
    return None


def test_the_checker_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_parser_sees_imports_inside_functions(tmp_path):
    graph = import_graph()
    assert "reslab.errors" in graph["reslab.models.registry"]
    # a lazy import inside a function body is an edge
    assert "reslab.weights.load" in graph["reslab.training.eval_run"]


def test_no_import_cycle_in_src():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_models_import_nothing_above_them():
    graph = import_graph()
    above = ("reslab.weights", "reslab.training", "reslab.experiments", "reslab.commands")
    bad = sorted((m, t) for m, targets in graph.items() if m.startswith("reslab.models")
                 for t in targets if t.startswith(above))
    assert not bad, "models/ imports from above it: " + ", ".join(f"{m} -> {t}" for m, t in bad)
