"""Cost of the wire codecs: checksums and header parse+build, in µs per operation.

Run: ``python bench/bench_wire.py``. Each line is the min and median over
repetitions of a timed loop (``time.perf_counter_ns``), divided by the loop
count. The naive word-by-word checksum is measured too, to show what the
big-integer method buys. Takes a few seconds.
"""

from __future__ import annotations

import os
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from multisock.wire import icmpv4, ipv4, ipv6, udp  # noqa: E402
from multisock.wire.checksum import internet_checksum, transport_checksum  # noqa: E402

SRC4 = bytes((127, 0, 0, 1))
DST4 = bytes((127, 0, 0, 2))
SRC6 = bytes(15) + b"\x01"
DST6 = bytes(15) + b"\x02"


def naive_checksum(data: bytes) -> int:
    """RFC 1071 word by word in Python: the baseline the fast method is compared with."""
    if len(data) % 2:
        data += b"\0"
    total = sum(word for (word,) in struct.iter_unpack("!H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def measure(func: Callable[[], object], loops: int, reps: int = 7) -> tuple[float, float]:
    """(min, median) µs per call of ``func`` over ``reps`` timed loops of ``loops`` calls."""
    func()  # warm up
    samples = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        for _ in range(loops):
            func()
        samples.append((time.perf_counter_ns() - start) / loops / 1000)
    return min(samples), statistics.median(samples)


def cases() -> list[tuple[str, Callable[[], object], int]]:
    mtu = os.urandom(1500)
    big = os.urandom(65536)
    segment = os.urandom(1460)
    payload = os.urandom(1472)
    ip4 = ipv4.build(SRC4, DST4, ipv4.PROTO_UDP, 8 + len(payload), ident=1, df=True)
    packet4 = memoryview(ip4 + udp.build(1, 2, len(payload)) + payload)
    packet6 = memoryview(ipv6.build(SRC6, DST6, ipv6.UDP, 8 + len(payload)) + b"\0" * 8 + payload)
    datagram = memoryview(udp.build(5000, 6000, len(payload)) + payload)
    echo = icmpv4.build_echo(icmpv4.ECHO_REQUEST, 1, 1, b"x" * 56)

    def ipv4_parse_build() -> object:
        header, body = ipv4.parse(packet4)
        return ipv4.build(header.dst, header.src, header.proto, len(body), ident=header.ident)

    def ipv4_parse_build_trusted() -> object:
        header, body = ipv4.parse(packet4, verify_checksum=False)
        return ipv4.build(header.dst, header.src, header.proto, len(body), checksum=False)

    def ipv6_parse_build() -> object:
        header, body = ipv6.parse(packet6)
        return ipv6.build(header.dst, header.src, header.next_header, len(body))

    def udp_parse_build() -> object:
        header, body = udp.parse(datagram)
        return udp.build(header.dst_port, header.src_port, len(body))

    def icmp_echo_parse_reply() -> object:
        message = icmpv4.parse(echo)
        return icmpv4.build_echo(icmpv4.ECHO_REPLY, message.ident, message.seq, message.body)

    return [
        ("internet_checksum 1500 B", lambda: internet_checksum(mtu), 20000),
        ("internet_checksum 64 KiB", lambda: internet_checksum(big), 300),
        ("naive word loop 1500 B (reference)", lambda: naive_checksum(mtu), 300),
        ("naive word loop 64 KiB (reference)", lambda: naive_checksum(big), 5),
        (
            "transport_checksum 1460 B (IPv4)",
            lambda: transport_checksum(SRC4, DST4, 6, segment),
            20000,
        ),
        (
            "transport_checksum 1460 B (IPv6)",
            lambda: transport_checksum(SRC6, DST6, 6, segment),
            20000,
        ),
        ("ipv4 parse+build (checksums)", ipv4_parse_build, 20000),
        ("ipv4 parse+build (trusted link)", ipv4_parse_build_trusted, 20000),
        ("ipv6 parse+build", ipv6_parse_build, 20000),
        ("udp parse+build", udp_parse_build, 20000),
        ("icmpv4 echo parse+reply (56 B)", icmp_echo_parse_reply, 20000),
    ]


def main() -> None:
    print(f"{'operation':<40} {'min µs':>9} {'median µs':>10}")
    for name, func, loops in cases():
        low, mid = measure(func, loops)
        print(f"{name:<40} {low:>9.3f} {mid:>10.3f}")


if __name__ == "__main__":
    main()
