"""Option negotiation: MSS from the route, window scaling, timestamps + PAWS, SACK."""

from __future__ import annotations

import pytest
from tcpscript import Script

from multisock.stack.tcp import TcpConfig


@pytest.mark.parametrize(("mtu", "mss"), [(1500, 1460), (9000, 8960), (65535, 65495), (576, 536)])
def test_mss_comes_from_the_route_mtu(mtu: int, mss: int) -> None:
    s = Script(mtu=mtu)
    s.connect()
    hdr, _ = s.pop()
    assert hdr.mss == mss


def test_maxseg_caps_the_advertised_and_used_mss() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1460>", maxseg=1000)
    assert sock.info()["advmss"] == 1000 and sock.info()["snd_mss"] == 1000


def test_peer_without_mss_option_gets_the_rfc_default() -> None:
    s = Script()
    sock = s.active_open(synack_opts="")
    assert sock.info()["snd_mss"] == 536


def test_window_scale_from_receive_buffer() -> None:
    s = Script()
    s.connect(rcvbuf=60000)
    hdr, _ = s.pop()
    assert hdr.wscale == 0
    s2 = Script()
    s2.connect()
    hdr, _ = s2.pop()
    assert hdr.wscale == 7 and hdr.window == 65535  # SYN windows are never scaled


def test_scaled_windows_both_ways() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1460,nop,wscale 3>")
    assert sock.info()["snd_wnd"] == 65535  # the SYN-ACK's window is not scaled
    s.inject(". 1:1(0) ack 1 win 1000")
    assert sock.info()["snd_wnd"] == 8000
    sock.send(b"x" * 10, s.now)
    hdr, _ = s.expect("P. 1:11(10) ack 1")
    assert hdr.window == (4 * 1024 * 1024) >> 7 == 32768


def test_no_window_scaling_when_the_peer_does_not_offer_it() -> None:
    s = Script()
    s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460>")
    s.expect("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    s.inject(". 1:1(0) ack 1 win 30000")
    sock = s.accept()
    assert sock.info()["snd_wnd"] == 30000 and sock.info()["rcv_wscale"] == 0


def test_timestamps_negotiated_and_echoed() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1460,TS val 5000 ecr *>")
    assert sock.info()["options"]["timestamps"]
    assert sock.info()["snd_mss"] == 1448  # 12 bytes of every segment are the option
    s.inject(". 1:1(0) ack 1 win 65535 <TS val 5007 ecr *>")
    sock.send(b"abc", s.now)
    hdr, _ = s.expect("P. 1:4(3) ack 1")
    assert hdr.ts_ecr == 5007


def test_timestamp_rtt_measurement() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1460,TS val 1 ecr *>")
    sock.send(b"abc", s.now)
    s.expect("P. 1:4(3) ack 1")
    s.advance(0.050)
    s.inject(". 1:1(0) ack 4 win 65535 <TS val 2 ecr *>")
    info = sock.info()
    assert info["last_rtt"] == pytest.approx(0.050, abs=0.002)
    # RFC 6298: the handshake gave the first sample (0 s here), this one weighs 1/8
    assert info["rtt"] == pytest.approx(0.050 / 8, abs=0.001)


def test_paws_drops_old_timestamps() -> None:
    s = Script()
    sock = s.active_open(synack_opts="<mss 1460,TS val 1000 ecr *>")
    s.inject("P. 1:6(5) ack 1 win 65535 <TS val 1010 ecr *>")
    assert sock.readable_bytes == 5
    s.host.sent.clear()
    s.inject("P. 6:11(5) ack 1 win 65535 <TS val 900 ecr *>")  # older than ts_recent
    assert sock.readable_bytes == 5
    assert s.stack.counters["paws_dropped"] == 1
    s.expect(". 1:1(0) ack 6")


def test_sack_permitted_only_when_both_offer() -> None:
    s = Script(TcpConfig(sack=False, quickack_segments=0))
    s.listen()
    s.inject("S 0:0(0) win 65535 <mss 1460,sackOK>")
    s.expect("S. 0:0(0) ack 1 win 65535 <mss 1460>")
    s2 = Script()
    s2.listen()
    s2.inject("S 0:0(0) win 65535 <mss 1460,sackOK>")
    s2.expect("S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>")


def test_sack_blocks_for_out_of_order_data() -> None:
    s = Script()
    sock = s.passive_open(syn_opts="<mss 1460,sackOK>")
    s.inject("P. 101:201(100) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1 <sack 101:201>")
    s.inject("P. 301:401(100) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1 <sack 301:401 101:201>")
    s.inject("P. 1:101(100) ack 1 win 65535")  # fills the first hole
    s.expect(". 1:1(0) ack 201 <sack 301:401>")
    assert sock.readable_bytes == 200


def test_dsack_reports_a_duplicate() -> None:
    s = Script()
    sock = s.passive_open(syn_opts="<mss 1460,sackOK>")
    sock.quickack = True
    s.inject("P. 1:101(100) ack 1 win 65535")
    s.expect(". 1:1(0) ack 101")
    s.inject("P. 1:101(100) ack 1 win 65535")
    s.expect(". 1:1(0) ack 101 <sack 1:101>")


def test_no_sack_blocks_without_permission() -> None:
    s = Script()
    s.passive_open()
    s.inject("P. 101:201(100) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1 <>")


def test_first_sack_block_is_the_most_recent_arrival() -> None:
    s = Script()
    s.passive_open(syn_opts="<mss 1460,sackOK>")
    s.inject("P. 301:401(100) ack 1 win 65535")
    s.expect(". 1:1(0) ack 1 <sack 301:401>")
    s.inject("P. 101:201(100) ack 1 win 65535")  # lower, but newer: reported first
    s.expect(". 1:1(0) ack 1 <sack 101:201 301:401>")
    s.inject("P. 501:601(100) ack 1 win 65535")
    # then the most recently reported ones, newest first (RFC 2018 §4; Linux's
    # tcp_sack_new_ofo_skb puts each new block in front of the others)
    s.expect(". 1:1(0) ack 1 <sack 501:601 101:201 301:401>")
    s.inject("P. 201:251(50) ack 1 win 65535")  # extends 101:201, which comes first again
    s.expect(". 1:1(0) ack 1 <sack 101:251 501:601 301:401>")
