"""Plots: the pcap time-sequence data (no matplotlib needed) and the drawings (skipped,
with the reason, when matplotlib - the ``[plot]`` extra - is not installed)."""

from __future__ import annotations

import importlib.util
import socket
import threading
from pathlib import Path

import pytest

import multisock
from multisock.__main__ import main
from multisock.sim.plot import read_pcap, time_sequence

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(
    not HAVE_MATPLOTLIB, reason="matplotlib is not installed (pip install 'multisock[plot]')")


def _transfer_pcap(path: Path, size: int = 200_000) -> None:
    with multisock.Network(seed=8, mtu=1500) as net:
        a, b = net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24")
        net.link(a, b, loss="3%", delay="1ms")
        net.capture(str(path))
        server = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("10.0.0.2", 80))
        server.listen()
        got = bytearray()

        def serve() -> None:
            conn, _ = server.accept()
            while chunk := conn.recv(65536):
                got.extend(chunk)
            conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        with a.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.connect(("10.0.0.2", 80))
            client.sendall(bytes(size))
        thread.join(30)
        server.close()
        assert len(got) == size


def test_time_sequence_of_a_lossy_transfer(tmp_path: Path) -> None:
    pcap = tmp_path / "t.pcap"
    _transfer_pcap(pcap)
    directions = time_sequence(read_pcap(str(pcap)))
    data = directions["10.0.0.1:" + next(k.split(":")[1].split(" ")[0] for k in directions
                                         if k.startswith("10.0.0.1:"))
                      + " > 10.0.0.2:80"]
    assert data.highest == 200_000  # relative sequence numbers: every byte, once at least
    assert any(again for *_, again in data.data)  # 3% loss: retransmissions are marked
    assert data.acks[-1][1] == 200_001  # the last ACK covers the data and the FIN
    assert all(edge >= ack for _, ack, edge in data.acks)


@needs_matplotlib
def test_plot_command_draws_each_connection(tmp_path: Path) -> None:
    pcap = tmp_path / "t.pcap"
    _transfer_pcap(pcap, 50_000)
    assert main(["plot", str(pcap), "--out", str(tmp_path / "png")]) == 0
    pngs = list((tmp_path / "png").glob("tseq-*.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"


def test_plot_command_refuses_a_non_pcap(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pcap"
    bogus.write_bytes(b"not a capture at all, clearly")
    assert main(["plot", str(bogus)]) == 2
