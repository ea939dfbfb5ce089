"""What a finished connection leaves behind (docs/performance.md, connection rate).

A connect/accept/close loop must not create reference cycles (each would wait for the
garbage collector), and once both ends are closed the control blocks must be freed: the
client's TIME-WAIT is held by a small record, not by its block.
"""

from __future__ import annotations

import gc
import socket
import time

import multisock
from multisock.stack.tcp.connection import TcpSocket
from multisock.stack.tcp.timewait import TimeWait


def _cycles(net: multisock.Network, n: int) -> None:
    server, client = net.hosts["b"], net.hosts["a"]
    listener = server.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("10.0.0.2", 0))
    listener.listen(16)
    target = ("10.0.0.2", listener.getsockname()[1])
    for _ in range(n):
        c = client.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(target)
        s, _ = listener.accept()
        c.close()
        s.close()
    listener.close()


def _network() -> multisock.Network:
    net = multisock.Network(seed=11)
    a = net.add_host("a", "10.0.0.1/24")
    b = net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    return net


def _belongs(obj: object, net: multisock.Network) -> bool:
    """A control block, core or socket object of this network (other tests' threads may
    leave garbage of their own while this one runs)."""
    hosts = list(net.hosts.values())
    stacks = [h.ip.tcp for h in hosts]
    core = getattr(obj, "_sock", obj) if type(obj).__module__ == "multisock.socket" else obj
    return getattr(core, "stack", None) in stacks or getattr(core, "host", None) in hosts


def test_connect_accept_close_makes_no_cyclic_garbage() -> None:
    net = _network()
    try:
        _cycles(net, 5)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            _cycles(net, 50)
            gc.collect()
            ours = [o for o in gc.garbage if _belongs(o, net)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert ours == []
    finally:
        net.close()


def test_closed_connections_free_their_control_blocks() -> None:
    net = _network()
    try:
        _cycles(net, 50)
        gc.collect()
        tcp = net.hosts["a"].ip.tcp
        records = [c for c in tcp.conns.values() if isinstance(c, TimeWait)]
        assert len(records) == 50  # the client's side of each, in TIME-WAIT
        # every block (both ends, and the listener) is freed; the last ones may still sit in
        # timer-heap entries that went stale when they closed, which go when due (~1 s)
        deadline = time.monotonic() + 30
        stacks = (tcp, net.hosts["b"].ip.tcp)
        while True:
            gc.collect()
            alive = sum(1 for o in gc.get_objects() if type(o) is TcpSocket and o.stack in stacks)
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert alive == 0
    finally:
        net.close()
