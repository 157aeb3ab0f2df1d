"""The hub's modules import one another without cycles, and stay small enough to read.

Imports are read from the source (``ast``), not run: module-level ``import`` and ``from ...
import`` (relative ones resolved), including those inside ``try``/``if`` at module level,
but not those under ``if TYPE_CHECKING:`` (they never run) nor those inside functions (they
run late, once every module is loaded)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pipelines"
MAX_LINES = 450


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level(body: list[ast.stmt], typing_too: bool = False):
    """Statements that run on import: module level, through if/try/with, not TYPE_CHECKING
    (unless ``typing_too``)."""
    for node in body:
        if isinstance(node, ast.If):
            if typing_too or not _type_checking(node.test):
                yield from _top_level(node.body, typing_too)
            yield from _top_level(node.orelse, typing_too)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _top_level(block, typing_too)
        elif isinstance(node, ast.With):
            yield from _top_level(node.body, typing_too)
        else:
            yield node


def imports_of(name: str, path: Path, known: dict[str, Path], typing_too: bool = False) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in _top_level(ast.parse(path.read_text(encoding="utf-8")).body, typing_too):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            # ``from . import peers``: peers may be a module of its own
            out |= {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known}
    return {m for m in out if m in known and m != name}


def graph(typing_too: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known, typing_too) for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in edges}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(edges[node]):
            if colour[nxt] == GREY:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == WHITE and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(edges):
        if colour[node] == WHITE and (cycle := visit(node)):
            return cycle
    return None


def test_the_walker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_walker_reads_relative_imports_and_skips_type_checking():
    edges = graph()
    assert "pipelines.events" in edges["pipelines.hub"]
    assert "pipelines.providers.base" in edges["pipelines.providers.sim"]
    assert "pipelines.providers.peers" in edges["pipelines.providers.voicenter.routes"]


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycles_even_for_type_hints():
    """Imports under TYPE_CHECKING never run, but a cycle there is still two modules that each
    need the other to be understood (dial.py and providers/base.py were one such pair)."""
    cycle = find_cycle(graph(typing_too=True))
    assert cycle is None, "import cycle (counting type hints): " + " -> ".join(cycle or [])


def test_providers_know_the_hub_only_through_its_interface():
    """Not even for type hints: a provider that names the hub's parts would come to use them."""
    hub_parts = {"pipelines.hub", "pipelines.api", "pipelines.server", "pipelines.store", "pipelines.pops",
                 "pipelines.calls", "pipelines.dial", "pipelines.sessions"}
    edges = graph(typing_too=True)
    reaching = {name: sorted(edges[name] & hub_parts) for name in edges if name.startswith("pipelines.providers")}
    assert not {name: parts for name, parts in reaching.items() if parts}


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT).as_posix()): n for p in modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
