"""The import graph of memabra/: drawn from the source (function-level imports included), so a layer that starts
leaning the wrong way fails here, not in a review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "memabra"
FRONT_ENDS = ("memabra.cli", "memabra.api", "memabra.__main__", "memabra.tui", "memabra.demo", "memabra.server")
"""Modules allowed to import the demo world, the CLI or the console: the front ends and the demo world itself."""
ENGINE_LAYERS = ("memabra.learning", "memabra.evaluation", "memabra.runtime", "memabra.demo")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every memabra module a file imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {module for module in found if module == "memabra" or module.startswith("memabra.")}


def build_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {target for target in imports_of(path) if target in modules and target != name}
    return graph


GRAPH = build_graph()


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_the_graph_is_drawn():
    assert "memabra.workflow" in GRAPH and "memabra.learning.scan" in GRAPH["memabra.workflow"]


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_storage_imports_no_engine_layer():
    for module, targets in GRAPH.items():
        if within(module, ("memabra.storage",)):
            wrong = sorted(target for target in targets if within(target, ENGINE_LAYERS))
            assert not wrong, f"{module} (storage) imports {wrong}"


def test_the_engine_imports_no_demo_cli_or_console():
    for module, targets in GRAPH.items():
        if within(module, FRONT_ENDS) or module == "memabra":
            continue
        wrong = sorted(target for target in targets if within(target, ("memabra.demo", "memabra.cli", "memabra.tui")))
        assert not wrong, f"engine module {module} imports {wrong}"


def test_the_console_imports_nothing_private_from_the_cli():
    for path in (PACKAGE / "tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "memabra.cli":
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from memabra.cli"


def test_no_source_file_grows_past_500_lines():
    long = {str(path.relative_to(PACKAGE)): count for path in PACKAGE.rglob("*.py")
            if (count := len(path.read_text().splitlines())) > 500}
    assert not long, f"files over 500 lines (one job per module?): {long}"
