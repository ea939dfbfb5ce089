"""Fault schedules (net.at, link down/up/set/hold/release at times, swizzle) and the
keep-alive chat demo over 10,000 simulated seconds (issue 19)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path

import pytest

import multisock.sim as sim
from multisock.net.network import Network


def test_hold_queues_packets_and_release_lets_them_flow_in_order() -> None:
    def main(net: Network) -> tuple:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        link = net.link(a, b, delay="10ms")
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("10.0.0.2", 9))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(b"in flight", ("10.0.0.2", 9))  # arrives at 0.010, while held
        link.hold(at=0.005)
        link.release(at=7)
        net.at(1, tx.sendto, b"sent while held", ("10.0.0.2", 9))
        got = []
        for _ in range(2):
            got.append((rx.recv(100), net.now()))
        return got, link.stats()

    got, stats = sim.run(main)
    # the one in flight arrives at the release, the held one a link delay later
    assert got == [(b"in flight", 7.0), (b"sent while held", pytest.approx(7.01))]
    assert sum(d["held"] for d in stats.values()) == 1
    assert sum(d["lost"] + d["down_dropped"] for d in stats.values()) == 0


def test_set_and_at_run_on_the_virtual_timeline_and_errors_void_the_run() -> None:
    def main(net: Network) -> list:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        link = net.link(a, b)
        link.set(delay="1s", at=5)
        seen: list = []
        net.at("2s", lambda: seen.append(("at", net.now())))
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("10.0.0.2", 9))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for when in (1, 6):
            net.at(when, tx.sendto, b"x", ("10.0.0.2", 9))
            rx.recv(1)
            seen.append(("recv", net.now()))
        return seen

    assert sim.run(main) == [("recv", 1.0), ("at", 2.0), ("recv", 7.0)]

    def broken(net: Network) -> None:
        net.at(1, lambda: 1 / 0)
        import time

        time.sleep(2)

    with pytest.raises(sim.SimulationError, match="ZeroDivisionError"):
        sim.run(broken)


def test_swizzle_is_drawn_from_the_seed() -> None:
    def schedule(seed: int) -> list:
        net = Network(seed=seed, backend="virtual")
        hub = net.add_switch()
        for i in range(6):
            net.link(net.add_host(f"h{i}", f"10.0.0.{i + 1}/24"), hub)
        try:
            return [(t, action, net.links.index(link))
                    for t, action, link in sim.swizzle(net, start=10, interval=2)]
        finally:
            net.close()

    first = schedule(1)
    assert first == schedule(1)
    assert first != schedule(2)
    downs = [i for _, action, i in first if action == "down"]
    ups = [i for _, action, i in first if action == "up"]
    assert sorted(downs) == sorted(ups) and len(set(downs)) == len(downs) >= 1
    assert [t for t, _, _ in first] == [10 + 2 * n for n in range(len(first))]


def _chat_module():
    path = Path(__file__).resolve().parents[2] / "examples" / "virtual_time_chat.py"
    spec = importlib.util.spec_from_file_location("virtual_time_chat", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ten_thousand_seconds_of_keep_alive_chat() -> None:
    chat = _chat_module().chat
    first = sim.run(lambda net: chat(net, 10_000.0), seed=3)
    # pings every <= 15 s from three clients for 10,000 s, minus the outages
    assert first["pongs"] > 3 * 10_000 / 15 * 0.8
    # each client's link goes down for 60 s three times: the server drops the silent
    # client (45 s idle limit) and the client opens a new session after the outage
    assert first["dropped"] >= 9
    assert first["sessions"] >= 3 + 9
    assert 0 < first["relayed"] <= first["said"]
    assert first["heard"] > 0
    assert sim.run(lambda net: chat(net, 10_000.0), seed=3) == first


def test_unmodified_asyncio_streams_app_on_loopback() -> None:
    """The program knows nothing of multisock: asyncio.run, start_server, open_connection."""

    async def app() -> list[bytes]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async for line in reader:
                writer.write(b"echo " + line)
            writer.close()

        server = await asyncio.start_server(handle, "localhost", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("localhost", port)
        answers = []
        for word in (b"a\n", b"b\n"):
            writer.write(word)
            answers.append(await reader.readline())
            await asyncio.sleep(60)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return answers + [str(asyncio.get_running_loop().time()).encode()]

    def main() -> list[bytes]:
        return asyncio.run(app())

    assert sim.run(main) == [b"echo a\n", b"echo b\n", b"120.0"]
