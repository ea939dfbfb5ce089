"""``--stats`` and ``--pcap`` with the gateway: its counters and flows are printed, and a
relayed flow's packets are in the capture (loopback peers only)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import dpkt
import pytest

from multisock.net.network import Network
from tests.gateway.kernel_peers import kernel_server
from tests.gateway.test_run import run


def _echo_once(conn: socket.socket) -> None:
    conn.sendall(conn.recv(100) * 3)


def _tcp_ports(path: Path) -> set[int]:
    """Every TCP port seen in the capture (either end), IPv4 and IPv6."""
    ports: set[int] = set()
    with path.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
            if isinstance(ip.data, dpkt.tcp.TCP):
                ports |= {ip.data.sport, ip.data.dport}
    return ports


@pytest.mark.parametrize("dst", ["10.0.2.2", "127.0.0.1"])
def test_relayed_flow_is_in_the_capture_and_the_report(tmp_path: Path, dst: str) -> None:
    path = tmp_path / "gw.pcap"
    net = Network(seed=1)
    gateway = net.add_gateway()
    app = net.add_host("app")
    gateway.attach(app, delay=0.001)
    gateway.relay_loopback(app)
    net.capture(str(path))
    with kernel_server(_echo_once) as port:
        s = app.socket()
        s.settimeout(10)
        s.connect((dst, port))
        s.sendall(b"abc")
        got = b""
        while len(got) < 9:
            got += s.recv(100)
        assert got == b"abc" * 3
        s.close()
        rows: list[dict[str, object]] = []
        for _ in range(200):  # the kernel side's close ends the flow shortly after
            rows = [r for r in gateway.flow_rows() if r["state"] == "closed"]
            if rows:
                break
            threading.Event().wait(0.05)
    report = "\n".join(gateway.report())
    net.close()
    assert port in _tcp_ports(path)
    assert len(rows) == 1
    assert rows[0]["kernel_peer"] == ("127.0.0.1", port)
    assert (rows[0]["to_kernel"], rows[0]["to_virtual"]) == (3, 9)
    assert f"kernel=127.0.0.1:{port} to_kernel=3 to_virtual=9 closed" in report
    assert "'flows': 1" in report


def test_run_stats_and_pcap_show_the_gateway_flow(tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(
        "import socket, sys\n"
        "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=20)\n"
        "s.sendall(b'hello')\n"
        "data = b''\n"
        "while len(data) < 15:\n"
        "    data += s.recv(100)\n"
        "print(data.decode())\n"
        "s.close()\n")
    pcap = tmp_path / "run.pcap"
    with kernel_server(_echo_once) as port:
        result = run("--delay", "1ms", "--stats", "--pcap", str(pcap), str(script), str(port))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["hello" * 3]
    assert "multisock: gateway gateway:" in result.stderr
    assert f"kernel=127.0.0.1:{port} to_kernel=5 to_virtual=15" in result.stderr
    assert port in _tcp_ports(pcap)
