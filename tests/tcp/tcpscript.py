"""A small packetdrill-like script for segment-level tests of one TcpStack.

Segments are written the way tcpdump/packetdrill print them::

    S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
    S. 0:0(0) ack 1 win 65535 <mss 1460>
    P. 1:101(100) ack 1 win 512
    . 1:1(0) ack 101 win 512 <sack 201:301>

Flags are letters (S F R P U) with '.' for ACK. Sequence numbers are relative:
the script's peer counts from its own ISN, the stack's segments from the ISN the
stack chose (learned from its SYN or SYN-ACK). ``expect`` checks exactly the
fields written (flags always; ack, win and options only when given); ``*``
matches anything and, in an injected ``TS ... ecr *``, echoes the stack's last
timestamp value.
"""

from __future__ import annotations

import gc
import re
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpnet import A, B, RecordingHost

from multisock.stack.tcp import TcpConfig, TcpSocket, TcpStack, TcpState
from multisock.wire import tcp as wire

_FLAG_BITS = {
    "S": wire.SYN,
    "F": wire.FIN,
    "R": wire.RST,
    "P": wire.PSH,
    "U": wire.URG,
    ".": wire.ACK,
    "E": wire.ECE,
    "W": wire.CWR,
}
_LINE = re.compile(
    r"^(?P<flags>[SFRPUEW.]+)\s+(?P<seq>\*|\d+):(?P<end>\*|\d+)\((?P<len>\*|\d+)\)"
    r"(?:\s+ack\s+(?P<ack>\*|\d+))?(?:\s+win\s+(?P<win>\*|\d+))?(?:\s+<(?P<opts>[^>]*)>)?\s*$"
)


@dataclass
class Spec:
    flags: int
    seq: int | None
    length: int | None
    ack: int | None
    win: int | None
    options: dict[str, object] | None = None
    has_ack: bool = False
    raw: str = field(default="")


def _num(text: str | None) -> int | None:
    return None if text is None or text == "*" else int(text)


def parse_spec(text: str) -> Spec:
    m = _LINE.match(text.strip())
    if m is None:
        raise ValueError(f"bad segment line: {text!r}")
    flags = 0
    for ch in m["flags"]:
        flags |= _FLAG_BITS[ch]
    options: dict[str, object] | None = None
    if m["opts"] is not None:
        options = {}
        for item in filter(None, (p.strip() for p in m["opts"].split(","))):
            words = item.split()
            if words[0] == "mss":
                options["mss"] = int(words[1])
            elif words[0] == "wscale":
                options["wscale"] = int(words[1])
            elif words[0] == "sackOK":
                options["sackOK"] = True
            elif words[0] == "TS":
                options["ts"] = (_num(words[2]), _num(words[4]))
            elif words[0] == "sack":
                options["sack"] = [tuple(int(x) for x in b.split(":")) for b in words[1:]]
            elif words[0] in ("nop", "eol"):
                continue
            else:
                raise ValueError(f"unknown option {item!r}")
    return Spec(
        flags,
        _num(m["seq"]),
        _num(m["len"]),
        _num(m["ack"]),
        _num(m["win"]),
        options,
        m["ack"] is not None,
        text,
    )


class Script:
    """One stack under test (address A) and a scripted peer (address B)."""

    def __init__(
        self,
        config: TcpConfig | None = None,
        *,
        mtu: int = 1500,
        peer_isn: int = 1000,
        peer_port: int = 40000,
        seed: int = 7,
    ) -> None:
        import random

        self.config = config or TcpConfig(quickack_segments=0)
        self.host = RecordingHost((A,), mtu)
        self.stack = TcpStack(self.host, self.config, rng=random.Random(seed), secret=b"k" * 32)
        self.now = 0.0
        self.peer_isn = peer_isn
        self.peer_port = peer_port
        self.local_port = 0
        self.local_isn: int | None = None
        self.last_ts: int = 0
        self.sock: TcpSocket | None = None
        self.listener: TcpSocket | None = None
        self.read = 0

    # -------------------------------------------------------------- set-up

    def listen(self, port: int = 8080, backlog: int = 8, **options: object) -> TcpSocket:
        sock = self.stack.socket(socket.AF_INET)
        for name, value in options.items():
            setattr(sock, name, value)
        sock.bind(A, port)
        sock.listen(backlog, self.now)
        self.listener = sock
        self.local_port = port
        return sock

    def connect(self, port: int = 8080, **options: object) -> TcpSocket:
        sock = self.stack.socket(socket.AF_INET)
        for name, value in options.items():
            setattr(sock, name, value)
        sock.connect(B, port, self.now)
        self.sock = sock
        assert sock.local is not None
        self.local_port = sock.local[1]
        self.peer_port = port
        return sock

    def accept(self) -> TcpSocket:
        assert self.listener is not None
        child = self.listener.accept()
        assert child is not None, "nothing to accept"
        self.sock = child
        return child

    # -------------------------------------------------------------- segments

    def build(
        self,
        text: str,
        payload: bytes | None = None,
        *,
        sport: int | None = None,
        absolute: bool = False,
    ) -> bytes:
        spec = parse_spec(text)
        seq = spec.seq or 0
        ack = spec.ack or 0
        if not absolute:
            seq += self.peer_isn
            if spec.has_ack:
                assert self.local_isn is not None, "the stack has not sent its ISN yet"
                ack += self.local_isn
        kwargs: dict[str, object] = {}
        opts = spec.options or {}
        if "mss" in opts:
            kwargs["mss"] = opts["mss"]
        if "wscale" in opts:
            kwargs["wscale"] = opts["wscale"]
        if opts.get("sackOK"):
            kwargs["sack_permitted"] = True
        if "ts" in opts:
            val, ecr = opts["ts"]  # type: ignore[misc]
            kwargs["ts"] = (val or 0, self.last_ts if ecr is None else ecr)
        if "sack" in opts:
            kwargs["sack_blocks"] = [
                (
                    (s + (0 if absolute else self.local_isn or 0)) & 0xFFFFFFFF,
                    (e + (0 if absolute else self.local_isn or 0)) & 0xFFFFFFFF,
                )
                for s, e in opts["sack"]
            ]  # type: ignore[attr-defined]
        length = spec.length or 0
        data = payload if payload is not None else bytes((seq + i) & 0xFF for i in range(length))
        assert len(data) == length
        hdr = wire.build(
            sport if sport is not None else self.peer_port,
            self.local_port,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            spec.flags,
            spec.win if spec.win is not None else 65535,
            **kwargs,
        )  # type: ignore[arg-type]
        return hdr + data

    def inject(self, text: str, payload: bytes | None = None, **kw: object) -> None:
        segment = self.build(text, payload, **kw)  # type: ignore[arg-type]
        self.stack.input(B, A, memoryview(segment), self.now)
        assert self.stack.counters["internal_errors"] == 0, self.stack.last_exception

    def pop(self) -> tuple[wire.TCPHeader, bytes]:
        assert self.host.sent, "the stack sent nothing"
        src, dst, seg = self.host.sent.pop(0)
        assert (src, dst) == (A, B)
        hdr, payload = wire.parse(seg)
        if hdr.ts_val is not None:
            self.last_ts = hdr.ts_val
        if hdr.flags & wire.SYN and self.local_isn is None:
            self.local_isn = hdr.seq
        return hdr, bytes(payload)

    def expect(self, text: str) -> tuple[wire.TCPHeader, bytes]:
        spec = parse_spec(text)
        hdr, payload = self.pop()
        got = describe(hdr, len(payload), self.local_isn or 0, self.peer_isn)
        assert hdr.flags == spec.flags, f"expected {text!r}, got {got!r}"
        if spec.seq is not None:
            assert ((hdr.seq - (self.local_isn or 0)) & 0xFFFFFFFF) == spec.seq, (
                f"expected {text!r}, got {got!r}"
            )
        if spec.length is not None:
            assert len(payload) == spec.length, f"expected {text!r}, got {got!r}"
        if spec.ack is not None:
            assert ((hdr.ack - self.peer_isn) & 0xFFFFFFFF) == spec.ack, (
                f"expected {text!r}, got {got!r}"
            )
        if spec.win is not None:
            assert hdr.window == spec.win, f"expected {text!r}, got {got!r}"
        if spec.options is not None:
            opts = spec.options
            assert hdr.mss == opts.get("mss"), f"expected {text!r}, got {got!r}"
            assert hdr.wscale == opts.get("wscale"), f"expected {text!r}, got {got!r}"
            assert hdr.sack_permitted == bool(opts.get("sackOK")), f"expected {text!r}, got {got!r}"
            ts = opts.get("ts")
            if ts is None:
                assert hdr.ts_val is None, f"expected {text!r}, got {got!r}"
            else:
                val, ecr = ts  # type: ignore[misc]
                assert hdr.ts_val is not None
                if val is not None:
                    assert hdr.ts_val == val, f"expected {text!r}, got {got!r}"
                if ecr is not None:
                    assert hdr.ts_ecr == ecr, f"expected {text!r}, got {got!r}"
            blocks = [
                ((s - self.peer_isn) & 0xFFFFFFFF, (e - self.peer_isn) & 0xFFFFFFFF)
                for s, e in hdr.sack_blocks
            ]
            assert blocks == [tuple(b) for b in opts.get("sack", [])], (
                f"expected {text!r}, got {got!r}"
            )  # type: ignore[attr-defined]
        return hdr, payload

    def expect_none(self) -> None:
        assert not self.host.sent, f"unexpected output: {self.pending()}"

    def pending(self) -> list[str]:
        out = []
        for _, _, seg in self.host.sent:
            hdr, payload = wire.parse(seg)
            out.append(describe(hdr, len(payload), self.local_isn or 0, self.peer_isn))
        return out

    # -------------------------------------------------------------- time

    def advance(self, dt: float) -> None:
        """Move the clock, firing every timer due on the way at its own time."""
        end = self.now + dt
        while True:
            deadline = self.stack.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.stack.on_timer(self.now)
        self.now = end
        assert self.stack.counters["internal_errors"] == 0, self.stack.last_exception

    def next_timer_in(self) -> float | None:
        deadline = self.stack.next_deadline()
        return None if deadline is None else deadline - self.now

    # -------------------------------------------------------------- common openings

    def passive_open(self, syn_opts: str = "<mss 1460>", **options: object) -> TcpSocket:
        self.listen(**options)
        self.inject(f"S 0:0(0) win 65535 {syn_opts}")
        self.pop()
        self.inject(". 1:1(0) ack 1 win 65535")
        return self.accept()

    def active_open(self, synack_opts: str = "<mss 1460>", **options: object) -> TcpSocket:
        sock = self.connect(**options)
        self.pop()
        self.inject(f"S. 0:0(0) ack 1 win 65535 {synack_opts}")
        self.pop()  # the ACK completing the handshake
        return sock


def describe(hdr: wire.TCPHeader, length: int, local_isn: int, peer_isn: int) -> str:
    flags = "".join(
        ch
        for ch, bit in (("S", wire.SYN), ("F", wire.FIN), ("R", wire.RST), ("P", wire.PSH))
        if hdr.flags & bit
    )
    if hdr.flags & wire.ACK:
        flags += "."
    seq = (hdr.seq - local_isn) & 0xFFFFFFFF
    text = f"{flags} {seq}:{seq + length}({length})"
    if hdr.flags & wire.ACK:
        text += f" ack {(hdr.ack - peer_isn) & 0xFFFFFFFF}"
    text += f" win {hdr.window}"
    opts = []
    if hdr.mss is not None:
        opts.append(f"mss {hdr.mss}")
    if hdr.sack_permitted:
        opts.append("sackOK")
    if hdr.ts_val is not None:
        opts.append(f"TS val {hdr.ts_val} ecr {hdr.ts_ecr}")
    if hdr.wscale is not None:
        opts.append(f"wscale {hdr.wscale}")
    if hdr.sack_blocks:
        opts.append(
            "sack "
            + " ".join(
                f"{(s - peer_isn) & 0xFFFFFFFF}:{(e - peer_isn) & 0xFFFFFFFF}"
                for s, e in hdr.sack_blocks
            )
        )
    if opts:
        text += " <" + ",".join(opts) + ">"
    return text


# A TIME-WAIT record moves the block it replaced to CLOSED when it ends, reaching it through a
# weak reference. The compiled build's blocks are mypyc native objects, which cannot be weakly
# referenced (timewait.py): there a block a test still holds stays in TIME_WAIT.
RECORDS_REACH_BLOCKS = bool(TcpSocket.__weakrefoffset__)


def assert_time_wait_over(stack: TcpStack, sock: TcpSocket) -> None:
    """The TIME-WAIT of ``sock`` (a block the test holds, replaced by a record) has ended: no
    record or block of it holds its 4-tuple any more (a new incarnation may), and it is CLOSED
    where the record could reach it."""
    assert sock.local is not None and sock.remote is not None
    entry = stack.conns.get((sock.local[0], sock.local[1], sock.remote[0], sock.remote[1]))
    assert entry is None or (entry is not sock and entry.state is not TcpState.TIME_WAIT)
    assert sock.state is (TcpState.CLOSED if RECORDS_REACH_BLOCKS else TcpState.TIME_WAIT)


def freed_later(obj: object) -> Callable[[], bool]:
    """A check, for later, that ``obj`` was freed: by a weak reference where its class allows
    one, else (a mypyc native class) by looking for it among the objects the collector
    tracks (native objects are tracked)."""
    if type(obj).__weakrefoffset__:
        ref = weakref.ref(obj)
        return lambda: ref() is None
    ident, kind = id(obj), type(obj)
    return lambda: not any(id(o) == ident and type(o) is kind for o in gc.get_objects())
