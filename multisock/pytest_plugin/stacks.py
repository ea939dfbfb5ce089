"""The virtual hosts tests run on: built with activation's own pieces, nothing new.

Two kinds, because pytest has two kinds of lifetimes:

* the **process host** of whole-suite mode (``--multisock``): built by ``multisock.launch``'s
  ``activate`` before any test module is imported, and kept for the whole session, because
  session- and module-scoped fixtures (a live HTTP server, pytest-httpbin) start servers on
  it that later tests must reach. Before each test its randomness is re-seeded from the test's
  seed: the loopback impairment gets a fresh random stream (and fresh counters), the IP and
  TCP layers' generators (IP ids, ephemeral ports) restart from the seed, the TCP history
  starts empty. The same seed then gives the same fate to every packet of the test.
* a **fresh host** for a test that asks for one (the marker, the ``mshost`` fixture): its
  own ``Network`` seeded with the test's seed, made the process default with everything
  patched for the test, closed afterwards.

Isolation: until the gateway (real services reachable from the virtual network) exists,
every host here is isolated: addresses outside the host are unreachable. ``_attach_gateway``
is where the gateway is to be attached unless ``--multisock-isolated`` is given.
"""

from __future__ import annotations

import gc
import os
import random
import re
import sys
from typing import Any

from multisock.pytest_plugin.settings import Settings

HOSTNAME = "multisock"
_PCAP_HEADER_SIZE = 24  # the classic pcap global header PcapWriter writes first


def pcap_path(pcap_dir: str, nodeid: str) -> str:
    """One file per test, named after its node id (characters a file name cannot hold -> _)."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", nodeid).strip("_")[:200] or "test"
    return os.path.join(pcap_dir, name + ".pcap")


class PcapRouter:
    """A file-like target for one ``PcapWriter`` on the process host that sends each test's
    packets to that test's own file (the global header is repeated at the top of each).

    Records are written from the loopback tap, with the driver lock held; ``switch`` takes
    that lock too, so a record never straddles two files."""

    def __init__(self) -> None:
        self._header = b""
        self._file: Any = None
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        if not self._header:
            self._header = bytes(data)[:_PCAP_HEADER_SIZE]
            return len(data)
        if self._file is not None:
            self._file.write(data)
        return len(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def switch(self, path: str | None) -> None:
        """Packets from now on go to ``path`` (None: nowhere). Call with the driver lock."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if path is not None:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self._file = open(path, "wb")  # noqa: SIM115 - kept open across calls
            self._file.write(self._header)

    def close(self) -> None:
        self.switch(None)
        self.closed = True


def _attach_gateway(host: Any, settings: Settings) -> None:
    """Where the gateway (real services reachable) will plug in; today every host is
    isolated, whatever ``--multisock-isolated`` says."""


def reseed(host: Any, seed: int, impairments: dict[str, Any]) -> None:
    """Restart ``host``'s random streams from ``seed`` (labels as ``Network.derive_rng``
    uses them) and give its loopback fresh impairments with fresh counters."""
    from multisock.net.impairments import Impairment
    from multisock.stack.tcp.info import History

    with host.driver.lock:
        name = host.name
        ip = host.ip
        ip.rng.seed(f"{seed}/host/{name}")
        if hasattr(ip, "_ident"):
            # the IP id counter starts from the generator, as IPStack's constructor draws it
            # (no public way to restart it yet): without this a test run alone would carry
            # other IP ids than in the suite, where earlier tests moved the counter
            ip._ident = ip.rng.randrange(65536)
        tcp = host.ip.tcp
        if tcp is not None:
            tcp.rng.seed(f"{seed}/tcp/{name}")
            tcp.history = History(1000)
        impairment = Impairment(random.Random(f"{seed}/lo/{name}"), **impairments)
        host.loopback_impairment = impairment
        host.loopback.trusted = impairment.corrupt == 0


class ProcessHost:
    """Whole-suite mode's host (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        from multisock.launch import activate

        options: dict[str, Any] = dict(settings.impairments)
        options.update(hostname=HOSTNAME, mtu=settings.mtu, seed=settings.seed)
        self.settings = settings
        self.host = activate(options)
        self._pytest_socket_saved = _retarget_pytest_socket()
        self.router: PcapRouter | None = None
        if settings.pcap_dir is not None:
            self.router = PcapRouter()
            self.host.net.capture(self.router)
        _attach_gateway(self.host, settings)

    def begin(self, seed: int, pcap: str | None) -> None:
        reseed(self.host, seed, self.settings.impairments)
        if self.router is not None:
            with self.host.driver.lock:
                self.router.switch(pcap)

    def end(self) -> None:
        if self.router is not None:
            with self.host.driver.lock:
                self.router.switch(None)

    def close(self) -> None:
        self.end()
        _restore_pytest_socket(self._pytest_socket_saved)
        self.host.net.close()


# pytest-socket keeps the socket functions it found at its import (before whole-suite mode
# patched them) and puts them back after every test (``_remove_restrictions``, and
# ``enable_socket`` at setup): left alone, every test after the first would run on the
# kernel's sockets. While the process host is active, what it keeps is what is patched in.
_PYTEST_SOCKET_KEPT = ("_true_socket", "_true_connect", "_true_getaddrinfo",
                       "_true_gethostbyname")


def _retarget_pytest_socket() -> dict[str, Any]:
    """Point pytest-socket's kept originals at the patched functions; returns what they were."""
    module = sys.modules.get("pytest_socket")
    if module is None:
        return {}
    import socket

    patched = {"_true_socket": socket.socket, "_true_connect": socket.socket.connect,
               "_true_getaddrinfo": socket.getaddrinfo,
               "_true_gethostbyname": socket.gethostbyname}
    saved: dict[str, Any] = {}
    for name in _PYTEST_SOCKET_KEPT:
        if hasattr(module, name):
            saved[name] = getattr(module, name)
            setattr(module, name, patched[name])
    return saved


def _restore_pytest_socket(saved: dict[str, Any]) -> None:
    module = sys.modules.get("pytest_socket")
    if module is not None:
        for name, value in saved.items():
            setattr(module, name, value)


class FreshHost:
    """A test's own network and host, the process default with everything patched."""

    def __init__(self, seed: int, impairments: dict[str, Any], mtu: int | None,
                 pcap: str | None, settings: Settings) -> None:
        from multisock.net.network import Network

        self.net = Network(seed=seed, name="test")
        self.host = self.net.add_host(HOSTNAME)
        if impairments:
            self.host.impair_loopback(**impairments)
        if mtu is not None:
            self.host.loopback.mtu = mtu
        if pcap is not None:
            os.makedirs(os.path.dirname(pcap) or ".", exist_ok=True)
            self.net.capture(pcap)
        _attach_gateway(self.host, settings)
        self._patched_here = False

    def activate(self) -> None:
        from multisock import monkey
        from multisock.runtime import set_default_host

        set_default_host(self.host)
        self.host.driver.start()
        if not monkey.is_patched("socket"):
            monkey.patch_all()
            self._patched_here = True

    def close(self, previous: Any) -> None:
        """Back to ``previous`` (the process host, or None) as default; unpatch if we patched."""
        from multisock import monkey
        from multisock.runtime import set_default_host

        set_default_host(previous)
        if self._patched_here:
            monkey.unpatch_all()
        self.net.close()


def open_sockets(nets: list[Any], exclude: set[int] | None = None) -> list[Any]:
    """Userspace sockets still open on any host of ``nets`` (a heap walk, as
    ``multisock.api.forking`` does at fork: sockets keep no registry to be cheap)."""
    from multisock.api.core import Core

    wanted = {id(net) for net in nets}
    skip = exclude or set()
    return [o for o in gc.get_objects()
            if isinstance(o, Core) and not o.closed and id(o.host.net) in wanted
            and id(o) not in skip]


def listening_ports(cores: list[Any]) -> set[int]:
    """Local ports of the listeners among ``cores``."""
    ports = set()
    for core in cores:
        tcb = getattr(core, "tcb", None)
        if tcb is not None and tcb.state.name == "LISTEN" and tcb.local is not None:
            ports.add(tcb.local[1])
    return ports


def accepted_by(core: Any, ports: set[int]) -> bool:
    """A connection whose local port is one of ``ports``: the accepted side of a server
    that existed before the test (a session fixture's), which the server owns."""
    tcb = getattr(core, "tcb", None)
    return (tcb is not None and tcb.local is not None and tcb.remote is not None
            and tcb.local[1] in ports)


def describe(core: Any) -> str:
    """Like the stdlib socket's repr, without creating the socket's lazy fd."""
    import socket as _socket

    parts = [f"family={_socket.AddressFamily(core.family).name}",
             f"type={_socket.SocketKind(core.type & 0xF).name}"]
    for label, method in (("laddr", "getsockname"), ("raddr", "getpeername")):
        try:
            parts.append(f"{label}={getattr(core, method)()}")
        except (OSError, AttributeError):
            pass
    return f"<multisock socket {', '.join(parts)}>"
