"""The shape of the code: imports between explainer's parts run one way, and no module grows too long.

Imports are read with `ast` from the source (function-local ones included), never by importing.
A node is a subpackage (`explainer.faces`, `explainer.core`); an edge A -> B
means some module of A imports something of B.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "explainer"
MAX_LINES = 500

# Edges allowed for now, each with the reason. bench/explain.py is being rewritten on another
# branch; it must import print_table from explainer.core.console instead of `cli._print_table`.
KNOWN_EDGES: dict[tuple[str, str], str] = {}
# Modules allowed over MAX_LINES for now (none).
KNOWN_LONG: set[str] = set()
# The floor every part may stand on: these import nothing of explainer but each other.
# The floor every part may stand on: explainer.core imports nothing of explainer but itself.
LOW = {"explainer.core"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports anywhere in its body, absolute, `from P import M` resolved to P.M
    where M is a module."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else module)
    return found


def node_of(module: str) -> str | None:
    """explainer.faces.align -> explainer.faces; explainer.cli.lab -> explainer.cli; the bare package: None."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == PACKAGE and len(parts) > 1 else None


def module_edges(package: str = PACKAGE) -> dict[tuple[str, str], str]:
    """(importing module, imported module) -> the importing file, for every import inside `package`."""
    edges = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for target in imported_modules(path):
            if target.split(".")[0] == PACKAGE:
                edges[(_module_name(path), target)] = str(path.relative_to(ROOT))
    return edges


def node_graph(edges) -> dict[str, set[str]]:
    graph = defaultdict(set)
    for source, target in edges:
        a, b = node_of(source), node_of(target)
        if a and b and a != b and (source, target) not in KNOWN_EDGES:
            graph[a].add(b)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    # the checker itself: a two-node and a three-node cycle are found, a chain is not
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_imports_resolve_local_relative_and_from_package():
    # a function-local `from explainer import faces` is an edge to explainer.faces, not to explainer
    edges = module_edges()
    assert ("explainer.cli.commands", "explainer.packs.recovery_fidelity") in edges  # imported inside a function
    assert any(source.startswith("explainer.app") and target == "explainer.faces" for source, target in edges)


def test_no_import_cycle_between_parts():
    edges = module_edges()
    found = cycles(node_graph(edges))
    if found:
        lines = []
        for component in found:
            lines.append(" <-> ".join(component))
            lines += [f"    {source} -> {target} ({where})" for (source, target), where in sorted(edges.items())
                      if node_of(source) in component and node_of(target) in component
                      and node_of(source) != node_of(target)]
        pytest.fail("import cycles between explainer's parts:\n" + "\n".join(lines))


def test_known_edges_still_exist():
    # an exception that is no longer needed must go, so it cannot hide a new cycle later
    edges = module_edges()
    stale = [edge for edge in KNOWN_EDGES if edge not in edges]
    assert not stale, f"remove these from KNOWN_EDGES in tests/test_architecture.py: {stale}"


def test_low_modules_stand_on_nothing_above_them():
    for (source, target), where in module_edges().items():
        if node_of(source) in LOW:
            assert node_of(target) in LOW, f"{where} imports {target}: the low modules import only each other"


def test_the_library_never_imports_training():
    for path in (ROOT / PACKAGE).rglob("*.py"):
        assert not {m for m in imported_modules(path) if m.split(".")[0] == "training"}, path


def test_no_module_over_the_line_limit():
    too_long = {}
    for folder in (PACKAGE, "training"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > MAX_LINES:
                too_long[str(path.relative_to(ROOT))] = lines
    assert set(too_long) <= KNOWN_LONG, f"modules over {MAX_LINES} lines (split them): {too_long}"
    # a listed exception that got short enough must leave the list
    assert not KNOWN_LONG - set(too_long), f"remove from KNOWN_LONG: {KNOWN_LONG - set(too_long)}"


def test_unknown_names_are_plain_errors_listing_the_known_ones():
    from explainer.attributes.registry import FAMILIES
    from explainer.core.errors import FacexplainError
    from explainer.generation.registry import DECODERS, load_decoder
    from explainer.packs.catalogue import PACKS, load_pack
    from explainer.recognition.registry import RECOGNIZERS, load_recognizer

    for lookup, registry in ((load_pack, PACKS), (load_decoder, DECODERS), (load_recognizer, RECOGNIZERS),
                             (FAMILIES.__getitem__, FAMILIES)):
        with pytest.raises(FacexplainError) as caught:
            lookup("no-such-name")
        message = str(caught.value)
        assert isinstance(caught.value, KeyError)  # callers that catch KeyError keep working
        assert message.startswith("unknown ") and "'no-such-name'" in message
        assert all(name in message for name in registry), message


def test_every_module_sits_in_a_part():
    # the tree shows the architecture: core, the stages, jobs, packs, and the callers (cli, bench, app)
    flat = sorted(p.name for p in (ROOT / PACKAGE).glob("*.py") if p.name != "__init__.py")
    assert not flat, f"modules beside the parts (move them into one): {flat}"


def test_only_callers_import_the_benchmarks():
    callers = {"explainer.bench", "explainer.cli"}
    for (source, target), where in module_edges().items():
        if node_of(target) == "explainer.bench":
            assert node_of(source) in callers, f"{where} imports {target}: benchmarks are for callers only"
