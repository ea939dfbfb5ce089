"""Attacks end to end over the in-process network."""

from __future__ import annotations

import random
import socket
import threading

import multisock
from multisock.wire import tcp as wire


def test_syn_flood_of_50000_does_not_stop_a_legitimate_client() -> None:
    with multisock.Network(seed=12) as net:
        attacker = net.add_host("attacker", "10.0.0.1/24")
        server_host = net.add_host("server", "10.0.0.2/24")
        net.link(attacker, server_host)
        listener = server_host.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("10.0.0.2", 80))
        listener.listen(16)
        rng = random.Random(1)
        outcome: dict[str, object] = {}

        def legitimate() -> None:
            client = attacker.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.settimeout(30)
            client.connect(("10.0.0.2", 80))
            client.sendall(b"hello under fire")
            outcome["sent"] = True
            client.close()

        def flood() -> None:
            target = bytes([10, 0, 0, 2])
            for i in range(50_000):
                spoofed = bytes([10, 0, rng.randrange(1, 255), rng.randrange(3, 255)])
                syn = wire.build(rng.randrange(1024, 65535), 80, rng.getrandbits(32), 0, wire.SYN,
                                 65535, mss=1460)
                with net.driver.operation():
                    attacker.ip.now = net.driver.now()
                    attacker.ip.output(spoofed, target, 6, syn, csum_offset=16)
                if i == 25_000:
                    threading.Thread(target=legitimate, daemon=True).start()

        flood()
        conn, _ = listener.accept()
        conn.settimeout(30)
        assert conn.recv(100) == b"hello under fire"
        counters = server_host.ip.tcp.counters
        assert counters["syncookies_sent"] > 49_000
        assert outcome.get("sent") is True
        half_open = sum(1 for c in server_host.ip.tcp.conns.values() if c.state.name == "SYN_RECEIVED")
        assert half_open <= server_host.ip.tcp.config.max_syn_backlog
