"""Regenerate the kernel captures behind ``wire_captures.py`` (not a test).

Run as root: ``unshare -n python tests/wire/capture_kernel_packets.py``. Everything
happens in the private network namespace that ``unshare -n`` creates (and a second
one for the veth peer), on loopback and link-local addresses only, so nothing can
leave the machine. Prints one ``name hex`` line per captured frame; paste the
frames into ``wire_captures.py`` by hand, splitting the hex per layer.
"""

from __future__ import annotations

import ctypes
import fcntl
import select
import socket
import struct
import subprocess
import sys
import time

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17  # set transmit checksum offload
ETH_P_ALL = 3


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def disable_tx_checksum_offload(ifname: str) -> None:
    """So that the kernel writes complete transport checksums into what we capture."""
    value = bytearray(struct.pack("II", ETHTOOL_STXCSUM, 0))
    pointer = ctypes.addressof(ctypes.c_char.from_buffer(value))
    request = struct.pack("16sP", ifname.encode(), pointer)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, request)


def sniffer(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def drain(s: socket.socket, wait: float, skip_outgoing: bool) -> list[bytes]:
    """Frames seen within ``wait`` seconds (on lo each one shows up twice: skip one)."""
    frames = []
    end = time.monotonic() + wait
    while True:
        ready, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            return frames
        data, address = s.recvfrom(70000)
        if skip_outgoing and address[2] == socket.PACKET_OUTGOING:
            continue
        frames.append(data)


def show(name: str, frames: list[bytes]) -> None:
    for i, frame in enumerate(frames):
        print(f"{name}[{i}] {frame.hex()}")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(word for (word,) in struct.iter_unpack("!H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def loopback_captures() -> None:
    sh("ip", "link", "set", "lo", "up")
    lo = sniffer("lo")
    drain(lo, 0.2, True)

    def capture(name: str) -> None:
        show(name, drain(lo, 0.3, True))

    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 40000))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 40001))
    a.sendto(b"hello multisock\n", ("127.0.0.1", 40001))
    capture("udp4")

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    request = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"abcdefgh"
    request = request[:2] + struct.pack("!H", checksum(request)) + request[4:]
    raw.sendto(request, ("127.0.0.1", 0))
    capture("icmp4")

    a.sendto(b"nobody here", ("127.0.0.1", 40009))
    capture("unreach4")

    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 40002))
    c.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes((1, 7, 11, 4)) + bytes(8))
    c.sendto(b"opts", ("127.0.0.1", 40001))
    capture("opts4")

    a6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    a6.bind(("::1", 40000))
    b6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    b6.bind(("::1", 40001))
    a6.sendto(b"hello v6\n", ("::1", 40001))
    capture("udp6")

    raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    raw6.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4321, 7) + b"ping6", ("::1", 0))
    capture("icmp6")

    a6.sendto(b"closed", ("::1", 40009))
    capture("unreach6")

    d6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    d6.bind(("::1", 40002))
    d6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, bytes((17, 0, 1, 4, 0, 0, 0, 0)))
    d6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, bytes((0, 0, 5, 2, 0, 0, 1, 0)))
    d6.sendto(b"ext", ("::1", 40001))
    capture("ext6")

    sh("ip", "link", "set", "lo", "mtu", "1280")
    drain(lo, 0.1, True)
    a6.sendto(bytes(range(256)) * 6, ("::1", 40001))
    capture("frag6")
    a.sendto(bytes(range(256)) * 6, ("127.0.0.1", 40001))
    capture("frag4")


def veth_captures() -> None:
    """ARP and neighbour discovery need a real link: a veth pair, its peer in a second
    private namespace, link-local addresses only."""
    peer = subprocess.Popen(["unshare", "-n", "sleep", "30"])
    time.sleep(0.2)

    def in_peer(*args: str) -> None:
        sh("nsenter", "-t", str(peer.pid), "-n", *args)

    try:
        sh("ip", "link", "add", "veth0", "address", "02:00:5e:00:00:01", "type", "veth",
           "peer", "name", "veth1", "address", "02:00:5e:00:00:02")  # fmt: skip
        for dev in ("veth0", "veth1"):
            disable_tx_checksum_offload(dev)
        sh("ip", "link", "set", "veth1", "netns", str(peer.pid))
        in_peer("ip", "link", "set", "lo", "up")
        in_peer("ip", "addr", "add", "169.254.7.2/24", "dev", "veth1")
        in_peer("ip", "addr", "add", "fe80::2/64", "dev", "veth1", "nodad")
        in_peer("ip", "link", "set", "veth1", "up")
        sh("ip", "addr", "add", "169.254.7.1/24", "dev", "veth0")
        sh("ip", "addr", "add", "fe80::1/64", "dev", "veth0", "nodad")
        sh("ip", "link", "set", "veth0", "up")
        time.sleep(1.0)
        veth = sniffer("veth0")
        drain(veth, 0.3, False)
        s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s4.bind(("169.254.7.1", 40000))
        s4.sendto(b"arp me", ("169.254.7.2", 40001))
        show("veth4", drain(veth, 0.5, False))
        index = socket.if_nametoindex("veth0")
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.bind(("fe80::1", 40000, 0, index))
        s6.sendto(b"ndp me", ("fe80::2", 40001, 0, index))
        show("veth6", drain(veth, 0.5, False))
    finally:
        peer.kill()
        peer.wait()


def main() -> None:
    # lo's MTU is changed below: refuse to run anywhere but in a fresh namespace,
    # recognisable by having no interface besides lo.
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        sys.exit(f"run me inside a private namespace: unshare -n python {sys.argv[0]}")
    loopback_captures()
    veth_captures()


if __name__ == "__main__":
    main()
