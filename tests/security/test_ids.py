"""IDS/IPS rules (Snort subset): parsing, stream matching across segments, drop as IPS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.security.ids import parse_rule

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def pair() -> Iterator[tuple[Host, Host]]:
    with multisock.Network(seed=9) as net:
        a = net.add_host("a", f"{A_ADDR}/24")
        b = net.add_host("b", f"{B_ADDR}/24")
        net.link(a, b)
        yield a, b


def _connected(a: Host, b: Host, port: int = 80) -> tuple[Any, Any]:
    listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((B_ADDR, port))
    listener.listen()
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one send, one segment
    client.connect((B_ADDR, port))
    server, _ = listener.accept()
    listener.close()
    return client, server


def test_parse_rule() -> None:
    rule = parse_rule('alert tcp any any -> 10.0.0.0/8 [80,8000:8080] (msg:"x \\"y\\""; '
                      'content:"GET |2f|admin"; nocase; pcre:"/pass(word)?=/i"; '
                      'flow:to_server,established; sid:1001; rev:2;)')
    assert rule.msg == 'x "y"' and rule.sid == 1001 and rule.to_server and rule.established
    assert rule.contents == [(b"get /admin", True)]
    assert rule.pcre is not None and rule.pcre.search(b"PASSWORD=")
    assert rule.dport == (False, [(80, 80), (8000, 8080)])
    for bad in ('alert tcp any any -> any any (msg:"no sid";)',
                'alert tcp any any -> any any (content:"x"; depth:4; sid:1;)',
                'pass tcp any any -> any any (sid:1;)',
                'alert tcp any any => any any (sid:1;)',
                'alert icmp any 80 -> any any (sid:1;)',
                'alert tcp any any -> any any (content:"|zz|"; sid:1;)',
                'alert tcp any any -> any any (pcre:"/x/Q"; sid:1;)'):
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_content_split_across_segments_is_found_once(pair: tuple[Host, Host]) -> None:
    a, b = pair
    count = b.security.load_rules(
        '# a comment\n'
        'alert tcp any any -> any 80 (msg:"admin"; content:"/ADMIN"; nocase; '
        'flow:to_server,established; sid:1;)\n'
        'alert tcp any 80 -> any any (msg:"reply"; content:"secret"; flow:to_client; sid:2;)\n')
    assert count == 2
    client, server = _connected(a, b)
    for piece in (b"GET /ad", b"mi", b"n HTTP/1.0\r\n"):
        client.sendall(piece)
        server.recv(100)
    server.sendall(b"the secret is out")
    client.recv(100)
    client.sendall(b"nothing here")
    server.recv(100)
    events = b.security.events()
    assert [(e.kind, e.details["sid"]) for e in events] == [("ids_alert", 1), ("ids_alert", 2)]
    assert events[0].source == A_ADDR and events[0].details["msg"] == "admin"
    assert events[1].source == B_ADDR  # the server's own reply (seen at OUTPUT)


def test_retransmitted_bytes_do_not_alert_twice(pair: tuple[Host, Host]) -> None:
    from multisock.security.conntrack import Conn
    from multisock.security.flow import ACK, Flow
    from multisock.security.ids import Ids, load

    seen: list[Any] = []
    ids = Ids(load('alert tcp any any -> any any (content:"attack"; sid:5;)'),
              lambda kind, src, details: seen.append(kind))
    conn = Conn((6, b"a", b"b", 1, 2), (6, b"b", b"a", 2, 1), 6, 0.0)

    def segment(seq: int, data: bytes) -> int:
        header = bytes(13) + bytes([ACK]) + bytes(6)
        flow = Flow(6, bytes(4), bytes(4), memoryview(header + data), 40 + len(data), "")
        flow.seq, flow.flags, flow.data_offset = seq, ACK, 20
        return ids.inspect(flow, conn, 0, 2, 0.0)

    segment(1000, b"xx att")
    segment(1006, b"ack!")
    assert seen == ["ids_alert"]
    segment(1000, b"xx att")  # retransmitted: nothing new
    segment(1004, b"attack!")  # overlaps: only "k!" is new... "attack" ends in new bytes
    assert ids.counters["retransmitted_bytes"] > 0
    segment(1020, b"attack")  # after a hole: a fresh tail, still matched on its own
    assert ids.counters["stream_gaps"] == 1
    assert seen.count("ids_alert") == 2
    assert len(conn.stream[0].tail) <= len("attack") - 1  # bounded per-flow buffering


def test_drop_rule_is_an_ips_for_the_flow(pair: tuple[Host, Host]) -> None:
    a, b = pair
    b.security.load_rules('drop tcp any any -> any 80 (msg:"exploit"; '
                          'pcre:"/\\x90{8,}/"; sid:7;)')
    client, server = _connected(a, b)
    client.sendall(b"hello")
    assert server.recv(100) == b"hello"
    client.sendall(b"\x90" * 16 + b"shellcode")
    server.settimeout(0.3)
    with pytest.raises(TimeoutError):
        server.recv(100)
    client.sendall(b"more")  # the flow stays blocked
    with pytest.raises(TimeoutError):
        server.recv(100)
    assert [e.kind for e in b.security.events()] == ["ids_drop"]
    assert b.security.counters["ids_dropped"] >= 2


def test_udp_and_icmp_rules(pair: tuple[Host, Host]) -> None:
    a, b = pair
    b.security.load_rules('alert udp any any -> any 53 (msg:"dns"; content:"|07|example"; '
                          'sid:10;)\nalert icmp any any -> any any (msg:"ping"; sid:11;)')
    sock = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"\x00\x01\x07example\x03com\x00", (B_ADDR, 53))
    a.ping(B_ADDR)
    sids = [e.details["sid"] for e in b.security.events()]
    assert sids[0] == 10 and 11 in sids


def test_rules_from_a_file(pair: tuple[Host, Host], tmp_path: Any) -> None:
    path = tmp_path / "local.rules"
    path.write_text('alert tcp any any -> any any (msg:"x"; content:"x"; sid:1;)\n')
    assert pair[1].security.load_rules(str(path)) == 1
    with pytest.raises(ValueError, match="line 2"):
        pair[1].security.load_rules('alert ip any any -> any any (sid:1;)\nnonsense')
