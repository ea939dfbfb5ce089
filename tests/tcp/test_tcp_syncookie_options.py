"""SYN cookies keep window scaling, SACK and timestamps when the peer offers timestamps
(issue #15 item 9; 8 MiB at 40 ms RTT took 5.34 s through a cookie against 0.49 s).
As Linux's cookie_init_timestamp: the low 6 bits of our SYN-ACK's TSval carry the peer's
window scale and SACK-permitted; its ACK echoes them back, and the connection made from
the cookie has them. Without timestamps there is nowhere to keep them: MSS only."""

from __future__ import annotations

import pytest
from tcpnet import Wire
from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpState

FULL = "<mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>"


def _cookie_script(**config: object) -> Script:
    """A listener whose SYN queue is full (max_syn_backlog 1, one half-open connection),
    so the script's next SYN is answered with a cookie."""
    s = Script(TcpConfig(quickack_segments=0, max_syn_backlog=1, **config))  # type: ignore[arg-type]
    lst = s.listen(backlog=8)
    s.inject("S 0:0(0) win 65535 <mss 1460>", sport=20000)
    s.host.sent.clear()
    assert lst.syn_count == 1
    return s


def test_a_cookie_connection_has_the_peers_wscale_sack_and_timestamps() -> None:
    s = _cookie_script()
    s.inject(f"S 0:0(0) win 65535 {FULL}")
    hdr, _ = s.expect("S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 100,wscale 7>")
    assert s.stack.counters["syncookies_sent"] == 1
    assert hdr.ts_val is not None and hdr.ts_val & 0x3F == 7 | 0x10
    cookie_ts = hdr.ts_val
    s.inject(". 1:1(0) ack 1 win 1000 <TS val 101 ecr *>")
    child = s.accept()
    assert s.stack.counters["syncookies_recv"] == 1
    assert child.state is TcpState.ESTABLISHED
    assert child.ws_ok and child.snd_wscale == 7 and child.rcv_wscale == 7
    assert child.snd_wnd == 1000 << 7  # the ACK's window is scaled
    assert child.sack_ok and child.ts_ok and child.ts_recent == 101
    assert child.info()["snd_mss"] == 1460 - 12  # timestamps take 12 bytes of each segment
    # data out of order: the ACK carries a SACK block and our timestamp, newer than the cookie's
    s.inject("P. 101:201(100) ack 1 win 1000 <TS val 102 ecr *>")
    ack, _ = s.expect(". 1:1(0) ack 1 <TS val * ecr 101,sack 101:201>")  # (RFC 7323 §4.3)
    assert ack.ts_val is not None and 0 <= (ack.ts_val - cookie_ts) & 0xFFFFFFFF < 1 << 31
    # the peer's window arrives scaled
    s.inject(". 201:201(0) ack 1 win 2000 <TS val 103 ecr *>")
    assert child.snd_wnd == 2000 << 7


def test_cookie_without_wscale_or_sack_offered() -> None:
    s = _cookie_script()
    s.inject("S 0:0(0) win 65535 <mss 1460,TS val 100 ecr 0>")
    hdr, _ = s.expect("S. 0:0(0) ack 1 <mss 1460,TS val * ecr 100>")
    assert hdr.ts_val is not None and hdr.ts_val & 0x3F == 0xF
    s.inject(". 1:1(0) ack 1 win 1000 <TS val 101 ecr *>")
    child = s.accept()
    assert child.ts_ok and not child.ws_ok and not child.sack_ok
    assert child.snd_wscale == 0 and child.rcv_wscale == 0 and child.snd_wnd == 1000


def test_cookie_without_timestamps_keeps_the_mss_only() -> None:
    s = _cookie_script()
    s.inject("S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 7>")
    s.expect("S. 0:0(0) ack 1 <mss 1460>")
    s.inject(". 1:1(0) ack 1 win 1000")
    child = s.accept()
    assert not child.ts_ok and not child.ws_ok and not child.sack_ok
    assert child.rcv_wscale == 0 and child.snd_wnd == 1000


@pytest.mark.parametrize("disabled", ["sack", "window_scaling"])
def test_an_echo_claiming_an_option_we_do_not_do_is_refused(disabled: str) -> None:
    """Linux's cookie_timestamp_decode: an echo saying SACK or window scaling while the stack
    has them off cannot come from our SYN-ACK."""
    s = _cookie_script(**{disabled: False})
    s.inject(f"S 0:0(0) win 65535 {FULL}")
    hdr, _ = s.pop()
    assert hdr.ts_val is not None
    forged = (hdr.ts_val & ~0x3F) | 7 | 0x10
    s.inject(f". 1:1(0) ack 1 win 1000 <TS val 101 ecr {forged}>")
    s.expect("R 1:1(0)")
    assert s.stack.counters["syncookies_failed"] == 1


@pytest.mark.parametrize("wscale", [None, 0, 1, 7, 14])
@pytest.mark.parametrize("sack", [False, True])
@pytest.mark.parametrize("ts_now", [0, 5, 63, 64, 1_000_000, 0xFFFFFFFF])
def test_cookie_timestamp_round_trip(wscale: int | None, sack: bool, ts_now: int) -> None:
    from multisock.stack.tcp.isn import cookie_options, cookie_timestamp

    ts = cookie_timestamp(ts_now, wscale, sack)
    assert cookie_options(ts) == (wscale, sack)
    assert 0 <= (ts_now - ts) & 0xFFFFFFFF < 64  # never later than our clock: PAWS holds


def test_bulk_transfer_through_a_cookie_at_40_ms_rtt() -> None:
    """End to end over a 40 ms RTT wire with every connection made by a cookie: the window
    is scaled, so 8 MiB take a few round trips' worth of virtual time, not 64 KiB per RTT."""
    w = Wire(TcpConfig(max_syn_backlog=0), delay=0.02)
    client, server, _ = w.connect_pair()
    assert w.b.counters["syncookies_recv"] == 1
    assert server.ws_ok and server.sack_ok and server.ts_ok and client.snd_wscale > 0
    size = 8 << 20
    start = w.now
    sent = 0
    data = bytes(size)
    got = 0
    buf = memoryview(bytearray(1 << 20))

    def progress() -> bool:
        nonlocal sent, got
        while sent < size:
            n = server.send(data[sent : sent + (1 << 20)], w.now)
            if not n:
                break
            sent += n
        while True:
            try:
                n = client.recv_into(buf, w.now)
            except BlockingIOError:
                break
            if not n:
                break
            got += n
        return got >= size

    w.run_until(progress, limit=600.0)
    elapsed = w.now - start
    # 64 KiB per 40 ms round trip (no scaling) needs > 5 s of virtual time for 8 MiB
    assert elapsed < 2.0, elapsed
