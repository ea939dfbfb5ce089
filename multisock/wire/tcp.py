"""TCP header (RFC 9293) with the options we speak: MSS, window scale, SACK, timestamps.

The per-segment hot path is a 20-byte header plus, usually, only the timestamp
option (NOP NOP TS): both parse and build have a fast path for exactly that.
Unknown options are skipped; options of the wrong length are malformed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from multisock.wire.errors import MalformedPacket

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

HEADER_LEN: Final = 20
CHECKSUM_OFFSET: Final = 16

OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2
OPT_WSCALE: Final = 3
OPT_SACK_PERMITTED: Final = 4
OPT_SACK: Final = 5
OPT_TIMESTAMP: Final = 8

_HEADER: Final = struct.Struct("!HHIIBBHHH")
_HEADER_TS: Final = struct.Struct("!HHIIBBHHHBBBBII")  # header + NOP NOP TS(10)
_TS_OPT: Final = struct.Struct("!II")
# header + MSS(4) + SACK-permitted(2) + TS(10) + NOP + window scale(3): a full SYN, 40 bytes
_SYN_FULL: Final = struct.Struct("!HHIIBBHHHBBHBBBBIIBBBB")
_SYN_OPTIONS: Final = struct.Struct("!BBHBBBBIIBBBB")  # the same options alone
_SYN_KINDS: Final = (OPT_MSS, 4, OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10, OPT_NOP, OPT_WSCALE, 3)
_TS_WORD: Final = 0x0101080A  # the timestamp option's usual prefix, NOP NOP kind 8 length 10
_Fields = tuple[int, int, int, int, int, int, int, int, int]
# The per-segment struct calls, bound once (compiled code calls a bound method directly;
# ``_HEADER.pack(...)`` would look the method up on the Struct each time), their results
# typed so that compiled code takes the fields as native ints
unpack_header: Final[Callable[..., _Fields]] = _HEADER.unpack_from
_unpack_ts: Final[Callable[..., tuple[int, int, int]]] = struct.Struct("!III").unpack_from
pack_header: Final[Callable[..., bytes]] = _HEADER.pack
pack_header_ts: Final[Callable[..., bytes]] = _HEADER_TS.pack
_memoryview: Final = memoryview  # (the builtin's name is a builtins lookup at each use)
_NO_SACK: Final[list[tuple[int, int]]] = []  # shared by every header without SACK blocks


class TCPHeader:
    __slots__ = (
        "src_port",
        "dst_port",
        "seq",
        "ack",
        "data_offset",
        "flags",
        "window",
        "checksum",
        "urgent",
        "mss",
        "wscale",
        "sack_permitted",
        "sack_blocks",
        "ts_val",
        "ts_ecr",
    )

    def __init__(
        self,
        src_port: int,
        dst_port: int,
        seq: int,
        ack: int,
        data_offset: int,
        flags: int,
        window: int,
        checksum: int,
        urgent: int,
    ) -> None:
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.data_offset = data_offset
        self.flags = flags
        self.window = window
        self.checksum = checksum
        self.urgent = urgent
        self.mss: int | None = None
        self.wscale: int | None = None
        self.sack_permitted = False
        self.sack_blocks = _NO_SACK
        self.ts_val: int | None = None
        self.ts_ecr: int | None = None

    def flag_names(self) -> str:
        names = "FSRPAUEC"
        return "".join(n for i, n in enumerate(names) if self.flags & (1 << i))

    def __repr__(self) -> str:
        return (
            f"TCPHeader({self.src_port}->{self.dst_port} [{self.flag_names()}] "
            f"seq={self.seq} ack={self.ack} win={self.window})"
        )


def _parse_options(header: TCPHeader, options: memoryview) -> None:
    i, n = 0, len(options)
    if n == 20:
        # the usual SYN's options (MSS, SACK-permitted, TS, NOP, window scale: Linux's
        # layout, and ours) in one unpack; anything else takes the general walk below
        (k_mss, l_mss, mss, k_sack, l_sack, k_ts, l_ts, ts_val, ts_ecr, nop, k_ws, l_ws,
         wscale) = _SYN_OPTIONS.unpack_from(options)
        if (k_mss, l_mss, k_sack, l_sack, k_ts, l_ts, nop, k_ws, l_ws) == _SYN_KINDS:
            header.mss = mss
            header.sack_permitted = True
            header.ts_val = ts_val
            header.ts_ecr = ts_ecr
            header.wscale = wscale
            return
    while i < n:
        kind = options[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise MalformedPacket("tcp", "option length missing")
        length = options[i + 1]
        if length < 2 or i + length > n:
            raise MalformedPacket("tcp", "bad option length")
        if kind == OPT_MSS:
            if length != 4:
                raise MalformedPacket("tcp", "bad MSS option length")
            header.mss = (options[i + 2] << 8) | options[i + 3]
        elif kind == OPT_WSCALE:
            if length != 3:
                raise MalformedPacket("tcp", "bad window scale option length")
            header.wscale = options[i + 2]
        elif kind == OPT_SACK_PERMITTED:
            if length != 2:
                raise MalformedPacket("tcp", "bad SACK-permitted option length")
            header.sack_permitted = True
        elif kind == OPT_SACK:
            if (length - 2) % 8 or length < 10:
                raise MalformedPacket("tcp", "bad SACK option length")
            blocks = []
            for j in range(i + 2, i + length, 8):
                left, right = _TS_OPT.unpack_from(options, j)
                blocks.append((left, right))
            header.sack_blocks = blocks
        elif kind == OPT_TIMESTAMP:
            if length != 10:
                raise MalformedPacket("tcp", "bad timestamp option length")
            header.ts_val, header.ts_ecr = _TS_OPT.unpack_from(options, i + 2)
        i += length


def parse(buf: bytes | bytearray | memoryview) -> tuple[TCPHeader, memoryview]:
    """Header (options parsed) and payload. Raises only MalformedPacket."""
    if len(buf) < HEADER_LEN:
        raise MalformedPacket("tcp", "shorter than a header")
    sport, dport, seq, ack, off, flags, window, csum, urgent = unpack_header(buf)
    offset = (off >> 4) * 4
    if offset < HEADER_LEN:
        raise MalformedPacket("tcp", "data offset below 20")
    if offset > len(buf):
        raise MalformedPacket("tcp", "data offset beyond segment")
    header = TCPHeader(sport, dport, seq, ack, offset, flags, window, csum, urgent)
    view = buf if isinstance(buf, _memoryview) else _memoryview(buf)
    if offset > HEADER_LEN:
        if offset == 32:
            prefix, ts_val, ts_ecr = _unpack_ts(view, 20)
            if prefix == _TS_WORD:
                header.ts_val = ts_val
                header.ts_ecr = ts_ecr
                return header, view[offset:]
        _parse_options(header, view[HEADER_LEN:offset])
    return header, view[offset:]


def build(
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    *,
    mss: int | None = None,
    wscale: int | None = None,
    sack_permitted: bool = False,
    sack_blocks: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
    ts: tuple[int, int] | None = None,
    urgent: int = 0,
) -> bytes:
    """Header with options, padded to 4 bytes; checksum 0 (the IP layer fills it)."""
    if ts is not None and mss is None and wscale is None and not sack_permitted and not sack_blocks:
        return pack_header_ts(
            src_port, dst_port, seq, ack, 0x80, flags, window, 0, urgent, 1, 1, 8, 10, ts[0], ts[1]
        )
    if mss is None and wscale is None and not sack_permitted and not sack_blocks and ts is None:
        return pack_header(src_port, dst_port, seq, ack, 0x50, flags, window, 0, urgent)
    if mss is not None and wscale is not None and sack_permitted and ts is not None \
            and not sack_blocks:
        # the usual SYN (Linux's layout, as the general code below writes it): one pack
        return _SYN_FULL.pack(
            src_port, dst_port, seq, ack, 0xA0, flags, window, 0, urgent,
            OPT_MSS, 4, mss, 4, 2, 8, 10, ts[0], ts[1], OPT_NOP, OPT_WSCALE, 3, wscale,
        )
    options = bytearray()
    if mss is not None:
        options += struct.pack("!BBH", OPT_MSS, 4, mss)
    if sack_permitted:
        options += b"\x04\x02" if ts is None else b""
    if ts is not None:
        if sack_permitted:
            options += b"\x04\x02"  # SACK-permitted then timestamps, as Linux orders them
        else:
            options += b"\x01\x01"
        options += b"\x08\x0a" + _TS_OPT.pack(ts[0], ts[1])
    if wscale is not None:
        options += struct.pack("!BBBB", OPT_NOP, OPT_WSCALE, 3, wscale)
    if sack_blocks:
        blocks = list(sack_blocks)[: 4 if ts is None else 3]
        options += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks))
        for left, right in blocks:
            options += _TS_OPT.pack(left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    options += b"\x00" * (-len(options) % 4)
    if len(options) > 40:
        raise ValueError("TCP options longer than 40 bytes")
    offset = (HEADER_LEN + len(options)) // 4
    return _HEADER.pack(
        src_port, dst_port, seq, ack, offset << 4, flags, window, 0, urgent
    ) + bytes(options)
