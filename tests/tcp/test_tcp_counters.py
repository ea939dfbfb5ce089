"""``TcpStack.counters``: a Counter whose per-segment counts live in int attributes.

The two counts every segment bumps (``segments_in``, ``segments_out``) are kept outside
the Counter (a dict subclass's item access goes through a Python-level slot) and folded in
when ``counters`` is read; what readers rely on must not change."""

from __future__ import annotations

from collections import Counter

from tcpnet import Wire

from multisock.stack.tcp import TcpStack


def test_segment_counts_show_in_counters() -> None:
    wire = Wire()
    assert "segments_in" not in wire.a.counters  # nothing counted yet: absent, as before
    assert "segments_out" not in dict(wire.a.counters)
    client, server, _ = wire.connect_pair()
    client.send(b"x" * 3000, wire.now)
    wire.run_until(lambda: not wire.queue)
    assert server.recv_bytes(4096, wire.now) == b"x" * 3000
    a, b = wire.a.counters, wire.b.counters
    # every segment one side sent (none lost) is one the other received
    assert a["segments_out"] == b["segments_in"] == wire.a.segments_out
    assert b["segments_out"] == a["segments_in"] == wire.b.segments_out
    assert a["segments_out"] >= 4  # SYN, ACK, data...
    assert dict(a)["segments_out"] == a["segments_out"]


def test_counters_keep_the_counter_interface() -> None:
    wire = Wire()
    wire.connect_pair()
    counters = wire.a.counters
    assert isinstance(counters, Counter)
    assert counters["never_counted"] == 0 and "never_counted" not in counters
    assert counters.most_common(1)[0][1] >= 1
    assert counters == dict(counters)
    # the other counters still count through it
    wire.a.counters["bad_segments"] += 1
    assert wire.a.counters["bad_segments"] == 1


def test_bad_segment_counted_and_not_as_input_error() -> None:
    wire = Wire()
    stack: TcpStack = wire.b
    stack.input(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), memoryview(b"\x00" * 10), 0.0)
    counters = stack.counters
    assert counters["segments_in"] == 1
    assert counters["bad_segments"] == 1 and counters["bad_shorter_than_a_header"] == 1
    assert counters["internal_errors"] == 0
