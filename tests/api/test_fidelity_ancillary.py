"""Ancillary data on INET datagram sockets, side by side with the kernel.

recvmsg with IP_PKTINFO / IPV6_RECVPKTINFO (first, as Linux orders them), IP_RECVTTL /
IPV6_RECVHOPLIMIT, IP_RECVTOS / IPV6_RECVTCLASS, with a short control buffer (MSG_CTRUNC);
sendmsg with IP_PKTINFO / IPV6_PKTINFO choosing the source address, and Linux's errors.
The kernel side runs in a network namespace of the test's own (loopback only), where the
errors of a foreign source address do not depend on the machine's routes. Then the use
DNS servers make of it: answer from the address the query was sent to.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import sys
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host

PROBE = '''
import socket, struct
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
def probe(mod):
    out = []
    def attempt(f):
        try: return f()
        except OSError as e: return (type(e).__name__, e.errno)
    for fam, addr in ((mod.AF_INET, "127.0.0.1"), (mod.AF_INET6, "::1")):
        rx = mod.socket(fam, mod.SOCK_DGRAM); rx.bind((addr, 0)); rx.settimeout(2)
        tx = mod.socket(fam, mod.SOCK_DGRAM); tx.bind((addr, 0))
        if fam == mod.AF_INET:
            opts = [(mod.IPPROTO_IP, IP_PKTINFO), (mod.IPPROTO_IP, IP_RECVTTL), (mod.IPPROTO_IP, mod.IP_RECVTOS)]
        else:
            opts = [(mod.IPPROTO_IPV6, mod.IPV6_RECVPKTINFO), (mod.IPPROTO_IPV6, mod.IPV6_RECVHOPLIMIT), (mod.IPPROTO_IPV6, mod.IPV6_RECVTCLASS)]
        for lvl, o in opts:
            rx.setsockopt(lvl, o, 1)
            out.append(rx.getsockopt(lvl, o))
        tx.sendto(b"a", rx.getsockname())
        data, anc, flags, src = rx.recvmsg(10, 1024)
        out.append((data, anc, flags))
        data, anc, flags, src = (lambda r: r)(tx.sendto(b"b", rx.getsockname()) and rx.recvmsg(10, 30))
        out.append((data, anc, flags))
        if fam == mod.AF_INET:
            for spec in ("127.0.0.2", "127.0.0.1", "10.99.0.1", "0.0.0.0"):
                info = struct.pack("=i4s4s", 0, socket.inet_aton(spec), bytes(4))
                u = mod.socket(fam, mod.SOCK_DGRAM)
                r = attempt(lambda: u.sendmsg([b"c"], [(mod.IPPROTO_IP, IP_PKTINFO, info)], 0, rx.getsockname()))
                out.append(r)
                if r == 1:
                    d, anc, fl, src = rx.recvmsg(10, 1024); out.append((d, src[0], anc[0]))
                u.close()
            out.append(attempt(lambda: tx.sendmsg([b"c"], [(mod.IPPROTO_IP, IP_PKTINFO, b"short")], 0, rx.getsockname())))
            info = struct.pack("=i4s4s", 77, bytes(4), bytes(4))
            out.append(attempt(lambda: tx.sendmsg([b"c"], [(mod.IPPROTO_IP, IP_PKTINFO, info)], 0, rx.getsockname())))
        else:
            for spec in ("::1", "fd99::1", "::"):
                info = socket.inet_pton(mod.AF_INET6, spec) + struct.pack("=I", 0)
                u = mod.socket(fam, mod.SOCK_DGRAM)
                r = attempt(lambda: u.sendmsg([b"c"], [(mod.IPPROTO_IPV6, mod.IPV6_PKTINFO, info)], 0, rx.getsockname()))
                out.append(r)
                if r == 1:
                    d, anc, fl, src = rx.recvmsg(10, 1024); out.append((d, src[0], anc[0]))
                u.close()
        rx.close(); tx.close()
    return out
'''


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the kernel side runs in a network namespace (root for ip netns); not root here"
    if shutil.which("ip") is None:
        return "the kernel side needs iproute2's 'ip' command, not installed here"
    return None


@pytest.mark.skipif(_netns_unavailable() is not None, reason=str(_netns_unavailable()))
def test_same_as_kernel() -> None:
    from tests.tun.netns import namespace

    with namespace() as ns:
        done = ns.run(sys.executable, "-c", PROBE + "\nprint(repr(probe(socket)))\n")
    expected = eval(done.stdout)  # noqa: S307 - our own probe's repr of tuples and bytes
    scope: dict[str, Any] = {}
    exec(PROBE, scope)
    with multisock.Network(seed=12) as net, use_host(net.add_host("solo")):
        got = scope["probe"](msock)
    assert ("OSError", 19) in expected  # the probe reaches the error cases
    assert got == expected


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def test_server_answers_from_the_address_asked() -> None:
    """A wildcard-bound server on a host with two addresses replies from the one each query
    went to (what DNS servers do with IP_PKTINFO); the spec_dst of a broadcast query is the
    interface's address."""
    with multisock.Network(seed=13) as net:
        sw = net.add_switch()
        server_host = net.add_host("srv", "10.50.0.1/24", "10.50.0.53/24")
        client_host = net.add_host("cli", "10.50.0.9/24")
        net.link(server_host, sw)
        net.link(client_host, sw)
        server = server_host.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("0.0.0.0", 53))
        server.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        server.settimeout(1)
        client = client_host.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        client.settimeout(1)
        eth0 = server_host.ip.interface("eth0").index
        for asked in ("10.50.0.53", "10.50.0.1", "10.50.0.255"):
            client.sendto(b"query", (asked, 53))
            data, anc, _flags, peer = server.recvmsg(512, 256)
            [(level, kind, info)] = anc
            ifindex, spec_dst, dst = struct.unpack("=i4s4s", info)
            assert (level, kind, ifindex) == (socket.IPPROTO_IP, IP_PKTINFO, eth0)
            assert socket.inet_ntoa(dst) == asked
            expect_src = "10.50.0.1" if asked.endswith("255") else asked
            assert socket.inet_ntoa(spec_dst) == expect_src
            reply_info = struct.pack("=i4s4s", 0, spec_dst, bytes(4))
            server.sendmsg([b"answer"], [(socket.IPPROTO_IP, IP_PKTINFO, reply_info)], 0, peer)
            answer, source = client.recvfrom(512)
            assert (answer, source) == (b"answer", (expect_src, 53))
        server.close()
        client.close()
