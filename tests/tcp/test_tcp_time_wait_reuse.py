"""connect() taking over a TIME-WAIT 4-tuple: TcpConfig.tw_reuse (Linux's tcp_tw_reuse).

A client making many short connections to one server address:port fills its ephemeral
range with TIME-WAIT records; Linux (tcp_twsk_unique) lets a new outgoing connection reuse
such a 4-tuple when timestamps were in use on it and more than a second has passed since
it entered TIME-WAIT, by default (2) for loopback traffic only. The new
connection starts its sequence numbers a maximal window beyond the old ones and keeps the
peer's last timestamp. A loopback test with kernel sockets would need ~28k ports in
TIME-WAIT, so the comparison with Linux stays with its rule (see TimeWait.reusable).

Here one stack talks to itself over a scripted loopback (client and server both ours):
the client closes first, so the client side holds TIME-WAIT and the server side is gone.
"""

from __future__ import annotations

import errno
import random
import socket
from collections import deque

import pytest
from tcpnet import A, B, RecordingHost
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpSocket, TcpStack, TcpState
from multisock.stack.tcp.timewait import TimeWait
from multisock.wire import tcp as wire

LO = bytes([127, 0, 0, 1])
LO6 = bytes(15) + b"\x01"
PORTS = range(40000, 40004)  # the narrowed ephemeral range: four ports


class Loop:
    """One stack whose output comes back to it (in order, when ``flush`` runs)."""

    def __init__(self, tw_reuse: int = 2, *, addrs: tuple[bytes, bytes] = (LO, LO),
                 timestamps: bool = True, family: int = socket.AF_INET) -> None:
        config = TcpConfig(
            quickack_segments=0, ephemeral_low=PORTS[0], ephemeral_high=PORTS[-1],
            tw_reuse=tw_reuse, timestamps=timestamps,
        )
        self.client_addr, self.server_addr = addrs
        # RecordingHost.select_source gives its first address: the client's
        self.host = RecordingHost(tuple(dict.fromkeys(addrs)))
        self.queue: deque[tuple[bytes, bytes, bytes]] = deque()
        self.host.deliver = lambda src, dst, seg: self.queue.append((src, dst, seg))  # type: ignore[assignment]
        self.stack = TcpStack(self.host, config, rng=random.Random(3), secret=b"s" * 32)
        self.now = 0.0
        self.family = family
        self.listener = self.stack.socket(family)
        self.listener.bind(self.server_addr, 8080)
        self.listener.listen(64, self.now)

    def flush(self) -> None:
        while self.queue:
            src, dst, seg = self.queue.popleft()
            self.stack.input(src, dst, memoryview(seg), self.now)
        assert self.stack.counters["internal_errors"] == 0, self.stack.last_exception

    def advance(self, dt: float) -> None:
        end = self.now + dt
        while (deadline := self.stack.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.stack.on_timer(self.now)
            self.flush()
        self.now = end

    def connect(self) -> TcpSocket:
        client = self.stack.socket(self.family)
        client.connect(self.server_addr, 8080, self.now)
        return client

    def short_connection(self) -> tuple[int, int]:
        """Open, accept, client closes first, server closes: the client's side ends in a
        TIME-WAIT record. Returns (client port, the client's last snd_max)."""
        client = self.connect()
        self.flush()
        assert client.state is TcpState.ESTABLISHED
        child = self.listener.accept()
        assert child is not None
        client.close(self.now)
        self.flush()
        child.close(self.now)
        self.flush()
        assert client.state is TcpState.TIME_WAIT
        assert child.state is TcpState.CLOSED  # the server's side is gone
        assert client.local is not None
        return client.local[1], client.snd_max

    def fill(self) -> dict[int, int]:
        """Every port of the range in TIME-WAIT towards the server: port -> snd_max."""
        held = dict(self.short_connection() for _ in PORTS)
        assert sorted(held) == list(PORTS)
        records = [c for c in self.stack.conns.values() if isinstance(c, TimeWait)]
        assert len(records) == len(PORTS) and all(r.ts_ok for r in records)
        return held

    def syns(self) -> list[wire.TCPHeader]:
        out = []
        for src, _, seg in self.host.sent:
            hdr, _ = wire.parse(seg)
            if src == self.client_addr and hdr.flags == wire.SYN:
                out.append(hdr)
        return out


def _refused(loop: Loop) -> None:
    with pytest.raises(OSError) as info:
        loop.connect()
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert loop.stack.counters["time_wait_reused"] == 0


def _reuses(loop: Loop) -> None:
    """With the range full of TIME-WAIT and more than a second gone, connect takes one of
    the held ports and the connection completes."""
    held = loop.fill()
    loop.advance(1.5)
    client = loop.connect()
    assert client.local is not None and client.local[1] in held
    loop.flush()
    assert client.state is TcpState.ESTABLISHED


def test_loopback_reuse_after_a_second_starts_beyond_the_old_connection() -> None:
    loop = Loop()
    held = loop.fill()
    loop.advance(1.5)  # more than a second in TIME-WAIT
    stamps = {r.local[1]: r.ts_recent for r in loop.stack.conns.values()
              if isinstance(r, TimeWait)}
    client = loop.connect()
    assert client.local is not None
    port = client.local[1]
    assert port in held and loop.stack.counters["time_wait_reused"] == 1
    # the SYN's ISN is a maximal window beyond everything the old connection sent
    syn = loop.syns()[-1]
    assert syn.src_port == port
    assert syn.seq == (held[port] + 65535 + 2) & 0xFFFFFFFF
    assert client.ts_recent == stamps[port]  # the peer's last timestamp, inherited
    # the record is retired as its expiry would retire it: gone from the tables
    key = (LO, port, LO, 8080)
    assert loop.stack.conns[key] is client
    assert [u for u in loop.stack.ports.by_port[port] if isinstance(u, TimeWait)] == []
    assert sum(isinstance(c, TimeWait) for c in loop.stack.conns.values()) == len(PORTS) - 1
    # the server side (no state left for this 4-tuple) accepts the reusing SYN
    loop.flush()
    assert client.state is TcpState.ESTABLISHED
    child = loop.listener.accept()
    assert child is not None and child.remote == (LO, port)
    client.send(b"again", loop.now)
    loop.flush()
    buf = bytearray(100)
    n = child.recv_into(memoryview(buf), loop.now)
    assert bytes(buf[:n]) == b"again"
    # its queue entry is dropped when it reaches the head; the others expire on time
    loop.advance(2 * loop.stack.config.msl)
    assert not any(isinstance(c, TimeWait) for c in loop.stack.conns.values())
    assert client.state is TcpState.ESTABLISHED


def test_every_record_of_the_range_can_be_reused_in_turn() -> None:
    loop = Loop()
    loop.fill()
    loop.advance(1.5)
    ports = set()
    for _ in PORTS:
        client = loop.connect()
        assert client.local is not None
        ports.add(client.local[1])
        loop.flush()
        assert client.state is TcpState.ESTABLISHED
    assert ports == set(PORTS) and loop.stack.counters["time_wait_reused"] == len(PORTS)
    with pytest.raises(OSError) as info:  # now held by live connections: none to reuse
        loop.connect()
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_no_reuse_when_disabled() -> None:
    loop = Loop(tw_reuse=0)
    loop.fill()
    loop.advance(1.5)
    _refused(loop)


def test_ipv6_loopback_and_a_pair_with_one_loopback_address() -> None:
    # ::1 counts as loopback; so does a pair where only one end is 127/8 (Linux checks
    # either address: a non-loopback source bound to talk to 127.0.0.1 still goes via lo)
    for loop in (Loop(addrs=(LO6, LO6), family=socket.AF_INET6), Loop(addrs=(A, LO))):
        _reuses(loop)


def test_no_reuse_within_a_second_of_entering_time_wait() -> None:
    loop = Loop()
    loop.fill()
    assert loop.now == 0.0  # (the scripted loopback takes no time: all entered at 0)
    loop.advance(1.0)  # exactly one second: not yet (Linux: now_ms after entry_ms + 1000)
    _refused(loop)
    loop.advance(0.001)
    client = loop.connect()
    assert loop.stack.counters["time_wait_reused"] == 1
    loop.flush()
    assert client.state is TcpState.ESTABLISHED


def test_no_reuse_for_non_loopback_traffic_by_default_but_with_one() -> None:
    loop = Loop(addrs=(A, B))  # two local addresses, not loopback ones
    loop.fill()
    loop.advance(1.5)
    _refused(loop)
    _reuses(Loop(tw_reuse=1, addrs=(A, B)))


def test_no_reuse_without_timestamps() -> None:
    loop = Loop(tw_reuse=1, timestamps=False)
    held = dict(loop.short_connection() for _ in PORTS)
    assert sorted(held) == list(PORTS)
    loop.advance(1.5)
    _refused(loop)


def test_explicit_bind_is_unchanged() -> None:
    loop = Loop()
    held = loop.fill()
    loop.advance(1.5)
    port = next(iter(held))
    again = loop.stack.socket(socket.AF_INET)
    with pytest.raises(OSError) as info:
        again.bind(LO, port)  # the record holds the port for bind() as before
    assert info.value.errno == errno.EADDRINUSE
    assert loop.stack.counters["time_wait_reused"] == 0


def test_a_retransmitted_fin_refreshes_the_timestamp_the_successor_inherits() -> None:
    # scripted peer: the record keeps the newest timestamp; the wait counts from the entry
    s = Script(TcpConfig(quickack_segments=0, tw_reuse=1, ephemeral_low=40000,
                         ephemeral_high=40000))
    sock = s.active_open(synack_opts="<mss 1460,TS val 100 ecr *>")
    sock.close(s.now)
    s.pop()  # our FIN
    s.advance(0.5)
    s.inject("F. 1:1(0) ack 2 win 65535 <TS val 200 ecr *>")
    s.pop()  # our ACK of it
    (record,) = s.stack.conns.values()
    assert isinstance(record, TimeWait) and record.ts_recent == 200
    assert record.entered == s.now
    s.advance(0.7)
    s.inject("F. 1:1(0) ack 2 win 65535 <TS val 300 ecr *>")  # our ACK was lost
    s.pop()
    assert record.ts_recent == 300
    again = s.stack.socket(socket.AF_INET)
    with pytest.raises(OSError) as info:
        again.connect(B, 8080, s.now)  # 0.7 s after entering TIME-WAIT
    assert info.value.errno == errno.EADDRNOTAVAIL
    s.advance(0.4)
    again = s.stack.socket(socket.AF_INET)
    again.connect(B, 8080, s.now)
    assert again.local == (A, 40000) and again.ts_recent == 300


def test_syn_ack_older_than_the_inherited_timestamp_is_dropped() -> None:
    s = Script(TcpConfig(quickack_segments=0, tw_reuse=1, ephemeral_low=40000,
                         ephemeral_high=40000))
    sock = s.active_open(synack_opts="<mss 1460,TS val 100 ecr *>")
    old_isn = s.local_isn
    assert old_isn is not None
    sock.close(s.now)
    s.pop()
    s.inject("F. 1:1(0) ack 2 win 65535 <TS val 200 ecr *>")
    s.pop()
    s.advance(2.0)
    again = s.stack.socket(socket.AF_INET)
    again.connect(B, 8080, s.now)
    syn, _ = s.pop()
    assert syn.seq == (old_isn + 2 + 65535 + 2) & 0xFFFFFFFF  # SYN + FIN sent before
    s.local_isn = syn.seq
    # a duplicate SYN-ACK of the old connection's era (timestamp 150 < 200): ignored
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460,TS val 150 ecr *>")
    s.expect_none()
    assert again.state is TcpState.SYN_SENT and s.stack.counters["paws_dropped"] == 1
    s.inject("S. 5000:5000(0) ack 1 win 65535 <mss 1460,TS val 250 ecr *>")
    s.pop()
    assert again.state is TcpState.ESTABLISHED and again.ts_recent == 250


def test_fresh_connections_are_unaffected() -> None:
    # no TIME-WAIT to reuse: a normal ISN, a random timestamp offset, no PAWS in SYN-SENT
    s = Script(TcpConfig(quickack_segments=0))
    sock = s.connect()
    assert sock.ts_recent == 0
    s.pop()
    s.inject("S. 0:0(0) ack 1 win 65535 <mss 1460,TS val 1 ecr *>")
    s.pop()
    assert sock.state is TcpState.ESTABLISHED and s.stack.counters["time_wait_reused"] == 0


def test_reusing_syn_also_recycles_the_servers_own_time_wait() -> None:
    # both sides close at once: each ends in TIME-WAIT. The reusing SYN then meets the
    # server's record, which lets it through (newer timestamp: one clock per address pair)
    loop = Loop()
    held = {}
    for _ in PORTS:
        client = loop.connect()
        loop.flush()
        child = loop.listener.accept()
        assert child is not None and client.local is not None
        client.close(loop.now)
        child.close(loop.now)
        loop.flush()
        assert client.state is TcpState.TIME_WAIT and child.state is TcpState.TIME_WAIT
        held[client.local[1]] = client.snd_max
    assert sorted(held) == list(PORTS)
    loop.advance(1.5)
    client = loop.connect()
    assert client.local is not None
    port = client.local[1]
    server_record = loop.stack.conns[(LO, 8080, LO, port)]
    assert isinstance(server_record, TimeWait)
    loop.flush()
    assert loop.stack.counters["time_wait_recycled"] == 1  # the server's record gave way
    assert server_record.state is TcpState.CLOSED
    assert client.state is TcpState.ESTABLISHED
    child = loop.listener.accept()
    assert child is not None and child.remote == (LO, port)
    assert loop.syns()[-1].seq == (held[port] + 65535 + 2) & 0xFFFFFFFF


def test_through_the_socket_api_on_a_virtual_host() -> None:
    # the load-test pattern (a new connection per request to one server port) with the
    # public API: a host whose ephemeral range is narrowed to four ports, a clock we move
    import multisock.socket as msock
    from multisock.net.network import Network
    from multisock.runtime import use_host

    clock = [100.0]
    net = Network(seed=5, clock=lambda: clock[0])
    try:
        host = net.add_host("client", "10.0.0.1/24")
        ports = host.ip.tcp.ports  # (TcpConfig's range is read once, when the stack is made)
        ports.low, ports.high = PORTS[0], PORTS[-1]
        with use_host(host):
            server = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
            server.bind(("127.0.0.1", 8080))
            server.listen(16)
            for _ in PORTS:
                client = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
                client.settimeout(30)
                client.connect(("127.0.0.1", 8080))
                conn, _ = server.accept()
                client.sendall(b"GET")
                assert conn.recv(3) == b"GET"
                client.close()  # the client closes first: its side holds TIME-WAIT
                conn.close()
            rows = host.ip.tcp.connections()[1:]
            assert [r["state"] for r in rows] == ["TIME_WAIT"] * len(PORTS)
            late = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
            with pytest.raises(OSError) as info:
                late.connect(("127.0.0.1", 8080))
            assert info.value.errno == errno.EADDRNOTAVAIL
            late.close()
            clock[0] += 1.5
            client = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
            client.settimeout(30)
            client.connect(("127.0.0.1", 8080))
            assert client.getsockname()[1] in PORTS
            conn, _ = server.accept()
            client.sendall(b"again")
            assert conn.recv(5) == b"again"
            assert host.ip.tcp.counters["time_wait_reused"] == 1
            for s in (client, conn, server):
                s.close()
    finally:
        net.close()
