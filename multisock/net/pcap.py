"""A libpcap ("classic" format) writer: what Wireshark and tcpdump open.

Links carry raw IP packets, so the link type is ``LINKTYPE_RAW`` (101): no
fake Ethernet header is invented.

The capture holds packets as they would be on a wire. On trusted links the stack
leaves checksums zero (like checksum offload: the "NIC" would fill them), so the
writer fills every *zero* IPv4 header checksum and TCP/UDP/ICMP/ICMPv6 checksum in
its copy; ``tcpdump -vv`` and Wireshark then flag only what is really wrong. A
non-zero checksum is written as it is: a wrong one (a forged or corrupted packet) is
what the capture should show. This work is done here only, so the stack's hot path
costs nothing more when no capture is on.

Fragments. A fragmented datagram's transport checksum covers the whole datagram,
but sits in the first fragment: the writer holds back the fragments of a datagram
whose first fragment has a zero checksum until the last one arrives (they pass one
after another, from one ``_send``), fills the first fragment's checksum, then writes
them all in arrival order with their own timestamps. Non-first fragments carry no
transport header and are written as they are (their IPv4 header checksum filled);
non-first fragments of a datagram whose first fragment was not held are never held.
What is held is bounded (``_MAX_HELD`` datagrams, ``_MAX_HELD_BYTES``); past that,
or at ``flush()``/``close()``, held fragments are written as they are.
"""

from __future__ import annotations

import struct
import threading
from typing import IO, Any

from multisock.wire.checksum import internet_checksum, transport_checksum

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
MAGIC = 0xA1B2C3D4

Packet = bytes | bytearray | memoryview

# where each transport keeps its checksum, and the smallest header that holds it
_CSUM_FIELD = {6: (16, 20), 17: (6, 8), 1: (2, 8), 58: (2, 4)}  # TCP, UDP, ICMP, ICMPv6
_IPV6_SKIPPED = (0, 60)  # hop-by-hop and destination options: walked over
_IPV6_FRAGMENT = 44
_MAX_HELD = 16  # datagrams whose fragments are held at once
_MAX_HELD_BYTES = 1 << 20


def _fill_transport(buf: bytearray, start: int, end: int, proto: int, src: bytes, dst: bytes,
                    segment: Packet | None = None) -> None:
    """Fill the zero checksum of the transport header at ``buf[start:]`` (in place).

    ``segment`` is the whole transport message when ``buf`` holds only its start (the
    first fragment); otherwise it is ``buf[start:end]``."""
    field = _CSUM_FIELD.get(proto)
    if field is None or (proto == 1 and len(src) != 4) or (proto == 58 and len(src) != 16):
        return  # not a transport we know, or ICMP of the other IP version
    offset, minimum = field
    if end - start < minimum or buf[start + offset] or buf[start + offset + 1]:
        return
    whole = memoryview(buf)[start:end] if segment is None else segment
    if proto == 1:
        value = internet_checksum(whole)  # ICMPv4 has no pseudo header
    else:
        value = transport_checksum(src, dst, proto, whole)
        if value == 0 and proto == 17:
            value = 0xFFFF  # UDP: zero would mean "no checksum"
    buf[start + offset : start + offset + 2] = value.to_bytes(2, "big")


class _Held:
    """The fragments of one datagram, held until its first fragment's checksum is known."""

    __slots__ = ("records", "pieces", "total", "proto", "src", "dst", "first", "start", "size")

    def __init__(self, proto: int, src: bytes, dst: bytes) -> None:
        self.records: list[tuple[float, Packet]] = []
        self.pieces: dict[int, bytes] = {}  # fragment offset -> data
        self.total: int | None = None  # the datagram's length, once the last fragment came
        self.proto, self.src, self.dst = proto, src, dst
        self.first = bytearray()  # the first fragment, to fill
        self.start = 0  # its transport header's offset in ``first``
        self.size = 0

    def add(self, offset: int, data: Packet, last: bool) -> bool:
        """Record one fragment's data; False when the datagram cannot be completed."""
        if offset in self.pieces or offset + len(data) > 0xFFFF:
            return False
        self.pieces[offset] = bytes(data)
        self.size += len(data)
        if last:
            self.total = offset + len(data)
        return True

    def complete(self) -> bytes | None:
        if self.total is None or self.size != self.total:
            return None
        out = bytearray(self.total)
        covered = 0
        for offset in sorted(self.pieces):
            data = self.pieces[offset]
            if offset != covered:
                return None  # overlap or hole
            out[offset : offset + len(data)] = data
            covered += len(data)
        return bytes(out)


class _WireCopy:
    """Turns what a link carried into what the capture records (see the module docstring)."""

    def __init__(self) -> None:
        self.held: dict[tuple[Any, ...], _Held] = {}
        self.held_bytes = 0

    def process(self, packet: Packet, timestamp: float) -> list[tuple[float, Packet]]:
        version = packet[0] >> 4 if len(packet) else 0
        if version == 4:
            return self._ipv4(packet, timestamp)
        if version == 6:
            return self._ipv6(packet, timestamp)
        return [(timestamp, packet)]

    def _ipv4(self, packet: Packet, timestamp: float) -> list[tuple[float, Packet]]:
        size = len(packet)
        ihl = (packet[0] & 0x0F) * 4
        total = int.from_bytes(packet[2:4], "big") if size >= 20 else 0
        if size < 20 or ihl < 20 or total < ihl or total > size:
            return [(timestamp, packet)]  # not a whole IPv4 header and datagram: as it is
        buf = bytearray(packet)
        if not buf[10] and not buf[11]:
            buf[10:12] = internet_checksum(memoryview(buf)[:ihl]).to_bytes(2, "big")
        flags = int.from_bytes(buf[6:8], "big")
        offset, more = (flags & 0x1FFF) * 8, bool(flags & 0x2000)
        src, dst, proto = bytes(buf[12:16]), bytes(buf[16:20]), buf[9]
        if not offset and not more:
            _fill_transport(buf, ihl, total, proto, src, dst)
            return [(timestamp, buf)]
        key = (4, src, dst, proto, bytes(buf[4:6]))
        return self._fragment(key, buf, ihl, total, offset, more, proto, src, dst, timestamp)

    def _ipv6(self, packet: Packet, timestamp: float) -> list[tuple[float, Packet]]:
        size = len(packet)
        end = 40 + int.from_bytes(packet[4:6], "big") if size >= 40 else 0
        if size < 40 or end == 40 or end > size:
            return [(timestamp, packet)]
        src, dst = bytes(packet[8:24]), bytes(packet[24:40])
        proto, at = packet[6], 40
        while proto in _IPV6_SKIPPED and at + 8 <= end:
            proto, at = packet[at], at + (packet[at + 1] + 1) * 8
        if at > end:
            return [(timestamp, packet)]
        buf = bytearray(packet)
        if proto != _IPV6_FRAGMENT:
            _fill_transport(buf, at, end, proto, src, dst)  # (a routing header: left as is)
            return [(timestamp, buf)]
        if at + 8 > end:
            return [(timestamp, packet)]
        field = int.from_bytes(packet[at + 2 : at + 4], "big")
        key = (6, src, dst, bytes(packet[at + 4 : at + 8]))
        return self._fragment(key, buf, at + 8, end, field & 0xFFF8, bool(field & 1),
                              packet[at], src, dst, timestamp)

    def _fragment(self, key: tuple[Any, ...], buf: bytearray, start: int, end: int, offset: int,
                  more: bool, proto: int, src: bytes, dst: bytes, timestamp: float
                  ) -> list[tuple[float, Packet]]:
        out: list[tuple[float, Packet]] = []
        held = self.held.get(key)
        if held is None:
            field = _CSUM_FIELD.get(proto)
            if offset or not more or field is None or end - start < field[1]:
                return [(timestamp, buf)]  # nothing to fill later: write it now
            if buf[start + field[0]] or buf[start + field[0] + 1]:
                return [(timestamp, buf)]  # its checksum is there already
            if len(self.held) >= _MAX_HELD:
                out = self.release_all()
            held = self.held[key] = _Held(proto, src, dst)
            held.first, held.start = buf, start
        if not held.add(offset, memoryview(buf)[start:end], not more):
            return out + self._release(key) + [(timestamp, buf)]
        held.records.append((timestamp, buf))
        self.held_bytes += len(buf)
        if self.held_bytes > _MAX_HELD_BYTES:
            return out + self.release_all()
        whole = held.complete()
        if whole is None:
            return out
        _fill_transport(held.first, held.start, held.start + len(whole), held.proto,
                        held.src, held.dst, whole)
        return out + self._release(key)

    def _release(self, key: tuple[Any, ...]) -> list[tuple[float, Packet]]:
        held = self.held.pop(key, None)
        if held is None:
            return []
        self.held_bytes -= sum(len(p) for _, p in held.records)
        return held.records

    def release_all(self) -> list[tuple[float, Packet]]:
        """Every held fragment, as it is, in the order the datagrams began."""
        out: list[tuple[float, Packet]] = []
        for key in list(self.held):
            out += self._release(key)
        return out


class PcapWriter:
    def __init__(self, target: str | IO[bytes], linktype: int = LINKTYPE_RAW,
                 snaplen: int = 262144, *, fill_checksums: bool = True) -> None:
        self._owned = isinstance(target, str)
        # the writer owns the file for its whole life: no context manager can span that
        self._file: IO[bytes] = open(target, "wb") if isinstance(target, str) else target  # noqa: SIM115
        self.snaplen = snaplen
        self.linktype = linktype
        self._lock = threading.Lock()
        self.packets = 0
        # raw IP packets only: another link type's frames are written as given
        self._wire = _WireCopy() if fill_checksums and linktype == LINKTYPE_RAW else None
        self._file.write(_GLOBAL.pack(MAGIC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, packet: bytes | memoryview, timestamp: float) -> None:
        with self._lock:
            if self._file.closed:
                return
            if self._wire is None:
                self._record(packet, timestamp)
                return
            for when, copy in self._wire.process(packet, timestamp):
                self._record(copy, when)

    def _record(self, packet: Packet, timestamp: float) -> None:
        length = len(packet)
        caplen = min(length, self.snaplen)
        seconds = int(timestamp)
        micros = int(round((timestamp - seconds) * 1e6))
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        self._file.write(_RECORD.pack(seconds, micros, caplen, length))
        self._file.write(packet[:caplen])
        self.packets += 1

    def _release_held(self) -> None:
        if self._wire is not None:
            for when, copy in self._wire.release_all():
                self._record(copy, when)

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._release_held()
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._release_held()
            self._file.flush()
            if self._owned:
                self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
