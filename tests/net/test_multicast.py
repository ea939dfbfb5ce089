"""Multicast for real: memberships decide which hosts hear a group.

* Side by side with the kernel (in a network namespace of the test's own, loopback only):
  the option errors, IP_MULTICAST_IF/LOOP/TTL, delivery only after a join and not after
  the drop.
* An SSDP-style responder and client over a switch: only the host that joined hears the
  M-SEARCH (the switch delivers to members), the responder answers by unicast.
* An mDNS-style IPv6 exchange on ff02::fb: the answer goes to the group, which the client
  joined.
* A router does not forward multicast.
Before, every host heard every group and membership options were no-ops.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host

SSDP = ("239.255.255.250", 1900)
MDNS6 = "ff02::fb"

PROBE = '''
import socket

def probe(mod):
    out = []
    G = "239.255.255.250"

    def mreq(g, a):
        return socket.inet_aton(g) + socket.inet_aton(a)

    rx = mod.socket(mod.AF_INET, mod.SOCK_DGRAM)
    rx.setsockopt(mod.SOL_SOCKET, mod.SO_REUSEADDR, 1)
    rx.bind(("", 0))
    port = rx.getsockname()[1]
    rx.settimeout(0.3)
    tx = mod.socket(mod.AF_INET, mod.SOCK_DGRAM)

    def attempt(f):
        try:
            return f()
        except OSError as e:
            return (type(e).__name__, e.errno)

    IP, ADD, DROP = mod.IPPROTO_IP, mod.IP_ADD_MEMBERSHIP, mod.IP_DROP_MEMBERSHIP
    out.append(attempt(lambda: tx.sendto(b"x", (G, port))))
    out.append(attempt(lambda: rx.setsockopt(IP, ADD, mreq(G, "0.0.0.0"))))
    out.append(attempt(lambda: rx.setsockopt(IP, ADD, mreq("10.0.0.1", "127.0.0.1"))))
    out.append(attempt(lambda: rx.setsockopt(IP, ADD, b"abc")))
    out.append(attempt(lambda: rx.setsockopt(IP, DROP, mreq(G, "127.0.0.1"))))
    out.append(attempt(lambda: rx.setsockopt(IP, ADD, mreq(G, "127.0.0.9"))))
    out.append(attempt(lambda: tx.setsockopt(IP, mod.IP_MULTICAST_IF, socket.inet_aton("127.0.0.9"))))
    out.append(attempt(lambda: tx.setsockopt(IP, mod.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))))
    out.append(attempt(lambda: tx.getsockopt(IP, mod.IP_MULTICAST_IF)))
    out.append(attempt(lambda: tx.sendto(b"before", (G, port))))
    out.append(attempt(lambda: rx.recv(100)))
    out.append(attempt(lambda: rx.setsockopt(IP, ADD, mreq(G, "127.0.0.1"))))
    out.append(attempt(lambda: rx.setsockopt(IP, ADD, mreq(G, "127.0.0.1"))))
    out.append(attempt(lambda: tx.sendto(b"member", (G, port))))
    out.append(attempt(lambda: rx.recvfrom(100)[1][0]))
    out.append(attempt(lambda: rx.recv(100)))
    out.append(attempt(lambda: tx.setsockopt(IP, mod.IP_MULTICAST_LOOP, 0)))
    out.append(attempt(lambda: tx.sendto(b"lo loops anyway", (G, port))))
    out.append(attempt(lambda: rx.recv(100)))
    out.append(attempt(lambda: tx.setsockopt(IP, mod.IP_MULTICAST_TTL, 256)))
    out.append(attempt(lambda: tx.setsockopt(IP, mod.IP_MULTICAST_TTL, -1)))
    out.append(attempt(lambda: tx.getsockopt(IP, mod.IP_MULTICAST_TTL)))
    out.append(attempt(lambda: tx.getsockopt(IP, mod.IP_MULTICAST_LOOP)))
    out.append(attempt(lambda: rx.setsockopt(IP, DROP, mreq(G, "127.0.0.1"))))
    out.append(attempt(lambda: rx.setsockopt(IP, DROP, mreq(G, "127.0.0.1"))))
    out.append(attempt(lambda: tx.sendto(b"after", (G, port))))
    out.append(attempt(lambda: rx.recv(100)))
    six = mod.socket(mod.AF_INET6, mod.SOCK_DGRAM)
    out.append(attempt(lambda: six.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_JOIN_GROUP, b"x" * 19)))
    out.append(attempt(lambda: six.setsockopt(
        mod.IPPROTO_IPV6, mod.IPV6_JOIN_GROUP, socket.inet_pton(mod.AF_INET6, "fd00::1") + bytes(4))))
    out.append(attempt(lambda: six.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_MULTICAST_IF, 77)))
    out.append(attempt(lambda: six.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_MULTICAST_LOOP, 2)))
    out.append(attempt(lambda: six.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_MULTICAST_HOPS, 9)))
    out.append(attempt(lambda: six.getsockopt(mod.IPPROTO_IPV6, mod.IPV6_MULTICAST_HOPS)))
    out.append(attempt(lambda: tx.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_MULTICAST_HOPS, 9)))
    for s in (rx, tx, six):
        s.close()
    return out
'''


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the kernel side runs in a network namespace (root for ip netns); not root here"
    if shutil.which("ip") is None:
        return "the kernel side needs iproute2's 'ip' command, not installed here"
    return None


@pytest.mark.skipif(_netns_unavailable() is not None, reason=str(_netns_unavailable()))
def test_options_and_delivery_same_as_kernel() -> None:
    from tests.tun.netns import namespace

    with namespace() as ns:
        done = ns.run(sys.executable, "-c", PROBE + "\nprint(repr(probe(socket)))\n")
    expected = eval(done.stdout)  # noqa: S307 - our own probe's repr of tuples and bytes
    scope: dict[str, Any] = {}
    exec(PROBE, scope)
    with multisock.Network(seed=6) as net, use_host(net.add_host("solo")):
        got = scope["probe"](msock)
    assert ("OSError", 98) in expected and b"member" not in expected  # the probe bites
    assert got == expected


def _lan(net: multisock.Network, count: int) -> tuple[Any, list[Any]]:
    sw = net.add_switch()
    hosts = [net.add_host(f"h{i}", f"10.40.0.{i}/24") for i in range(1, count + 1)]
    for h in hosts:
        net.link(h, sw)
    return sw, hosts


def _ssdp_responder(host: Any, join: bool) -> Any:
    s = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", SSDP[1]))
    if join:
        mreq = socket.inet_aton(SSDP[0]) + socket.inet_aton("0.0.0.0")
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(0.5)
    return s


def test_ssdp_search_reaches_only_members() -> None:
    with multisock.Network(seed=7) as net:
        sw, (client_host, member, bystander) = _lan(net, 3)
        for h in (client_host, member, bystander):
            h.add_route("224.0.0.0/4", dev="eth0")
        responder = _ssdp_responder(member, join=True)
        deaf = _ssdp_responder(bystander, join=False)
        client = client_host.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        client.settimeout(0.5)
        search = b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n\r\n'
        client.sendto(search, SSDP)
        data, asker = responder.recvfrom(2048)
        assert data == search and asker[0] == "10.40.0.1"
        responder.sendto(b"HTTP/1.1 200 OK\r\nLOCATION: http://10.40.0.2/\r\n\r\n", asker)
        reply, where = client.recvfrom(2048)
        assert reply.startswith(b"HTTP/1.1 200 OK") and where == ("10.40.0.2", 1900)
        with pytest.raises(TimeoutError):
            deaf.recv(2048)
        assert sw.counters["multicast_delivered"] == 1
        assert bystander.ip.interface("eth0").counters["rx_packets"] == 0  # snooped away
        # after the drop, nobody hears the next search
        mreq = socket.inet_aton(SSDP[0]) + socket.inet_aton("0.0.0.0")
        responder.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
        client.sendto(search, SSDP)
        with pytest.raises(TimeoutError):
            responder.recv(2048)
        assert sw.counters["multicast_no_member"] == 1
        # closing a socket leaves its groups
        again = _ssdp_responder(member, join=True)
        assert member.ip.interface("eth0").groups
        again.close()
        assert not member.ip.interface("eth0").groups
        for s in (responder, deaf, client):
            s.close()


def test_mdns_style_ipv6_answer_to_the_group() -> None:
    with multisock.Network(seed=8) as net:
        sw = net.add_switch()
        a = net.add_host("a", "fd40::1/64")
        b = net.add_host("b", "fd40::2/64")
        c = net.add_host("c", "fd40::3/64")
        for h in (a, b, c):
            net.link(h, sw)
        group = socket.inet_pton(socket.AF_INET6, MDNS6)

        def member(h: Any) -> Any:
            s = h.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("::", 5353))
            index = h.ip.interface("eth0").index
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                         group + index.to_bytes(4, sys.byteorder))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            s.settimeout(0.5)
            return s

        responder, querier = member(a), member(b)
        outsider = c.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        outsider.bind(("::", 5353))
        outsider.settimeout(0.3)
        querier.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        querier.sendto(b"query printer.local", (MDNS6, 5353))
        question, src = responder.recvfrom(512)
        assert question == b"query printer.local" and src[0] == "fd40::2"
        responder.sendto(b"answer printer.local", (MDNS6, 5353))
        assert querier.recv(512) == b"answer printer.local"
        # the responder's own copy comes back by loopback (IPV6_MULTICAST_LOOP is on)
        assert responder.recv(512) == b"answer printer.local"
        with pytest.raises(TimeoutError):
            outsider.recv(512)
        with pytest.raises(TimeoutError):
            querier.recv(512)  # its own query did not loop back (LOOP off)
        for s in (responder, querier, outsider):
            s.close()


def test_router_does_not_forward_multicast() -> None:
    with multisock.Network(seed=9) as net:
        a = net.add_host("a", "10.41.0.1/24")
        r = net.add_router("r", "10.41.0.254/24")
        b = net.add_host("b", "10.42.0.1/24")
        net.link(a, r)
        net.link(r, b, a_addr="10.42.0.254/24")
        a.add_route("0.0.0.0/0", via="10.41.0.254")
        b.add_route("0.0.0.0/0", via="10.42.0.254")
        rx = _ssdp_responder(b, join=True)
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
        tx.sendto(b"beyond the router?", SSDP)
        with pytest.raises(TimeoutError):
            rx.recv(100)
        assert r.ip.counters["forwarded"] == 0
        assert r.ip.interfaces[1].counters["rx_packets"] == 1  # it arrived, and stopped
        rx.close()
        tx.close()
