"""Imports run one way: every layer of multisock imports only the layers below it.

The layer order is written once here (``LAYERS``, bottom to top) and once in words in
``docs/architecture.md``. The test reads every module of the package with ``ast`` - every
``import`` and ``from ... import``, at module level *and* inside functions (a deferred
import still runs, so a deferred upward import is still upward), plus
``importlib.import_module("multisock...")`` with a literal name - and leaves out only what
sits under ``if TYPE_CHECKING:`` (types cost nothing at run time). It fails:

* on an import from a layer to one above it, naming the file, the line and both layers;
* on a module that no layer claims (a new module must be given its place);
* on a circle of modules importing each other (all layers run downward, so a circle can only
  lie inside one layer), unless ``ALLOWED_CYCLES`` lists it with its reason.

Layers that are empty today (``security``, ``gateway``, ``sim``, the pytest plugin) are
placed already, so that the first upward import there fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "multisock"
pytestmark = pytest.mark.skipif(not PACKAGE.is_dir(), reason=(
    "the source checkout's multisock/ is not here: the compiled build's run (.ci/suite-outside-checkout) runs the suite from a copy without it, so as not to "
    "import the pure source; the pure run checks the same files"))

# Bottom to top. A pattern "x.*" claims the package x and everything under it; any other
# pattern claims exactly that module. The longest pattern that matches wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wire", ("multisock.wire.*",)),
    # the stack, sans-IO, in its own order: the parts, IP, then the transports that
    # register with IP (IP imports none of them)
    ("stack.parts", (
        "multisock.stack", "multisock.stack.addresses", "multisock.stack.interface",
        "multisock.stack.routing", "multisock.stack.fragments", "multisock.stack.gso",
        "multisock.stack.icmp_limit",
        "multisock.stack.icmp_quote", "multisock.stack.datagram", "multisock.stack.ports",
        "multisock.stack.hooks",
    )),
    ("stack.ip", ("multisock.stack.ip",)),
    ("stack.udp+ping", ("multisock.stack.udp", "multisock.stack.ping", "multisock.stack.raw")),
    ("stack.tcp.parts", (
        "multisock.stack.tcp.seq", "multisock.stack.tcp.config", "multisock.stack.tcp.rtt",
        "multisock.stack.tcp.buffers", "multisock.stack.tcp.sack", "multisock.stack.tcp.timers",
        "multisock.stack.tcp.isn", "multisock.stack.tcp.congestion", "multisock.stack.tcp.rack",
        "multisock.stack.tcp.prr", "multisock.stack.tcp.undo",
    )),
    ("stack.tcp.timewait", ("multisock.stack.tcp.timewait",)),
    ("stack.tcp.info", ("multisock.stack.tcp.info",)),
    # the control block: its state, then its parts in one line of inheritance, each
    # importing the one below it (stack/tcp/block.py says why)
    ("stack.tcp.block", ("multisock.stack.tcp.block",)),
    ("stack.tcp.options", ("multisock.stack.tcp.options",)),
    ("stack.tcp.output", ("multisock.stack.tcp.output",)),
    ("stack.tcp.recovery", ("multisock.stack.tcp.recovery",)),
    ("stack.tcp.timeouts", ("multisock.stack.tcp.timeouts",)),
    ("stack.tcp.arrival", ("multisock.stack.tcp.arrival",)),
    ("stack.tcp.connection", ("multisock.stack.tcp.connection",)),
    ("stack.tcp.ports", ("multisock.stack.tcp.ports",)),
    ("stack.tcp.stack", ("multisock.stack.tcp", "multisock.stack.tcp.stack")),
    # firewall, conntrack, NAT: plugs into IPStack's hooks; a host may be given one
    ("security", ("multisock.security.*",)),
    ("net", ("multisock.net.*",)),
    # a link or node of the virtual network relaying to kernel sockets
    ("gateway", ("multisock.gateway.*",)),
    ("facade.state", ("multisock.runtime", "multisock.hosts", "multisock.resolver.*")),
    ("facade.api", ("multisock.api.*",)),
    ("facade.socket", ("multisock.socket",)),
    ("facade.shims", ("multisock.select", "multisock.selectors_shim", "multisock.tls.*")),
    # the settings table of run and the shims (it checks values with net's parsers)
    ("activation", ("multisock.monkey", "multisock.green", "multisock.asyncio_sendfile",
                    "multisock.options", "multisock.launch")),
    # routing daemons are programs over the facade's sockets, like the traffic generators
    ("tools", ("multisock.sim.*", "multisock.pytest_plugin.*", "multisock.routingd.*")),
    ("entry", ("multisock", "multisock.cli", "multisock.demo", "multisock.__main__",
               "multisock._activate")),
)

# frozenset of modules -> why that circle is allowed to stand (aim for none)
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    frozenset({"multisock.monkey", "multisock.green"}): (
        "patch_all() integrates gevent (green), and green applies its patches with monkey's "
        "first-write-wins records; both imports are deferred. Ends when the records move to a "
        "module of their own below both."
    ),
}


class Edge(NamedTuple):
    importer: str
    imported: str
    path: Path
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every import-like node under ``node``, at any depth, except under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.AST]:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)):
        yield node
    yield from _import_nodes(node)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package's module that importing ``name`` runs last (its longest known prefix)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def edges_of(module: str, source: str, is_package: bool, modules: dict[str, Path],
             path: Path) -> Iterator[Edge]:
    for node in _import_nodes(ast.parse(source, str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from package import submodule`` imports the submodule
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                targets = [node.args[0].value]
        resolved = {_resolve(t, modules) for t in targets if t.startswith("multisock")}
        for target in sorted(r for r in resolved if r is not None and r != module):
            yield Edge(module, target, path, node.lineno)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (pattern length, layer index)
    for index, (_name, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith(".*"):
                stem = pattern[:-2]
                hit = module == stem or module.startswith(stem + ".")
                length = len(stem)
            else:
                hit = module == pattern
                length = len(pattern) + 1  # an exact name beats a package's wildcard
            if hit and (best is None or length > best[0]):
                best = (length, index)
    return None if best is None else best[1]


def all_edges() -> list[Edge]:
    modules = all_modules()
    return [edge for module, path in modules.items()
            for edge in edges_of(module, path.read_text(), path.name == "__init__.py", modules,
                                 path)]


def cycles(edges: list[Edge]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


# ---------------------------------------------------------------------------- tests

def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in all_modules() if layer_of(m) is None]
    assert not unplaced, f"modules in no layer (place them in LAYERS): {unplaced}"


def test_imports_run_downward() -> None:
    upward = []
    for edge in all_edges():
        low, high = layer_of(edge.importer), layer_of(edge.imported)
        if low is not None and high is not None and high > low:
            upward.append(
                f"{edge.path.relative_to(PACKAGE.parent)}:{edge.line}: {edge.importer} "
                f"({LAYERS[low][0]}) imports {edge.imported} ({LAYERS[high][0]})")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_circles() -> None:
    edges = all_edges()
    found = [c for c in cycles(edges) if c not in ALLOWED_CYCLES]
    lines = []
    for component in found:
        lines.append(" <-> ".join(sorted(component)))
        lines += [f"    {e.path.relative_to(PACKAGE.parent)}:{e.line}: {e.importer} -> {e.imported}"
                  for e in edges if e.importer in component and e.imported in component]
    assert not found, "modules importing each other:\n" + "\n".join(lines)


def test_allowed_cycles_still_exist() -> None:
    """An allowance outlives its cycle only by mistake: drop it once the circle is gone."""
    stale = [sorted(c) for c in ALLOWED_CYCLES if c not in cycles(all_edges())]
    assert not stale, f"ALLOWED_CYCLES lists circles that no longer exist: {stale}"


def test_the_checker_sees_what_it_must() -> None:
    """The reader itself: deferred imports count, TYPE_CHECKING ones do not, relative and
    ``from package import submodule`` forms resolve, and such an import reads as upward."""
    modules = {name: Path() for name in (
        "multisock", "multisock.net", "multisock.net.host", "multisock.socket",
        "multisock.stack.ip", "multisock.monkey")}
    source = (
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "from multisock.stack.ip import IPStack\n"
        "if TYPE_CHECKING:\n"
        "    from multisock.socket import socket\n"
        "else:\n"
        "    pass\n"
        "def f():\n"
        "    from multisock import socket\n"
        "    from . import host\n"
        "    importlib.import_module('multisock.monkey')\n"
    )
    probe = "multisock.net.probe"
    edges = list(edges_of(probe, source, False, modules, Path("probe.py")))
    assert [(e.imported, e.line) for e in edges] == [
        ("multisock.stack.ip", 3), ("multisock.socket", 9), ("multisock.net.host", 10),
        ("multisock.monkey", 11)]
    net, facade = layer_of("multisock.net.probe"), layer_of("multisock.socket")
    assert net is not None and facade is not None and facade > net
    tcp_stack, connection = layer_of("multisock.stack.tcp.stack"), layer_of(
        "multisock.stack.tcp.connection")
    assert tcp_stack is not None and connection is not None and tcp_stack > connection
    assert layer_of("multisock") == len(LAYERS) - 1
    assert cycles([Edge("a", "b", Path(), 1), Edge("b", "a", Path(), 1),
                   Edge("b", "c", Path(), 1)]) == [frozenset({"a", "b"})]
