"""The IP layer's hook points, where a security layer (firewall, conntrack, NAT) plugs in.

netfilter's five points, at the same places of a packet's way through ``IPStack``::

    arrives -> PRE_ROUTING -> for us? -> INPUT -> the transports (UDP, TCP, ICMP, ping)
                                  \\-> FORWARD -> POST_ROUTING -> leaves      (routers)
    the transports -> OUTPUT -> routing, fragments -> POST_ROUTING -> leaves

A hook is a callable ``hook(packet: Packet) -> verdict``, run in the order added, with the
driver's lock held (it must not block). The verdict is :data:`ACCEPT` (on to the next hook,
then the stack), :data:`DROP` (the packet is gone, counted in :attr:`Hooks.dropped`), or - at
PRE_ROUTING and POST_ROUTING, the points where NAT rewrites, as in netfilter - a replacement:
the bytes of a whole IP packet that goes on in the packet's place (the next hook sees it).
INPUT, FORWARD and OUTPUT filter: there anything but DROP accepts.

What a hook sees (:class:`Packet`): the addresses, the protocol, the transport bytes and,
where it exists yet, the IP packet as on the wire; INPUT sees a datagram after reassembly,
PRE_ROUTING and POST_ROUTING each fragment. OUTPUT runs before the IP header is built
(``data`` is None): a locally made message, once routing chose its way (``out``, as in
netfilter, where OUTPUT follows the routing decision).

Nothing registered costs nothing: ``IPStack.hooks`` stays None until the first hook is
added, so the fast paths (TCP in, TCP out) test one attribute and the general path one more
per point; the ``Hooks`` object goes away again with the last hook. Hooks registered do not
move TCP off the fast paths: those run PRE_ROUTING and INPUT, OUTPUT and POST_ROUTING
themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multisock.stack.interface import Interface

PRE_ROUTING = "pre_routing"
INPUT = "input"
FORWARD = "forward"
OUTPUT = "output"
POST_ROUTING = "post_routing"
POINTS = (PRE_ROUTING, INPUT, FORWARD, OUTPUT, POST_ROUTING)
_REWRITING = (PRE_ROUTING, POST_ROUTING)

DROP = 0  # the packet is gone (netfilter's NF_DROP)
ACCEPT = 1  # on to the next hook (NF_ACCEPT)

Verdict = int | bytes
Hook = Callable[["Packet"], Verdict]


class Packet:
    """One packet as a hook sees it (read-only by convention: return a replacement instead).

    The transport bytes may come in two pieces, ``head`` (at least the transport header)
    and ``rest`` (a locally made segment's data, kept apart by the sender): ``payload``
    joins them only when a hook asks, so a hook that reads headers alone (a firewall, conntrack)
    never copies a bulk segment."""

    __slots__ = ("point", "src", "dst", "proto", "head", "rest", "_payload", "data", "iface",
                 "out")

    def __init__(self, point: str, src: bytes, dst: bytes, proto: int,
                 payload: bytes | bytearray | memoryview, data: bytes | None,
                 iface: Interface | None, rest: bytes | memoryview = b"",
                 out: Interface | None = None) -> None:
        self.point = point
        self.src = src  # 4 or 16 bytes
        self.dst = dst
        self.proto = proto  # the transport's protocol number (6 TCP, 17 UDP, 1/58 ICMP)
        self.head = payload  # the transport header (and data, when ``rest`` is empty)
        self.rest = rest  # the rest of the transport bytes, apart
        self._payload: bytes | bytearray | memoryview | None = None if len(rest) else payload
        self.data = data  # the whole IP packet as on the wire; None at OUTPUT
        self.iface = iface  # arrived on (PRE_ROUTING, INPUT, FORWARD), leaves by (POST_ROUTING)
        # leaves by, as routing chose (OUTPUT, FORWARD, POST_ROUTING: iptables' -o)
        self.out = out

    @property
    def payload(self) -> bytes | bytearray | memoryview:
        """The transport header and data, in one piece (joined on first use)."""
        joined = self._payload
        if joined is None:
            joined = self._payload = b"".join((self.head, self.rest))
        return joined

    @property
    def length(self) -> int:
        """The transport bytes' length, without joining them."""
        return len(self.head) + len(self.rest)

    @classmethod
    def of_wire(cls, point: str, data: bytes, iface: Interface | None) -> Packet | None:
        """The fields read off an IP packet's fixed header; None if it is too short to have
        one (the stack's own parser then counts it as malformed)."""
        if len(data) >= 20 and data[0] >> 4 == 4:
            ihl = (data[0] & 0x0F) * 4
            return cls(point, bytes(data[12:16]), bytes(data[16:20]), data[9],
                       memoryview(data)[ihl:], data, iface,
                       out=iface if point == POST_ROUTING else None)
        if len(data) >= 40 and data[0] >> 4 == 6:
            return cls(point, bytes(data[8:24]), bytes(data[24:40]), data[6],
                       memoryview(data)[40:], data, iface,
                       out=iface if point == POST_ROUTING else None)
        return None

    def __repr__(self) -> str:
        return f"<Packet {self.point} proto={self.proto} {self.src.hex()}->{self.dst.hex()}>"


class Hooks:
    """The hooks of one ``IPStack``, a tuple per point (an empty one where none is)."""

    __slots__ = POINTS + ("dropped",)

    def __init__(self) -> None:
        self.pre_routing: tuple[Hook, ...] = ()
        self.input: tuple[Hook, ...] = ()
        self.forward: tuple[Hook, ...] = ()
        self.output: tuple[Hook, ...] = ()
        self.post_routing: tuple[Hook, ...] = ()
        self.dropped = dict.fromkeys(POINTS, 0)  # packets each point's hooks dropped

    def add(self, point: str, hook: Hook) -> None:
        if point not in POINTS:
            raise ValueError(f"no hook point {point!r}; one of {POINTS}")
        setattr(self, point, getattr(self, point) + (hook,))

    def remove(self, point: str, hook: Hook) -> None:
        hooks: tuple[Hook, ...] = getattr(self, point)
        setattr(self, point, tuple(h for h in hooks if h is not hook))

    def empty(self) -> bool:
        return not any(getattr(self, point) for point in POINTS)

    def admit(self, point: str, packet: Packet) -> bool:
        """A filter point: False when a hook dropped the packet."""
        for hook in getattr(self, point):
            if hook(packet) == DROP:
                self.dropped[point] += 1
                return False
        return True

    def rewrite(self, point: str, data: bytes, iface: Interface | None) -> bytes | None:
        """A NAT point: the packet to go on with (maybe replaced), None when dropped."""
        assert point in _REWRITING
        for hook in getattr(self, point):
            packet = Packet.of_wire(point, data, iface)
            if packet is None:
                return data
            verdict = hook(packet)
            if isinstance(verdict, (bytes, bytearray, memoryview)):
                data = bytes(verdict)
            elif verdict == DROP:
                self.dropped[point] += 1
                return None
        return data
