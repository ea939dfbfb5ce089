"""Internet checksum: against a word-by-word reference, RFC 1071's example and the kernel."""

from __future__ import annotations

import os
import random
import struct
import time
from collections.abc import Callable

import pytest
import wire_captures as cap
from hypothesis import given, settings
from hypothesis import strategies as st

from multisock.wire import checksum
from multisock.wire.checksum import (
    adjust_checksum,
    fold,
    internet_checksum,
    ones_sum,
    pseudo_header_sum,
    transport_checksum,
    verify_transport_checksum,
)

ETH = cap.ETH


def reference_sum(data: bytes) -> int:
    """RFC 1071 as written: add 16-bit big-endian words, fold the carries back in."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def reference_checksum(data: bytes, initial: int = 0) -> int:
    total = reference_sum(data) + initial
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_rfc1071_example() -> None:
    # RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (with carries folded).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D


def test_empty_and_zero_buffers() -> None:
    assert ones_sum(b"") == 0
    assert ones_sum(bytes(7)) == 0
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(bytes(100)) == 0xFFFF


def test_all_ones_is_negative_zero() -> None:
    # 0xFFFF words sum to 0xFFFF (ones'-complement -0), never to +0.
    assert ones_sum(b"\xff" * 64) == 0xFFFF
    assert internet_checksum(b"\xff" * 64) == 0


def test_odd_length_pads_a_zero_byte() -> None:
    assert ones_sum(b"\x12") == 0x1200
    assert ones_sum(b"\x12\x34\x56") == 0x1234 + 0x5600
    assert internet_checksum(b"\xab\xcd\xef") == internet_checksum(b"\xab\xcd\xef\x00")


@settings(max_examples=400)
@given(st.binary(max_size=9000))
def test_ones_sum_matches_reference(data: bytes) -> None:
    assert ones_sum(data) == reference_sum(data)


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_checksum_with_initial_matches_reference(data: bytes, initial: int) -> None:
    assert internet_checksum(data, initial) == reference_checksum(data, initial)


def test_large_random_buffers_of_every_parity() -> None:
    rng = random.Random(1071)
    for size in (4095, 4096, 4097, 8191, 8192, 65535, 65536, 100_001):
        data = rng.randbytes(size)
        assert ones_sum(data) == reference_sum(data), size
    # The chunked path must not lose carries when every word is 0xFFFF.
    assert ones_sum(b"\xff" * 65536) == 0xFFFF
    assert ones_sum(b"\xff" * 65535) == reference_sum(b"\xff" * 65535)


def test_accepts_bytearray_and_memoryview() -> None:
    data = os.urandom(5001)
    expected = reference_sum(data)
    assert ones_sum(bytearray(data)) == expected
    assert ones_sum(memoryview(data)) == expected
    view = memoryview(data)[1:4998]
    assert ones_sum(view) == reference_sum(data[1:4998])


@given(st.binary(max_size=600), st.binary(max_size=600))
def test_partial_sums_combine(a: bytes, b: bytes) -> None:
    # An even-length prefix keeps word alignment, so sums of the pieces add up.
    if len(a) % 2:
        a += b"\0"
    assert fold(ones_sum(a) + ones_sum(b)) == fold(reference_sum(a + b))


@given(st.binary(min_size=2, max_size=200).filter(lambda d: any(d)))
def test_inserting_the_checksum_verifies_to_zero(data: bytes) -> None:
    message = b"\0\0" + data
    value = internet_checksum(message)
    assert internet_checksum(value.to_bytes(2, "big") + data) == 0


def test_ipv4_header_checksums_from_the_kernel() -> None:
    for name, frame in cap.ALL_FRAMES.items():
        if frame[12:14] != b"\x08\x00":
            continue
        hlen = (frame[ETH] & 0x0F) * 4
        header = frame[ETH : ETH + hlen]
        assert internet_checksum(header) == 0, name
        zeroed = header[:10] + b"\0\0" + header[12:]
        assert internet_checksum(zeroed).to_bytes(2, "big") == header[10:12], name


def test_pseudo_header_matches_kernel_partial_checksums_on_lo() -> None:
    # On lo the kernel offloads UDP checksums and leaves the folded pseudo-header
    # sum in the field: our pseudo header must produce exactly that value.
    cases = [
        (cap.UDP4, cap.LOOPBACK4, ETH + 20),
        (cap.UNREACH4_ORIGINAL, cap.LOOPBACK4, ETH + 20),
        (cap.OPTS4, cap.LOOPBACK4, ETH + 32),
        (cap.UDP6, cap.LOOPBACK6, ETH + 40),
        (cap.UNREACH6_ORIGINAL, cap.LOOPBACK6, ETH + 40),
    ]
    for frame, addr, offset in cases:
        segment = frame[offset:]
        field = int.from_bytes(segment[6:8], "big")
        assert pseudo_header_sum(addr, addr, 17, len(segment)) == field


def test_transport_checksums_computed_by_the_kernel() -> None:
    cases = [
        (cap.VETH_UDP4, cap.LINK4_A, cap.LINK4_B, ETH + 20, 6),
        (cap.VETH_UDP6, cap.LINK6_A, cap.LINK6_B, ETH + 40, 6),
        (cap.EXT6, cap.LOOPBACK6, cap.LOOPBACK6, ETH + 56, 6),
        (cap.ICMP6_ECHO_REQUEST, cap.LOOPBACK6, cap.LOOPBACK6, ETH + 40, 2),
        (
            cap.NEIGHBOR_SOLICIT,
            cap.LINK6_A,
            bytes.fromhex("ff0200000000000000000001ff000002"),
            ETH + 40,
            2,
        ),
        (cap.NEIGHBOR_ADVERT, cap.LINK6_B, cap.LINK6_A, ETH + 40, 2),
        (cap.VETH_UNREACH6, cap.LINK6_B, cap.LINK6_A, ETH + 40, 2),
    ]
    for frame, src, dst, offset, field in cases:
        segment = frame[offset:]
        proto = 17 if field == 6 else 58
        assert verify_transport_checksum(src, dst, proto, segment)
        zeroed = segment[:field] + b"\0\0" + segment[field + 2 :]
        value = transport_checksum(src, dst, proto, zeroed)
        assert value.to_bytes(2, "big") == segment[field : field + 2]
        # any single-bit corruption is caught
        broken = bytearray(segment)
        broken[-1] ^= 0x01
        assert not verify_transport_checksum(src, dst, proto, broken)


def test_fragmented_datagram_checksum_from_the_kernel() -> None:
    # The first fragment carries the UDP checksum of the whole 1544-byte datagram.
    datagram4 = cap.FRAG4_FIRST_HEADERS[ETH + 20 :] + cap.FRAG_DATA
    assert verify_transport_checksum(cap.LOOPBACK4, cap.LOOPBACK4, 17, datagram4)
    datagram6 = cap.FRAG6_FIRST_HEADERS[ETH + 48 :] + cap.FRAG_DATA
    assert verify_transport_checksum(cap.LOOPBACK6, cap.LOOPBACK6, 17, datagram6)


@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.integers(0, 255),
    st.binary(max_size=300),
)
def test_pseudo_header_v4_matches_reference(src: bytes, dst: bytes, proto: int, seg: bytes) -> None:
    pseudo = src + dst + bytes((0, proto)) + len(seg).to_bytes(2, "big")
    assert transport_checksum(src, dst, proto, seg) == reference_checksum(pseudo + seg)


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
    st.integers(0, 255),
    st.binary(max_size=300),
)
def test_pseudo_header_v6_matches_reference(src: bytes, dst: bytes, proto: int, seg: bytes) -> None:
    pseudo = src + dst + len(seg).to_bytes(4, "big") + bytes((0, 0, 0, proto))
    assert transport_checksum(src, dst, proto, seg) == reference_checksum(pseudo + seg)


def test_pseudo_header_refuses_mixed_families() -> None:
    with pytest.raises(ValueError):
        pseudo_header_sum(bytes(4), bytes(16), 17, 8)


@given(
    # a real IPv4 header starts 0x45, so its sum is never zero (the one case where
    # RFC 1624 eqn. 3 answers 0x0000 for 0xFFFF)
    st.binary(min_size=19, max_size=19).map(lambda h: b"\x45" + h[:9] + b"\0\0" + h[11:]),
    st.integers(0, 9),
    st.binary(min_size=2, max_size=2),
)
def test_adjust_checksum_equals_recomputing(header: bytes, word: int, new: bytes) -> None:
    offset = word * 2 if word not in (0, 5) else 8  # neither version/IHL nor the checksum
    original = internet_checksum(header)
    changed = header[:offset] + new + header[offset + 2 :]
    adjusted = adjust_checksum(original, header[offset : offset + 2], new)
    # Ones'-complement has two zeros: compare what a receiver checks.
    patched = changed[:10] + adjusted.to_bytes(2, "big") + changed[12:]
    assert internet_checksum(patched) == 0
    assert fold(~adjusted & 0xFFFF) == fold(~internet_checksum(changed) & 0xFFFF)


def test_adjust_checksum_ttl_decrement_on_a_kernel_header() -> None:
    header = bytearray(cap.UDP4[ETH : ETH + 20])
    old_word = bytes(header[8:10])
    old_checksum = int.from_bytes(header[10:12], "big")
    header[8] -= 1  # the TTL
    new_checksum = adjust_checksum(old_checksum, old_word, bytes(header[8:10]))
    header[10:12] = new_checksum.to_bytes(2, "big")
    assert internet_checksum(header) == 0
    assert new_checksum != old_checksum


def test_64k_checksum_is_fast() -> None:
    # The budget is "well under 1 ms"; the best of 20 runs is robust to a busy machine.
    data = os.urandom(65536)
    best = min(_timed(checksum.internet_checksum, data) for _ in range(20))
    assert best < 1_000_000, f"64 KiB checksum took {best / 1000:.0f} us"


def _timed(func: Callable[[bytes], int], data: bytes) -> int:
    start = time.perf_counter_ns()
    func(data)
    return time.perf_counter_ns() - start
