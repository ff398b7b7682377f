"""The package's shape: modules import only from their own floor or the ones below,
and no modules import each other in a loop (see the floors in FLOORS)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "goatcounter"

# Floors from the bottom up; a module may import from its own floor and lower ones.
# The factory (goatcounter/__init__.py) and the command line sit on top.
FLOORS: list[tuple[str, ...]] = [
    ("goatcounter.clock", "goatcounter.collect", "goatcounter.decoding", "goatcounter.encoding",
     "goatcounter.formatting",
     "goatcounter.errors", "goatcounter.gunicorn_conf", "goatcounter.responses",
     "goatcounter.server_config",
     "goatcounter.validation"),
    ("goatcounter.storage",),
    ("goatcounter.accounts",),
    ("goatcounter.counting",),
    ("goatcounter.stats", "goatcounter.exports"),
    ("goatcounter.web",),
    ("goatcounter.api", "goatcounter.public", "goatcounter.upkeep", "goatcounter.dashboard"),
    ("goatcounter.cli", "goatcounter"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module of ours that a file imports, at the top or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("goatcounter"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("goatcounter"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def floor_of(module: str) -> int:
    best = (-1, -1)
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                best = max(best, (len(prefix), level))
    assert best[1] >= 0, f"{module} is on no floor: add it to FLOORS"
    return best[1]


def test_every_module_has_a_floor():
    for module in MODULES:
        floor_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    up = sorted(m for m in GRAPH[module] if floor_of(m) > floor_of(module))
    assert not up, f"{module} (floor {floor_of(module)}) imports higher floors: {up}"


def find_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each loop met in a depth-first walk, as the path that closes it."""
    state: dict[str, int] = {}
    stack: list[str] = []
    loops: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                loops.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return loops


def test_no_import_loops():
    # The package's own __init__ is left out: Python runs it before any module inside,
    # and create_app imports everything from inside the function.
    graph = {m: {d for d in deps if d != "goatcounter"} for m, deps in GRAPH.items()
             if m != "goatcounter"}
    loops = find_loops(graph)
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_the_checks_can_fail():
    assert find_loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_loops({"a": {"b"}, "b": set()}) == []
    # The graph is read from the files: storage sits below counting, which imports it.
    assert floor_of("goatcounter.storage.db") < floor_of("goatcounter.counting.pending")
    assert "goatcounter.storage.db" in GRAPH["goatcounter.counting.pending"]
