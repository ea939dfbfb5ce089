"""The TCP header codec: round trips, the fast paths, every malformed case, dpkt agreement."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multisock.wire import tcp
from multisock.wire.errors import MalformedPacket


def test_plain_header_roundtrip() -> None:
    raw = tcp.build(1234, 80, 0xDEADBEEF, 42, tcp.SYN | tcp.ACK, 65535, urgent=7)
    assert len(raw) == 20 and raw[tcp.CHECKSUM_OFFSET : tcp.CHECKSUM_OFFSET + 2] == b"\0\0"
    hdr, payload = tcp.parse(raw + b"data")
    assert (hdr.src_port, hdr.dst_port, hdr.seq, hdr.ack) == (1234, 80, 0xDEADBEEF, 42)
    assert hdr.flags == tcp.SYN | tcp.ACK and hdr.window == 65535 and hdr.urgent == 7
    assert hdr.data_offset == 20 and bytes(payload) == b"data"
    assert hdr.mss is None and hdr.wscale is None and not hdr.sack_permitted
    assert hdr.sack_blocks == [] and hdr.ts_val is None and hdr.ts_ecr is None


def test_timestamp_fast_path_layout() -> None:
    raw = tcp.build(1, 2, 3, 4, tcp.ACK, 5, ts=(100, 200))
    assert len(raw) == 32 and raw[20:24] == b"\x01\x01\x08\x0a"
    hdr, _ = tcp.parse(raw)
    assert (hdr.ts_val, hdr.ts_ecr) == (100, 200)


def test_syn_options_roundtrip() -> None:
    raw = tcp.build(1, 2, 3, 0, tcp.SYN, 65535, mss=1460, wscale=7, sack_permitted=True, ts=(9, 0))
    assert len(raw) % 4 == 0 and len(raw) <= 60
    hdr, _ = tcp.parse(raw)
    assert hdr.mss == 1460 and hdr.wscale == 7 and hdr.sack_permitted
    assert (hdr.ts_val, hdr.ts_ecr) == (9, 0)


def test_sack_blocks_roundtrip_and_limit() -> None:
    blocks = [(10, 20), (30, 40), (50, 60), (70, 80)]
    hdr, _ = tcp.parse(tcp.build(1, 2, 3, 4, tcp.ACK, 5, sack_blocks=blocks))
    assert hdr.sack_blocks == blocks
    hdr, _ = tcp.parse(tcp.build(1, 2, 3, 4, tcp.ACK, 5, sack_blocks=blocks, ts=(1, 2)))
    assert hdr.sack_blocks == blocks[:3] and hdr.ts_val == 1  # 40 bytes of options at most


def _with_options(options: bytes, payload: bytes = b"") -> bytes:
    options += b"\0" * (-len(options) % 4)
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", 1, 2, 3, 4, offset << 4, tcp.ACK, 5, 0, 0) + options + payload


def test_unknown_options_are_skipped_and_eol_ends() -> None:
    hdr, _ = tcp.parse(_with_options(b"\x1e\x04ab\x02\x04\x05\xb4"))  # kind 30, then MSS
    assert hdr.mss == 1460
    hdr, _ = tcp.parse(_with_options(b"\x00\x02\x04\x05\xb4"))  # EOL first: MSS ignored
    assert hdr.mss is None
    hdr, _ = tcp.parse(_with_options(b"\x01\x01\x01\x03\x03\x05"))
    assert hdr.wscale == 5


@pytest.mark.parametrize(
    "options",
    [
        b"\x02\x03\x05",  # MSS of length 3
        b"\x03\x04\x05\x00",  # window scale of length 4
        b"\x04\x03\x00",  # SACK-permitted of length 3
        b"\x08\x08" + b"\0" * 6,  # timestamps of length 8
        b"\x05\x06" + b"\0" * 4,  # SACK with a partial block
        b"\x1e\x01",  # length below 2
        b"\x1e\x09abc",  # length past the end
        b"\x01\x01\x01\x1e",  # length byte missing
    ],
)
def test_malformed_options(options: bytes) -> None:
    with pytest.raises(MalformedPacket) as info:
        tcp.parse(_with_options(options))
    assert info.value.layer == "tcp"


def test_malformed_offsets() -> None:
    raw = bytearray(tcp.build(1, 2, 3, 4, tcp.ACK, 5))
    with pytest.raises(MalformedPacket):
        tcp.parse(raw[:19])
    raw[12] = 4 << 4
    with pytest.raises(MalformedPacket):
        tcp.parse(raw)
    raw[12] = 6 << 4
    with pytest.raises(MalformedPacket):
        tcp.parse(raw)


@given(st.binary(max_size=80))
def test_parse_raises_only_malformed(data: bytes) -> None:
    try:
        hdr, payload = tcp.parse(data)
    except MalformedPacket:
        return
    assert hdr.data_offset + len(payload) == len(data)


@given(
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.none() | st.integers(0, 65535),
    st.none() | st.integers(0, 14),
    st.booleans(),
    st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
def test_build_parse_roundtrip(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    win: int,
    mss: int | None,
    ws: int | None,
    sack: bool,
    ts: tuple[int, int] | None,
) -> None:
    raw = tcp.build(
        sport, dport, seq, ack, flags, win, mss=mss, wscale=ws, sack_permitted=sack, ts=ts
    )
    hdr, payload = tcp.parse(raw)
    assert (hdr.src_port, hdr.dst_port, hdr.seq, hdr.ack, hdr.flags, hdr.window) == (
        sport,
        dport,
        seq,
        ack,
        flags,
        win,
    )
    assert (hdr.mss, hdr.wscale, hdr.sack_permitted) == (mss, ws, sack)
    assert (hdr.ts_val, hdr.ts_ecr) == (ts if ts else (None, None))
    assert len(payload) == 0


def test_dpkt_reads_what_we_build() -> None:
    dpkt = pytest.importorskip("dpkt", reason="dpkt is a test extra")
    raw = tcp.build(
        4000,
        80,
        1000,
        2000,
        tcp.SYN | tcp.ACK,
        29200,
        mss=1460,
        wscale=7,
        sack_permitted=True,
        ts=(5, 6),
    )
    seg = dpkt.tcp.TCP(raw + b"xyz")
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.win) == (4000, 80, 1000, 2000, 29200)
    assert seg.flags == tcp.SYN | tcp.ACK and seg.data == b"xyz"
    opts = dict(dpkt.tcp.parse_opts(seg.opts))
    assert struct.unpack("!H", opts[dpkt.tcp.TCP_OPT_MSS])[0] == 1460
    assert opts[dpkt.tcp.TCP_OPT_WSCALE] == b"\x07"
    assert struct.unpack("!II", opts[dpkt.tcp.TCP_OPT_TIMESTAMP]) == (5, 6)
    assert dpkt.tcp.TCP_OPT_SACKOK in opts


@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_twelve_option_bytes_not_the_usual_timestamp_layout(buffer_type: type) -> None:
    """12 bytes of options that are not NOP NOP TS (here TS first, then NOP NOP; then MSS
    and NOPs) take the general walk; the usual layout, with payload, the fast path."""
    header = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x80, tcp.ACK, 5, 0, 0)
    ts_first = header + b"\x08\x0a" + struct.pack("!II", 7, 8) + b"\x01\x01"
    hdr, payload = tcp.parse(buffer_type(ts_first + b"data"))
    assert (hdr.ts_val, hdr.ts_ecr, hdr.mss) == (7, 8, None) and bytes(payload) == b"data"
    mss = header + b"\x02\x04\x05\xb4" + b"\x01" * 8
    hdr, payload = tcp.parse(buffer_type(mss))
    assert (hdr.ts_val, hdr.mss) == (None, 1460) and bytes(payload) == b""
    usual = tcp.build(1, 2, 3, 4, tcp.ACK, 5, ts=(0xFFFFFFFF, 0))
    hdr, payload = tcp.parse(buffer_type(usual + b"xyz"))
    assert (hdr.ts_val, hdr.ts_ecr) == (0xFFFFFFFF, 0) and bytes(payload) == b"xyz"
    assert hdr.data_offset == 32 and hdr.seq == 3 and hdr.ack == 4
