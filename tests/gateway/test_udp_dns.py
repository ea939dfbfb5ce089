"""The gateway's UDP relay and DNS through it, against kernel peers on the loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from multisock.gateway.dns import parse_resolv_conf
from multisock.net.network import Network
from tests.gateway.kernel_peers import KernelSocket, kernel_udp_echo, unused_port


@pytest.fixture
def lan() -> Iterator[tuple[Network, object, object]]:
    net = Network(seed=5)
    gateway = net.add_gateway(udp_timeout=0.3)
    app = net.add_host("app")
    gateway.attach(app, loss=0.0)
    gateway.relay_loopback(app)
    yield net, gateway, app
    net.close()


@pytest.mark.parametrize(("dst", "seen_from"), [("10.0.2.2", "10.0.2.2"),
                                                ("127.0.0.1", "127.0.0.1")])
def test_udp_echo_comes_back_from_the_destination(lan, dst: str, seen_from: str) -> None:
    _, gateway, app = lan
    with kernel_udp_echo() as port:
        s = app.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(b"ping", (dst, port))
        assert s.recvfrom(100) == (b"PING", (seen_from, port))
        s.close()


def test_connected_udp_gets_econnrefused_from_the_kernels_icmp(lan) -> None:
    _, gateway, app = lan
    port = unused_port(socket.SOCK_DGRAM)
    s = app.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect(("10.0.2.2", port))
    s.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError):
        s.recv(100)
    assert gateway.udp.counters["icmp"] == 1


def test_udp_flow_idling_past_its_timeout_closes_its_kernel_socket(lan) -> None:
    _, gateway, app = lan
    with kernel_udp_echo() as port:
        s = app.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(b"a", ("10.0.2.2", port))
        assert s.recv(10) == b"A"
        assert len(gateway.udp.flows) == 1
        for _ in range(100):  # timeout 0.3 s: expired within a few multiples of it
            if not gateway.udp.flows:
                break
            threading.Event().wait(0.05)
        assert gateway.udp.flows == {}
        assert gateway.udp.counters["expired"] == 1
        s.sendto(b"b", ("10.0.2.2", port))  # the next datagram opens a new flow
        assert s.recv(10) == b"B"
        assert gateway.udp.counters["flows"] == 2


def test_dns_through_the_gateway_to_a_kernel_dnslib_server(lan) -> None:
    dnslib_server = pytest.importorskip("dnslib.server", reason="dnslib not installed")
    import dnslib

    from multisock.resolver import StubResolver

    class Resolver:
        def resolve(self, request: dnslib.DNSRecord, handler: object) -> dnslib.DNSRecord:
            reply = request.reply()
            reply.add_answer(*dnslib.RR.fromZone("db.example.test. 60 A 192.0.2.44"))
            return reply

    port = unused_port(socket.SOCK_DGRAM)
    server = dnslib_server.DNSServer(Resolver(), port=port, address="127.0.0.1")
    server.start_thread()
    _, gateway, app = lan
    try:
        # the kernel's loopback as seen from the LAN: the datagrams cross the gateway
        resolver = StubResolver([("10.0.2.2", port)], timeout=2.0,
                                socket_factory=lambda fam, typ: app.socket(fam, typ))
        answer = resolver.resolve("db.example.test", socket.AF_INET)
        assert "192.0.2.44" in str(answer)
        assert gateway.udp.counters["out"] >= 1
    finally:
        server.stop()


def test_resolv_conf_is_read_like_glibc() -> None:
    conf = parse_resolv_conf(
        "# comment\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n"
        "search a.example b.example.\noptions ndots:2 timeout:3 attempts:9 edns0\n"
        "nameserver 10.0.0.1\nnameserver 10.0.0.2\n")
    assert conf.nameservers == [("127.0.0.53", 53), ("fe80::1", 53), ("10.0.0.1", 53)]
    assert conf.search == ["a.example", "b.example"]
    assert (conf.ndots, conf.timeout, conf.attempts) == (2, 3.0, 5)
    assert parse_resolv_conf("").nameservers == [("127.0.0.1", 53)]


def test_published_udp_port_reaches_a_virtual_server(lan) -> None:
    _, gateway, app = lan
    server = app.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 5353))
    (publisher,) = gateway.publish(0, app, 5353, "udp", host_ip="127.0.0.1")

    def echo() -> None:
        data, addr = server.recvfrom(100)
        server.sendto(data[::-1], addr)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    client = KernelSocket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.sendto(b"abc", ("127.0.0.1", publisher.port))
    assert client.recvfrom(10) == (b"cba", ("127.0.0.1", publisher.port))
    client.close()
    thread.join(5)
