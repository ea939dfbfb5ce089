"""Bridged fd mode for UDP: ``fileno()`` is one end of a kernel datagram pair.

C code doing I/O on a bridged UDP socket's fd (``os.read``/``os.write``, a socket handed to a
subprocess, an extension's recv()/send()) gets real datagrams: the fd is the program's end of
an ``AF_UNIX``/``SOCK_DGRAM`` socketpair, and the stack relays between the other end and the
UDP endpoint. (TCP's bridge, ``api/bridge.py``, is the stream counterpart.)

*Why AF_UNIX datagrams and not a connected loopback UDP pair* (measured on this kernel): both
keep boundaries, but an AF_UNIX pair is reliable, so the stack decides what is dropped and
counts it, and the relay learns the pair is full (EAGAIN) instead of the kernel dropping
silently; its capacity is the relay end's send buffer (278 datagrams of 100 bytes with the
default 208 KiB; ``net.unix.max_dgram_qlen`` does not apply between a pair's two ends). And an
AF_UNIX end cannot leak: a C ``sendto()`` with an INET destination on it fails (EINVAL) where a
loopback UDP end would send that datagram to a real kernel address outside the virtual network.

Receiving: the endpoint's queue stays the socket's receive buffer (charged and dropped as
``DatagramEndpoint.deliver`` does, like a kernel UDP socket with a full rcvbuf: counted in
``rx_dropped``); the relay moves datagrams from its head into the pair, one ``send`` each, while
the pair takes them, and when the pair is full it leaves them in that queue and waits for room
(so a slow reader makes the *stack* drop, as the kernel's rcvbuf would, never the pair).
Sending: each datagram the program writes on its fd is sent by the stack to the socket's
connected peer, with the socket's TTL/TOS; a write on the fd of an *unconnected* socket has no
destination: the pair accepts it (an AF_UNIX end cannot report EDESTADDRREQ) and the relay drops
it, counted in ``tx_dropped`` - the documented limit, as are datagrams larger than a UDP datagram
can be (the kernel's EMSGSIZE) and the stack's send errors.

The Python object's own calls: reads go through the pair too (so Python and C code see one
queue, in order), and ``recvfrom``/``recvmsg`` get each datagram's source address and ancillary
data from ``sources``, a side queue written in step with the pair: (payload, source, meta) per
datagram sent into it. A datagram Python reads is matched with the first entry whose payload is
the same bytes; entries before it were read by C code and are dropped. Exact when only Python
reads, or for a connected socket (every datagram comes from the peer); the one case it can name
the wrong source is C code and Python both reading an unconnected socket that received the same
payload from two sources. The side queue is emptied whenever the pair is found empty (SIOCOUTQ
of the relay's end is 0), which bounds it by what the pair can hold. Python's sends go straight
to the stack (exact errors, the destination of ``sendto``), after the relay has passed on what
the program wrote on the fd before (order kept).

Closing the Python object closes the UDP socket and the pair: unlike a kernel UDP socket, the
fd does not keep the socket alive in a subprocess that still holds it (an AF_UNIX datagram end
does not report its peer's close until the relay sends to it). ICMP errors (ECONNREFUSED on a
connected socket) reach Python's calls, not C code on the fd. Ping and raw sockets keep the
readiness eventfd.
"""

from __future__ import annotations

import _socket
import fcntl
import struct
from collections import deque
from typing import TYPE_CHECKING

from multisock.api.kernel_pair import STACK_END_BUFFER, PairRelay, at_number

if TYPE_CHECKING:
    from multisock.api.dgram import DatagramCore
    from multisock.stack.datagram import Meta

_SIOCOUTQ = 0x5411  # (TIOCOUTQ) an AF_UNIX socket's bytes sent and not yet read by its peer
_INT = struct.Struct("i")
_ZERO = bytes(_INT.size)
_MAX_DATAGRAM = 65535  # bigger than any UDP payload: a longer write is the kernel's EMSGSIZE
_BUDGET = 64  # datagrams relayed per pump each way (bounded work per driver callback)

Source = tuple[bytes, tuple[bytes, int], "Meta | None"]


def default_fd_mode() -> int:
    """The fd mode new sockets take (``run --fd-mode`` / ``MULTISOCK_FD_MODE``), kept by
    ``api/stream.py`` for TCP and UDP alike."""
    from multisock.api import stream

    return int(stream._default_fd_mode)


class DatagramBridge(PairRelay):
    """The relay between one UDP endpoint and a kernel datagram pair (driver lock held in
    every method but ``__init__``)."""

    __slots__ = ("sources", "done", "buf")

    def __init__(self, core: DatagramCore, fd_number: int | None = None) -> None:
        app, stack_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        app = at_number(app, fd_number)
        super().__init__(core, app, stack_end)
        # the pair's capacity towards the program (the relay end's send buffer is charged
        # until the program reads): bounded, and room for the largest datagram
        stack_end.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, STACK_END_BUFFER)
        self.sources: deque[Source] = deque()  # in step with the datagrams in the pair
        self.done = False
        self.buf = bytearray(_MAX_DATAGRAM + 1)
        core.driver.add_reader(stack_end.fileno(), self.pump)

    # ------------------------------------------------------------------ relay

    def pump(self) -> None:
        """Move what can move both ways; arrange to be called again when more can."""
        if self.done:
            return
        self.from_app()
        self._to_app()

    def _pair_empty(self) -> bool:
        try:
            return _INT.unpack(fcntl.ioctl(self.stack_end.fileno(), _SIOCOUTQ, _ZERO))[0] == 0
        except OSError:
            return False

    def _to_app(self) -> None:
        core = self.core
        ep = core.ep
        queue = ep.queue
        moved = 0
        while queue and moved < _BUDGET:
            item = queue[0]
            if self.sources and self._pair_empty():
                self.sources.clear()  # every datagram in the pair was read (by C code)
            try:
                self.stack_end.send(item[0])
            except BlockingIOError:
                self._watch_write(True)  # full: the rest waits in the receive buffer
                break
            except OSError:
                break  # (the program's end is closed: the socket is closing)
            ep.pop()
            self.sources.append(item)
            moved += 1
        else:
            self._watch_write(bool(queue))  # (budget spent: come back when there is room)
        if moved:
            cond = core._cond
            if cond is not None:
                cond.notify_all()  # Python readers wait for the pair, woken here

    def from_app(self) -> None:
        """Send what the program wrote on its fd (also called before Python's own sends, so
        that the two keep their order)."""
        core = self.core
        ep = core.ep
        buf = self.buf
        for _ in range(_BUDGET):
            try:
                n = int(self.stack_end.recv_into(buf, 0, _socket.MSG_TRUNC))
            except OSError:  # (BlockingIOError: nothing written)
                return
            if ep.remote is None or n > _MAX_DATAGRAM or ep.shut_wr:
                ep.counters["tx_dropped"] = ep.counters.get("tx_dropped", 0) + 1
                continue
            try:
                core.relay_send(bytes(buf[:n]))
            except OSError:
                ep.counters["tx_dropped"] = ep.counters.get("tx_dropped", 0) + 1
        core.driver.after_drain(self.pump)  # (budget spent: the rest on the next round)

    # ------------------------------------------------------------ Python reads

    def source_of(self, data: bytes, peek: bool) -> Source | None:
        """The side-queue entry of the datagram Python just read (``peek``: left queued);
        entries before it were read by C code."""
        sources = self.sources
        for index, entry in enumerate(sources):
            if entry[0] == data:
                if not peek:
                    for _ in range(index + 1):
                        sources.popleft()
                return entry
        return None

    # ---------------------------------------------------------------- closing

    def end(self) -> None:
        """The Python object closed: stop relaying and close both ends."""
        if self.done:
            return
        self.done = True
        self._watch_write(False)
        self.core.driver.remove_reader(self.stack_end.fileno())
        self.sources.clear()
        for sock in (self.app, self.stack_end):
            try:
                sock.close()
            except OSError:
                pass
