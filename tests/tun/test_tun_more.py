"""TUN: the launcher's --tun options, impairments on the real link, a peer that resets or vanishes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.tun.netns import ROOT, namespace, unavailable_reason
from tests.tun.test_tun_basic import PEER, V4, finish, start_agent

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
SIZE = (20 if os.environ.get("MULTISOCK_FULL_TRANSFERS") == "1" else 4) * (1 << 20)

SERVER = textwrap.dedent('''
    import http.server, sys, threading, time
    body = bytes(range(256)) * (int(sys.argv[1]) // 256)
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a): pass
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
    srv = http.server.ThreadingHTTPServer(("", 8080), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("READY", flush=True)
    time.sleep(float(sys.argv[2]))
''')


@pytest.mark.parametrize("impair", [[], ["--loss", "5%", "--reorder", "2%"]], ids=["clean", "lossy"])
def test_launcher_tun_options_with_kernel_curl(tmp_path: Path, impair: list[str]) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SERVER)
    with namespace() as ns:
        proc = ns.popen(sys.executable, "-m", "multisock", "run", "--tun", "msk1", "--addr",
                        "10.78.0.2/24", "--peer", "10.78.0.1", "--seed", "5", *impair,
                        str(script), str(SIZE), "40")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", line + proc.communicate()[1]
        try:
            got = ns.run("sh", "-c", "curl -sS --max-time 90 http://10.78.0.2:8080/ | sha256sum",
                         timeout=120)
        finally:
            proc.kill()
            proc.communicate()
        expected = hashlib.sha256(bytes(range(256)) * (SIZE // 256)).hexdigest()
        assert got.stdout.split()[0] == expected, got.stderr


def test_lossy_tun_both_ways_with_agent() -> None:
    """multisock's impairments on the TUN link, both directions: the kernel recovers our losses
    (upload) and we recover its (download)."""
    opts, stack_ip, kernel_ip = V4
    with namespace() as ns:
        root = f"/tmp/msk-www-lossy-{os.getpid()}"
        os.makedirs(root, exist_ok=True)
        blob = os.urandom(SIZE)
        Path(root, "blob").write_bytes(blob)
        try:
            server = ns.popen("python3", "-m", "http.server", "8000", "--bind", "0.0.0.0",
                              "--directory", root)
            try:
                agent = start_agent(ns, "http-get", "--target", kernel_ip, "--port", "8000",
                                    "--loss", "5%", "--reorder", "2%", *opts)
                values = finish(agent)
            finally:
                server.kill()
                server.communicate()
        finally:
            os.unlink(os.path.join(root, "blob"))
            os.rmdir(root)
        assert values["SHA256"] == hashlib.sha256(blob).hexdigest()


def test_kernel_peer_resets_mid_transfer() -> None:
    opts, _stack_ip, kernel_ip = V4
    with namespace() as ns:
        peer = ns.popen(sys.executable, PEER, "reset-after", "0.0.0.0", "9300", "200000")
        agent = start_agent(ns, "reset", "--target", kernel_ip, "--port", "9300", *opts)
        assert peer.stdout is not None
        values = finish(agent)
        peer.kill()
        peer.communicate()
        assert values["OUTCOME"] == "ConnectionResetError:104"
        assert int(values["GOT"]) <= 200000


def test_kernel_peer_vanishes_etimedout() -> None:
    opts, _stack_ip, kernel_ip = V4
    with namespace() as ns:
        peer = ns.popen(sys.executable, PEER, "sink", "0.0.0.0", "9400")
        agent = start_agent(ns, "vanish", "--target", kernel_ip, "--port", "9400", *opts)
        values = finish(agent)
        peer.kill()
        peer.communicate()
        assert values["OUTCOME"] == "TimeoutError:110"
        assert float(values["SECONDS"]) < 20


def test_launcher_tun_errors() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "multisock", "run", "--addr", "10.0.0.2/24",
                             "x.py"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2 and "go with --tun" in result.stderr


def test_pcap_shows_options_negotiated_with_the_kernel_and_used(tmp_path: Path) -> None:
    import dpkt

    opts, _stack_ip, kernel_ip = V4
    pcap = tmp_path / "tun.pcap"
    with namespace() as ns:
        root = f"/tmp/msk-www-pcap-{os.getpid()}"
        os.makedirs(root, exist_ok=True)
        Path(root, "blob").write_bytes(os.urandom(1 << 20))
        try:
            server = ns.popen("python3", "-m", "http.server", "8000", "--bind", "0.0.0.0",
                              "--directory", root)
            try:
                agent = start_agent(ns, "http-get", "--target", kernel_ip, "--port", "8000",
                                    "--loss", "3%", "--pcap", str(pcap), *opts)
                finish(agent)
            finally:
                server.kill()
                server.communicate()
        finally:
            os.unlink(os.path.join(root, "blob"))
            os.rmdir(root)
    syn_options: dict[str, set[int]] = {"stack": set(), "kernel": set()}
    data_with_ts = sack_from_stack = 0
    with pcap.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            if buf[0] >> 4 != 4:
                continue  # the kernel's own IPv6 chatter on the new device (MLD, RS)
            ip = dpkt.ip.IP(buf)
            if not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            side = "stack" if ip.src == bytes([10, 77, 0, 2]) else "kernel"
            kinds = {kind for kind, _ in dpkt.tcp.parse_opts(tcp.opts)}
            if tcp.flags & dpkt.tcp.TH_SYN:
                syn_options[side] |= kinds
            elif tcp.data and dpkt.tcp.TCP_OPT_TIMESTAMP in kinds:
                data_with_ts += 1
            if side == "stack" and dpkt.tcp.TCP_OPT_SACK in kinds:
                sack_from_stack += 1
    wanted = {dpkt.tcp.TCP_OPT_MSS, dpkt.tcp.TCP_OPT_WSCALE, dpkt.tcp.TCP_OPT_SACKOK,
              dpkt.tcp.TCP_OPT_TIMESTAMP}
    assert wanted <= syn_options["stack"] and wanted <= syn_options["kernel"]
    assert data_with_ts > 100  # timestamps used on the data path
    assert sack_from_stack > 0  # we told the kernel what we hold (3 % loss on our side)
