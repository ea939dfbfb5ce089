"""Inbound: a kernel port whose connections are relayed into the virtual network
(``docker run -p``, pasta's ``-t``).

A :class:`TcpPublisher` listens on a kernel socket (non-blocking, watched by the driver's
epoll); each accepted kernel connection gets a virtual TCP socket on the target host that
connects to the published port, and the two are joined by a
:class:`~multisock.gateway.tcp.TcpFlow`. A refused virtual connect resets the kernel client
(SO_LINGER 0), as a published port with nothing behind it would.
"""

from __future__ import annotations

import _socket
from typing import TYPE_CHECKING, Any

from multisock.gateway import kernel
from multisock.gateway.tcp import TcpFlow
from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host

ACCEPTS_PER_WAKEUP = 64  # bounded work per readiness callback


class TcpPublisher:
    """Kernel ``bind_addr:host_port`` -> virtual ``host``'s ``(virtual_addr, port)``."""

    def __init__(self, host: Host, bind_addr: str, host_port: int, virtual_addr: str,
                 port: int, backlog: int = 128) -> None:
        self.host = host
        self.driver: Any = host.driver
        self.flows: set[TcpFlow] = set()
        self.target = (A.pack(virtual_addr), port)
        family = _socket.AF_INET6 if ":" in bind_addr else _socket.AF_INET
        self.family = family
        lsock = kernel.open_socket(family, _socket.SOCK_STREAM)
        try:
            lsock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            if family == _socket.AF_INET6:
                lsock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
            lsock.bind((bind_addr, host_port))
            lsock.listen(backlog)
        except OSError:
            lsock.close()
            raise
        self.lsock = lsock
        self.address = lsock.getsockname()
        self.accepted = 0
        self.driver.add_reader(lsock.fileno(), self._accept)

    @property
    def port(self) -> int:
        return int(self.address[1])

    def _accept(self) -> None:
        tcp = self.host.ip.tcp
        vfamily = _socket.AF_INET if len(self.target[0]) == 4 else _socket.AF_INET6
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                fd, _peer = self.lsock._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EMFILE and friends: the client waits in the backlog
            ksock = _socket.socket(self.family, _socket.SOCK_STREAM, 0, fd)
            ksock.setblocking(False)
            now = self.host.touch()
            vsock = tcp.socket(vfamily)
            try:
                vsock.connect(self.target[0], self.target[1], now)
            except OSError:
                vsock.close(now)
                kernel.abort(ksock)
                continue
            self.accepted += 1
            flow = TcpFlow(self, vsock, ksock)
            self.flows.add(flow)
            flow.pump()

    def close(self) -> None:
        with self.driver.operation():
            self.driver.remove_reader(self.lsock.fileno())
            self.lsock.close()
            for flow in list(self.flows):
                flow.abort_both()
