"""Layers point down: no import cycle between the modules, or between the packages, of
`loader/` and `udfs/` (imports inside functions count too: a lazy import is still a
dependency). Fast tier: the source is parsed, nothing is imported."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The known modules PATH imports (``from a import b`` counts ``a.b`` when it is one)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            named.add(base)
            named.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in named if module in known and module != name}


def package_of(module: str, known: dict[str, Path]) -> str:
    """``loader.engine.plan`` -> ``loader.engine``; a top-level module is its own package."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and known[module].name == "__init__.py"):
        return ".".join(parts[:2])
    return module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def graphs(root: Path, packages: tuple[str, ...]) -> tuple[dict, dict, dict]:
    known = modules(root, packages)
    module_graph = {name: imports(path, name, known) for name, path in known.items()}
    package_graph: dict[str, set[str]] = defaultdict(set)
    why: dict[tuple[str, str], str] = {}
    for module, targets in module_graph.items():
        for target in targets:
            a, b = package_of(module, known), package_of(target, known)
            if a != b and not target.startswith(a + "."):
                package_graph[a].add(b)
                why.setdefault((a, b), f"{module} -> {target}")
    return module_graph, dict(package_graph), why


def explain(found: list[list[str]], graph: dict[str, set[str]], why: dict) -> str:
    lines = []
    for component in found:
        lines.append(" <-> ".join(component))
        for a in component:
            for b in sorted(graph.get(a, ())):
                if b in component:
                    lines.append(f"    {why.get((a, b), f'{a} -> {b}')}")
    return "\n".join(lines)


def test_no_import_cycle_between_modules_or_packages():
    module_graph, package_graph, why = graphs(REPO, ("loader", "udfs"))
    assert len(module_graph) > 100  # the whole tree was read
    assert cycles(module_graph) == [], explain(cycles(module_graph), module_graph, {})
    assert cycles(package_graph) == [], explain(cycles(package_graph), package_graph, why)


def test_a_new_cycle_is_found(tmp_path):
    """The check itself: a package cycle made of lazy imports, and a module cycle."""
    pkg = tmp_path / "loader"
    for folder in ("rules", "alerts"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "rules" / "keys.py").write_text("def f():\n    from loader.alerts import model\n")
    (pkg / "alerts" / "model.py").write_text("from ..rules.keys import f\n")
    (pkg / "a.py").write_text("import loader.b\n")
    (pkg / "b.py").write_text("from loader import a\n")
    module_graph, package_graph, why = graphs(tmp_path, ("loader",))
    assert cycles(module_graph) == [
        ["loader.a", "loader.b"],
        ["loader.alerts.model", "loader.rules.keys"],
    ]
    assert cycles(package_graph) == [
        ["loader.a", "loader.b"],
        ["loader.alerts", "loader.rules"],
    ]
    assert "loader.rules.keys -> loader.alerts" in explain(
        cycles(package_graph), package_graph, why
    )


def test_every_import_of_the_project_names_something_that_exists():
    """A lazy import inside a function fails only when that path runs; after a module moves,
    this finds a stale one at once (loader/, udfs/, tests/, bench/)."""
    import importlib

    stale = []
    for folder in ("loader", "udfs", "tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in ("loader", "udfs"):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        stale.append(
                            f"{path.relative_to(REPO)}:{node.lineno}: {node.module}.{alias.name}"
                        )
    assert stale == []
