"""Segmentation offload done in software: one TCP segment of several MSS cut into MSS-sized ones.

Why it exists: where an interface takes whole large segments (``Interface.transmit_gso``:
a TUN device with virtio-net headers, whose kernel cuts them or delivers them whole), TCP
builds one segment of up to 64 KiB instead of forty-five, and every per-segment cost of
the stack is paid once. When such a segment must go somewhere that needs packets of the
wire's size after all - a route that moved to a link without GSO, firewall hooks, an
impaired or captured TUN link - it is cut here the way Linux's ``tcp_gso_segment`` cuts
it: each piece carries the next sequence number, PSH and FIN ride on the last piece only,
CWR on the first only, and checksum fields are left zero for whoever fills them.
"""

from __future__ import annotations

from typing import Final

from multisock.wire.checksum import internet_checksum

_SEQ_MASK: Final = 0xFFFFFFFF
_FIN: Final = 0x01
_PSH: Final = 0x08
_CWR: Final = 0x80
_PROTO_TCP: Final = 6


def tcp_pieces(
    header: bytes, payload: bytes | memoryview, size: int
) -> list[tuple[bytes, memoryview]]:
    """``header`` (a TCP header with its options) over ``payload``, as segments of at most
    ``size`` payload bytes each: (header, payload view) pairs, checksum fields zero."""
    if size <= 0:
        raise ValueError("segment size must be positive")
    view = memoryview(payload)
    total = len(view)
    seq = int.from_bytes(header[4:8], "big")
    flags = header[13]
    pieces: list[tuple[bytes, memoryview]] = []
    for offset in range(0, total, size):
        piece = bytearray(header)
        piece[4:8] = ((seq + offset) & _SEQ_MASK).to_bytes(4, "big")
        bits = flags
        if offset + size < total:
            bits &= ~(_FIN | _PSH)
        if offset:
            bits &= ~_CWR
        piece[13] = bits
        piece[16:18] = b"\0\0"
        pieces.append((bytes(piece), view[offset : offset + size]))
    return pieces


def split_packet(packet: bytes | memoryview, size: int) -> list[bytes]:
    """An IPv4 (no options needed) or IPv6 packet carrying one large TCP segment, as packets
    whose TCP payload is at most ``size`` bytes. IPv4 pieces take consecutive IDs and a
    correct header checksum; TCP checksums are zero. Anything else (not TCP, an IPv6
    extension header, a fragment, a truncated header) comes back as it is, in one piece."""
    data = bytes(packet)
    if len(data) < 20:
        return [data]
    version = data[0] >> 4
    if version == 4:
        ihl = (data[0] & 0x0F) * 4
        total = int.from_bytes(data[2:4], "big")
        if data[9] != _PROTO_TCP or (int.from_bytes(data[6:8], "big") & 0x3FFF) or total > len(data):
            return [data]
    elif version == 6 and len(data) >= 40:
        ihl = 40
        total = 40 + int.from_bytes(data[4:6], "big")
        if data[6] != _PROTO_TCP or total > len(data):
            return [data]
    else:
        return [data]
    if total < ihl + 20:
        return [data]
    thl = (data[ihl + 12] >> 4) * 4
    if thl < 20 or ihl + thl > total or total - ihl - thl <= size:
        return [data]
    ident = int.from_bytes(data[4:6], "big")
    out: list[bytes] = []
    pieces = tcp_pieces(data[ihl : ihl + thl], memoryview(data)[ihl + thl : total], size)
    for i, (tcp_header, body) in enumerate(pieces):
        ip = bytearray(data[:ihl])
        if version == 4:
            ip[2:4] = (ihl + len(tcp_header) + len(body)).to_bytes(2, "big")
            ip[4:6] = ((ident + i) & 0xFFFF).to_bytes(2, "big")
            ip[10:12] = b"\0\0"
            ip[10:12] = internet_checksum(ip).to_bytes(2, "big")
        else:
            ip[4:6] = (len(tcp_header) + len(body)).to_bytes(2, "big")
        out.append(b"".join((ip, tcp_header, body)))
    return out
