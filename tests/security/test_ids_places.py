"""IDS content modifiers offset/depth/distance/within (Snort/Suricata semantics), on
datagrams and on a TCP stream split into segments."""

from __future__ import annotations

from typing import Any

import pytest

from multisock.security.conntrack import Conn
from multisock.security.flow import ACK, Flow
from multisock.security.ids import Ids, load

YMSG = b"YMSG\x00\x0f\x00\x00\x00U\x00K\x00\x00\x00\x16\xdcR\xa5\x1549\xc0\x80TYPING\xc0\x80"


def _ids(rule: str) -> tuple[Ids, list[Any]]:
    seen: list[Any] = []
    return Ids(load(rule), lambda kind, src, details: seen.append(details["sid"])), seen


def _udp(ids: Ids, data: bytes) -> None:
    flow = Flow(17, bytes(4), bytes(4), memoryview(bytes(8) + data), 28 + len(data), "")
    flow.data_offset = 8
    ids.inspect(flow, None, 0, 0, 0.0)


@pytest.mark.parametrize("options", [
    'content:"YMSG"; content:"TYPING"; distance:20; within:6;',
    'content:"YMSG"; content:"TYPING"; offset:24; depth:6;',
    'content:"YMSG"; depth:4; content:"TYPING"; distance:0;',
])
def test_the_snort_examples_match(options: str) -> None:
    """A Sourcefire VRT example: these rules are equivalent on this Yahoo! Messenger packet."""
    ids, seen = _ids(f"alert udp any any -> any any ({options} sid:1;)")
    _udp(ids, YMSG)
    assert seen == [1]


@pytest.mark.parametrize(("data", "alerts"), [
    (b"GET /hello1234world", True),  # 4 bytes between: distance 4, within 5
    (b"GET /hello123world", False),  # too close
    (b"GET /hello12345world", False),  # too far
    (b"GET /hello12345world hello1234world", True),  # the second hello: backtracking
])
def test_distance_and_within(data: bytes, alerts: bool) -> None:
    ids, seen = _ids('alert udp any any -> any any (content:"hello"; content:"world"; '
                     'distance:4; within:5; sid:2;)')
    _udp(ids, data)
    assert bool(seen) == alerts


def test_offset_and_depth_and_negative_distance() -> None:
    ids, seen = _ids('alert udp any any -> any any (content:"ab"; offset:2; depth:3; sid:3;)')
    for data in (b"xxab", b"xxxab", b"ab", b"xxxxab"):
        _udp(ids, data)
    assert seen == [3, 3]  # at 2 and at 3, not at 0 or 4
    ids, seen = _ids('alert udp any any -> any any (content:"cd"; content:"ab"; '
                     'distance:-4; within:2; sid:4;)')
    _udp(ids, b"abcd")
    _udp(ids, b"abxcd")  # "ab" must start 4 before cd's end: at 1 here, where it is not
    assert seen == [4]


def test_bad_modifiers_are_refused() -> None:
    for options in ('depth:3; content:"a";', 'content:"abcd"; depth:2;',
                    'content:"ab"; offset:1; distance:1;', 'content:"ab"; within:x;',
                    'content:"ab"; offset:-1;', 'content:"ab"; depth:4; depth:5;'):
        with pytest.raises(ValueError):
            load(f"alert udp any any -> any any ({options} sid:9;)")


def test_on_a_tcp_stream_positions_count_from_its_first_byte() -> None:
    """depth applies to the stream, not to each segment; a relative pair split across
    segments is found, once."""
    ids, seen = _ids('alert tcp any any -> any any (content:"USER"; depth:4; sid:5;)\n'
                     'alert tcp any any -> any any (content:"PASS"; content:"secret"; '
                     'distance:1; within:7; sid:6;)')
    conn = Conn((6, b"a", b"b", 1, 2), (6, b"b", b"a", 2, 1), 6, 0.0)

    def segment(seq: int, data: bytes) -> None:
        header = bytes(13) + bytes([ACK]) + bytes(6)
        flow = Flow(6, bytes(4), bytes(4), memoryview(header + data), 40 + len(data), "")
        flow.seq, flow.flags, flow.data_offset = seq, ACK, 20
        ids.inspect(flow, conn, 0, 2, 0.0)

    segment(5000, b"US")
    segment(5002, b"ER x PA")
    segment(5009, b"SS sec")
    segment(5015, b"ret USER")  # a second USER, past the stream's first 4 bytes: no alert
    assert seen == [5, 6]
    assert ids.overlap >= len("PASS") + 1 + 6 - 1  # the pair's span stays in the tail
