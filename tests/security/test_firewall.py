"""The stateful firewall on virtual hosts: the contract API, matches, verdicts, counters."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.security.rules import parse_line

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def pair() -> Iterator[tuple[Host, Host]]:
    with multisock.Network(seed=5) as net:
        a = net.add_host("a", f"{A_ADDR}/24")
        b = net.add_host("b", f"{B_ADDR}/24")
        net.link(a, b)
        yield a, b


_KEPT: list[Any] = []  # listeners stay open for the test (a collected one closes)


@pytest.fixture(autouse=True)
def _kept() -> Iterator[None]:
    yield
    _KEPT.clear()


def _listen(host: Host, port: int) -> Any:
    sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", port))
    sock.listen()
    _KEPT.append(sock)
    return sock


def _connect(host: Host, addr: str, port: int, timeout: float = 0.3) -> str:
    sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((addr, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except TimeoutError:
        return "filtered"
    finally:
        sock.close()


def test_lazy_no_hooks_until_a_rule_or_a_drop_policy(pair: tuple[Host, Host]) -> None:
    _, b = pair
    fw = b.firewall
    assert b.ip.hooks is None and fw.rules()[0]["rule"] == "input policy accept"
    fw.set_policy("forward", "accept")
    assert b.ip.hooks is None
    fw.set_policy("input", "drop")
    assert b.ip.hooks is not None and b.ip.hooks.input
    fw.clear()
    assert b.ip.hooks is None
    fw.add_rule("output", "drop", proto="udp")
    assert b.ip.hooks is not None and b.ip.hooks.output and not b.ip.hooks.input
    fw.clear()
    assert b.ip.hooks is None


def test_drop_reject_and_reset_are_filtered_closed_closed(pair: tuple[Host, Host]) -> None:
    a, b = pair
    for port in (5432, 6000, 6001, 80):
        _listen(b, port)
    b.firewall.add_rule("input", "drop", proto="tcp", dport=5432)
    b.firewall.add_rule("input", "reject", proto="tcp", dport=6000)
    b.firewall.add_rule("input", "reject", proto="tcp", dport=6001, reject_with="tcp-reset")
    assert [_connect(a, B_ADDR, p) for p in (5432, 6000, 6001, 80)] == \
        ["filtered", "closed", "closed", "open"]
    rules = b.firewall.rules()
    assert [r["packets"] for r in rules[:3]] == [1, 1, 1]  # the SYN retransmit is not due yet
    assert rules[0]["bytes"] > 40 and rules[2]["reject_with"] == "tcp-reset"
    assert b.security.counters["rejects_sent"] == 2
    assert b.ip.tcp.counters.get("rst_sent", 0) == 0  # the firewall answered, not TCP


def test_stateful_policy_drop_lets_replies_in(pair: tuple[Host, Host]) -> None:
    a, b = pair
    server = _listen(b, 80)
    fw = a.firewall  # a: nothing may come in except replies to what a started
    fw.set_policy("input", "drop")
    fw.add_rule("input", "accept", state="established,related")
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((B_ADDR, 80))
    conn, _ = server.accept()
    conn.sendall(b"y" * 200000)
    got = 0
    while got < 200000:
        got += len(client.recv(65536))
    with pytest.raises(TimeoutError):
        b.ping(A_ADDR, timeout=0.2)  # new from b: dropped
    assert a.ping(B_ADDR) < 1.0  # a's own ping: the reply is ESTABLISHED
    _listen(a, 81)
    assert _connect(b, A_ADDR, 81) == "filtered"
    rows = fw.rules()
    assert rows[0]["packets"] > 3 and rows[1]["rule"] == "input policy drop"
    assert rows[1]["packets"] == 2  # b's echo request and b's SYN


def test_output_drop_is_eperm(pair: tuple[Host, Host]) -> None:
    a, _ = pair
    a.firewall.add_rule("output", "drop", proto="udp", dport=53)
    sock = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(PermissionError) as info:
        sock.sendto(b"q", (B_ADDR, 53))
    assert info.value.errno == errno.EPERM
    sock.sendto(b"q", (B_ADDR, 54))


def test_matches_cidr_ranges_flags_icmp_and_interface(pair: tuple[Host, Host]) -> None:
    a, b = pair
    fw = b.firewall
    fw.add_rule("input", "drop", proto="tcp", dport="7000-7010", src="10.0.0.0/30")
    fw.add_rule("input", "drop", proto="tcp", dport="7100,7200", src="!10.0.0.0/30")
    fw.add_rule("input", "drop", proto="icmp", icmp_type="echo-request", iface="eth0")
    for port in (7005, 7011, 7100):
        _listen(b, port)
    assert _connect(a, B_ADDR, 7005) == "filtered"
    assert _connect(a, B_ADDR, 7011) == "open"
    assert _connect(a, B_ADDR, 7100) == "open"  # the source is inside 10.0.0.0/30
    with pytest.raises(TimeoutError):
        a.ping(B_ADDR, timeout=0.2)
    assert b.ping("127.0.0.1") < 1.0  # over lo: another interface
    fw.clear()
    fw.add_rule("input", "drop", proto="tcp", flags="syn,!ack", dport=7011)
    assert _connect(a, B_ADDR, 7011) == "filtered"


def test_log_goes_on_and_records_an_event(pair: tuple[Host, Host]) -> None:
    a, b = pair
    _listen(b, 22)
    b.firewall.add_rule("input", "log", proto="tcp", dport=22, prefix="ssh: ")
    assert _connect(a, B_ADDR, 22) == "open"
    events = b.security.events("firewall_log")
    assert events and events[0].details["prefix"] == "ssh: " and events[0].source == A_ADDR
    assert events[0].details["dport"] == 22


def test_limit_is_a_per_source_token_bucket(pair: tuple[Host, Host]) -> None:
    a, b = pair
    server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", 9))
    server.setblocking(False)
    fw = b.firewall
    fw.add_rule("input", "accept", proto="udp", dport=9, limit="10/s", burst=3)
    fw.add_rule("input", "drop", proto="udp", dport=9)
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(10):  # within one instant of virtual time: the burst passes
        client.sendto(b"x", (B_ADDR, 9))
    got = 0
    while True:
        try:
            server.recv(10)
            got += 1
        except BlockingIOError:
            break
    # the driver's clock moves a little while sending: at most one token refilled
    assert 3 <= got <= 4
    assert fw.rules()[1]["packets"] == 10 - got


def test_bad_rules_are_refused_with_reasons(pair: tuple[Host, Host]) -> None:
    fw = pair[1].firewall
    with pytest.raises(ValueError, match="chain"):
        fw.add_rule("prerouting", "drop")
    with pytest.raises(ValueError, match="action"):
        fw.add_rule("input", "masquerade")
    with pytest.raises(ValueError, match="needs proto"):
        fw.add_rule("input", "drop", dport=22)
    with pytest.raises(ValueError, match="address"):
        fw.add_rule("input", "drop", src="10.0.0.300/8")
    with pytest.raises(TypeError, match="unknown match"):
        fw.add_rule("input", "drop", port=22)
    with pytest.raises(ValueError):
        fw.set_policy("input", "reject")
    assert pair[1].ip.hooks is None


@pytest.mark.parametrize("line, expected", [
    ("input drop tcp dport 5432", ("input", "drop", None, {"proto": "tcp", "dport": "5432"})),
    ("input tcp dport 5432 drop", ("input", "drop", None, {"proto": "tcp", "dport": "5432"})),
    ("forward policy drop", ("forward", "drop", "drop", {})),
    ("input accept ct state established,related",
     ("input", "accept", None, {"state": "established,related"})),
    ("input reject with tcp reset tcp dport 1-1023 saddr 10.0.0.0/8",
     ("input", "reject", None, {"reject_with": "tcp-reset", "proto": "tcp",
                                "dport": "1-1023", "src": "10.0.0.0/8"})),
    ("input reject with icmp admin-prohibited udp",
     ("input", "reject", None, {"reject_with": "admin-prohibited", "proto": "udp"})),
    ("input accept tcp dport 80 limit rate 100/s burst 20",
     ("input", "accept", None, {"proto": "tcp", "dport": "80", "limit": "100/s",
                                "burst": 20})),
    ("input log prefix 'ssh in: ' tcp dport 22 iif eth0",
     ("input", "log", None, {"prefix": "ssh in: ", "proto": "tcp", "dport": "22",
                             "iface": "eth0"})),
    ("input drop icmp type echo-request",
     ("input", "drop", None, {"proto": "icmp", "icmp_type": "echo-request"})),
])
def test_text_form(line: str, expected: tuple[Any, ...]) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["", "input", "inbound drop", "input drop tcp dport",
                                  "input drop accept", "input frobnicate", "input policy reject"])
def test_text_form_errors(line: str) -> None:
    with pytest.raises(ValueError):
        parse_line(line)


def test_text_rules_apply(pair: tuple[Host, Host]) -> None:
    a, b = pair
    _listen(b, 5432)
    b.firewall.add("input drop tcp dport 5432")
    assert _connect(a, B_ADDR, 5432) == "filtered"


def test_grouped_port_runs_keep_first_match_order() -> None:
    """Single-port rules sit behind one set test; the order of first match stays."""
    from multisock.security.core import Security
    from multisock.security.flow import Flow
    from multisock.stack.ip import IPStack

    sec = Security(IPStack("x"))
    fw = sec.firewall
    fw.add_rule("input", "accept", proto="tcp", dport=22, src="10.0.0.0/8")
    for port in (22, 23, 25, 80, 443):  # a run of five
        fw.add_rule("input", "drop" if port != 80 else "accept", proto="tcp", dport=port)
    fw.add_rule("input", "accept", proto="udp", dport=53)
    chain = fw.compiled["input"]
    assert chain is not None

    def verdict(src: str, proto: int, dport: int) -> int:
        flow = Flow(proto, socket.inet_aton(src), b"\x0a\x00\x00\x02", memoryview(b""), 40, "")
        flow.dport = dport
        return chain(flow, 0, 0.0)

    assert verdict("10.1.1.1", 6, 22) == 1  # the rule before the run wins
    assert verdict("192.0.2.1", 6, 22) == 0
    assert verdict("192.0.2.1", 6, 80) == 1 and verdict("192.0.2.1", 6, 443) == 0
    assert verdict("192.0.2.1", 17, 80) == 1  # UDP 80: not the run's protocol; policy accept
    assert [r["packets"] for r in fw.rules()[:7]] == [1, 1, 0, 0, 1, 1, 0]
