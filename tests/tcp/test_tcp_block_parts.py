"""The control block's parts (stack/tcp/block.py): one line of inheritance, calls downward.

``TcpSocket`` is ``ControlBlock`` plus its parts stacked one on another (options, output,
recovery, timeouts, arrival, connection). block.py and docs/architecture.md promise that
each part calls only methods of itself and of the parts below it - the order a reader
follows and the modules' import order - and that the block keeps its fields in slots only.
These tests hold the code to those promises.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import multisock
from multisock.stack.tcp import arrival, block, connection, options, output, recovery, timeouts

CHAIN = (block.ControlBlock, options.Options, output.Output, recovery.Recovery,
         timeouts.Timeouts, arrival.Arrival, connection.TcpSocket)
TCP_DIR = Path(block.__file__).parent


def test_the_parts_form_one_line_in_order() -> None:
    assert connection.TcpSocket.__mro__ == (*reversed(CHAIN), object)


# in the compiled build the parts are mypyc native classes: their methods are not Python
# functions, and their fields are struct members (no __slots__ entry, never a __dict__);
# these two read the classes as Python builds them, from the same source as the pure run's
_PURE_CLASSES = pytest.mark.skipif(multisock.COMPILED, reason=(
    "compiled build: native classes have no Python functions or __slots__ to read; the pure "
    "run checks the same source"))


@_PURE_CLASSES
def test_each_part_calls_only_itself_and_the_parts_below() -> None:
    defined_in = {name: index for index, cls in enumerate(CHAIN)
                  for name in vars(cls) if inspect.isfunction(vars(cls)[name])
                  or isinstance(vars(cls)[name], property)}
    upward = []
    for index, cls in enumerate(CHAIN):
        path = Path(inspect.getfile(cls))
        assert path.parent == TCP_DIR
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "self" and defined_in.get(node.attr, -1) > index):
                upward.append(f"{path.name}:{node.lineno}: {cls.__name__} uses "
                              f"{CHAIN[defined_in[node.attr]].__name__}.{node.attr}")
    assert not upward, "calls to a part above:\n" + "\n".join(upward)


@_PURE_CLASSES
def test_fields_live_in_slots_only() -> None:
    for cls in CHAIN[1:]:
        assert vars(cls)["__slots__"] == (), cls
    net = multisock.Network(seed=1)
    host = net.add_host("a", "10.0.0.1/24")
    sock = host.ip.tcp.socket(2)
    assert type(sock) is connection.TcpSocket
    assert not hasattr(sock, "__dict__")
    net.close()
