"""Test helpers: a fake host that records segments, and two stacks joined by a wire.

The wire is a list of in-flight packets ordered by delivery time, driven by a fake
clock; seeded loss, reordering and delay make impaired runs reproducible.
"""

from __future__ import annotations

import heapq
import itertools
import random
import socket

from multisock.stack.gso import tcp_pieces
from multisock.stack.tcp import TcpConfig, TcpSocket, TcpStack

A = bytes([10, 0, 0, 1])
B = bytes([10, 0, 0, 2])


class RecordingHost:
    """A TcpHost that keeps every segment the engine emits."""

    def __init__(self, addresses: tuple[bytes, ...] = (A,), mtu: int = 1500, gso: int = 0,
                 gso_whole: bool = False) -> None:
        self.addresses = addresses
        self.mtu = mtu
        # segmentation offload: the largest packet the "interface" takes (0: none); a
        # segment of several MSS is recorded whole in ``sent`` and delivered cut, as a
        # kernel would cut it (``gso_sent``: how many segments came with a size to cut at)
        self.gso = gso
        self.gso_sent = 0
        # deliver such a segment whole, as a kernel takes one for a local socket (its GRO)
        self.gso_whole = gso_whole
        self.sent: list[tuple[bytes, bytes, bytes]] = []
        self.deliver = None  # set by Wire

    def tcp_output(self, src: bytes, dst: bytes, segment: bytes | bytearray | memoryview,
                   ttl: int | None = None, tos: int = 0,
                   payload: bytes | memoryview = b"", gso: int = 0) -> None:
        whole = bytes(segment) + bytes(payload)
        self.sent.append((src, dst, whole))
        cut = gso and len(payload) > gso
        self.gso_sent += 1 if cut else 0
        if self.deliver is None:
            return
        if cut and not self.gso_whole:
            for head, piece in tcp_pieces(bytes(segment), payload, gso):
                self.deliver(src, dst, head + bytes(piece))
            return
        self.deliver(src, dst, whole)

    def route_mtu(self, dst: bytes) -> int | None:
        if dst == bytes(4) or dst[:1] == b"\xff":
            return None
        return self.mtu

    def route_gso(self, dst: bytes) -> int:
        return self.gso

    def select_source(self, dst: bytes) -> bytes | None:
        return self.addresses[0]

    def is_local_address(self, addr: bytes) -> bool:
        return addr in self.addresses


class Wire:
    """Two stacks, one link, a fake clock; ``run`` advances time until quiet."""

    def __init__(
        self,
        config: TcpConfig | None = None,
        *,
        mtu: int = 1500,
        delay: float = 0.001,
        loss: float = 0.0,
        reorder: float = 0.0,
        seed: int = 1,
        rate: float | None = None,
        gso: int = 0,
        gso_whole: bool = False,
    ) -> None:
        self.now = 0.0
        self.delay = delay
        self.loss = loss
        self.reorder = reorder
        self.rate = rate  # bytes/s, None = unlimited
        self.rng = random.Random(seed)
        self.queue: list[tuple[float, int, bytes, bytes, bytes]] = []
        self.count = itertools.count()
        self.link_free = 0.0
        self.delivered = 0
        self.dropped = 0
        self.host_a = RecordingHost((A,), mtu, gso, gso_whole)
        self.host_b = RecordingHost((B,), mtu, gso, gso_whole)
        self.host_a.deliver = self._send
        self.host_b.deliver = self._send
        self.host_a.sent = _Discard()
        self.host_b.sent = _Discard()
        cfg = config or TcpConfig()
        self.a = TcpStack(self.host_a, cfg, rng=random.Random(seed * 2 + 1))
        self.b = TcpStack(self.host_b, cfg, rng=random.Random(seed * 2 + 2))

    def _send(self, src: bytes, dst: bytes, seg: bytes) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        when = self.now + self.delay
        if self.rate:
            start = max(self.now, self.link_free)
            self.link_free = start + (len(seg) + 40) / self.rate
            when = self.link_free + self.delay
        if self.reorder and self.rng.random() < self.reorder:
            when += self.delay * 2
        heapq.heappush(self.queue, (when, next(self.count), src, dst, seg))

    def step(self) -> bool:
        """Advance to the next event (delivery or timer); False when nothing is left."""
        deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
        nxt_timer = min(deadlines) if deadlines else None
        nxt_pkt = self.queue[0][0] if self.queue else None
        if nxt_pkt is None and nxt_timer is None:
            return False
        if nxt_pkt is not None and (nxt_timer is None or nxt_pkt <= nxt_timer):
            when, _, src, dst, seg = heapq.heappop(self.queue)
            self.now = max(self.now, when)
            stack = self.a if dst == A else self.b
            self.delivered += 1
            stack.input(src, dst, memoryview(seg), self.now)
        else:
            assert nxt_timer is not None
            self.now = max(self.now, nxt_timer)
            self.a.on_timer(self.now)
            self.b.on_timer(self.now)
        return True

    def run_until(self, cond, limit: float = 600.0, max_steps: int = 2_000_000) -> None:  # type: ignore[no-untyped-def]
        steps = 0
        while not cond():
            if not self.step() or self.now > limit:
                raise AssertionError(f"condition not reached (now={self.now:.3f})")
            steps += 1
            assert steps < max_steps, "too many steps"

    def connect_pair(self, port: int = 80) -> tuple[TcpSocket, TcpSocket, TcpSocket]:
        listener = self.b.socket(socket.AF_INET)
        listener.bind(B, port)
        listener.listen(16, self.now)
        client = self.a.socket(socket.AF_INET)
        client.connect(B, port, self.now)
        accepted: list[TcpSocket] = []

        def ready() -> bool:
            if not accepted:
                child = listener.accept()
                if child is not None:
                    accepted.append(child)
            return bool(accepted) and client.state.name == "ESTABLISHED"

        self.run_until(ready)
        return client, accepted[0], listener


class _Discard(list):  # type: ignore[type-arg]
    """The wire does not keep history: bulk runs would hold every byte otherwise."""

    def append(self, item: object) -> None:
        pass
