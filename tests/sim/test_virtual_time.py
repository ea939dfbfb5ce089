"""Virtual time (issue 19): asyncio programs on the simulated clock, partitions, faults.

Every duration asserted here is *virtual* (the loop's clock), exact where the stack's
timers make it exact; wall time is never asserted.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

import multisock.sim as sim
from multisock.net.network import Network
from multisock.net.virtual_driver import EPOCH


def _pair(net: Network, delay: str = "5ms") -> tuple:
    """The program's host (10.0.0.1) linked to a server host (10.0.0.2)."""
    client = net.hosts["multisock"]
    client.add_address("10.0.0.1/24")
    server = net.add_host("server", "10.0.0.2/24")
    link = net.link(client, server, delay=delay)
    return client, server, link


async def _echo_server(host, port: int) -> asyncio.AbstractServer:
    sock = host.socket()
    sock.bind((host.addresses()[0], port))
    sock.listen()
    sock.setblocking(False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, sock=sock)


def test_sleep_call_later_and_clocks_are_virtual() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = [loop.time(), time.monotonic()]
        await asyncio.sleep(3600)
        fired: list[float] = []
        loop.call_later(2.5, lambda: fired.append(loop.time()))
        await asyncio.sleep(3)
        time.sleep(10)  # blocks the loop, in virtual time
        return seen + [loop.time(), time.monotonic(), time.perf_counter(), *fired, time.time()]

    start, mono, after, mono_after, perf, fired, wall = sim.run(main)
    assert (start, mono) == (0.0, 0.0)
    assert after == mono_after == perf == 3613.0
    assert fired == 3602.5
    assert wall == EPOCH + 3613.0


def test_partition_timeouts_are_exact_in_virtual_time() -> None:
    """A client with 30 s timeouts against a server behind a 20 s partition (t=1..21)."""

    async def main(net: Network) -> dict:
        _, server_host, link = _pair(net)
        link.down(at=1)
        link.up(at=21)
        server = await _echo_server(server_host, 7)
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("10.0.0.2", 7)
        writer.write(b"before\n")
        first = await asyncio.wait_for(reader.readline(), 30)
        first_at = loop.time()
        await asyncio.sleep(2 - loop.time())

        async def new_connection() -> tuple[str, float]:
            start = loop.time()
            try:
                await asyncio.wait_for(asyncio.open_connection("10.0.0.2", 7), 30)
            except TimeoutError:
                return "timeout", loop.time() - start
            return "connected", loop.time() - start

        async def old_connection() -> tuple[bytes, float]:
            writer.write(b"during\n")
            line = await asyncio.wait_for(reader.readline(), 30)
            return line, loop.time()

        (fate, waited), (line, answered_at) = await asyncio.gather(new_connection(),
                                                                   old_connection())
        start = loop.time()
        await asyncio.wait_for(asyncio.open_connection("10.0.0.2", 7), 30)
        reconnect = loop.time() - start
        writer.close()
        server.close()
        return {"first": first, "first_at": first_at, "fate": fate, "waited": waited,
                "line": line, "answered_at": answered_at, "reconnect": reconnect,
                "now": net.now()}

    result = sim.run(main, seed=1)
    assert result["first"] == b"BEFORE\n"
    assert result["first_at"] == pytest.approx(0.02)  # handshake + request: two round trips
    # SYNs at 2, 3, 5, 9, 17 are lost in the partition; the next would go at 33: the 30 s
    # timeout fires first, exactly
    assert (result["fate"], result["waited"]) == ("timeout", 30.0)
    # the old connection's retransmission after the heal gets through
    assert result["line"] == b"DURING\n"
    assert 21.0 < result["answered_at"] < 32.0
    assert result["reconnect"] == pytest.approx(0.01)  # one round trip on a healed link
    assert result["now"] == pytest.approx(32.01)


def test_same_seed_same_pcap_different_seed_different_fate(tmp_path) -> None:
    async def main(net: Network) -> list[int]:
        _, server_host, link = _pair(net)
        link.set(loss=0.2, jitter="2ms")
        server = await _echo_server(server_host, 7)
        reader, writer = await asyncio.open_connection("10.0.0.2", 7)
        stamps = []
        for i in range(20):
            writer.write(b"line %d\n" % i)
            await reader.readline()
            stamps.append(round(asyncio.get_running_loop().time() * 1e6))
        writer.close()
        server.close()
        return stamps

    paths = [tmp_path / f"{n}.pcap" for n in range(3)]
    a = sim.run(main, seed=7, pcap=str(paths[0]))
    b = sim.run(main, seed=7, pcap=str(paths[1]))
    c = sim.run(main, seed=8, pcap=str(paths[2]))
    assert a == b
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert a != c
    assert paths[0].read_bytes() != paths[2].read_bytes()
    assert sim.run(main, seed=7, check_determinism=True) == a


def test_random_and_urandom_follow_the_seed() -> None:
    import os
    import secrets

    def main() -> tuple:
        return random.random(), os.urandom(8), secrets.token_hex(4)

    assert sim.run(main, seed=5) == sim.run(main, seed=5)
    assert sim.run(main, seed=5) != sim.run(main, seed=6)
    state = random.getstate()
    sim.run(main, seed=5)
    assert random.getstate() == state  # the program's seeding does not leak out


def test_leaks_are_reported_with_what_they_were() -> None:
    import threading

    def starts_thread() -> None:
        threading.Thread(target=print, name="leaky").start()

    with pytest.raises(sim.NondeterminismError, match="leaky"):
        sim.run(starts_thread)

    async def real_fd() -> None:
        import os

        r, w = os.pipe()
        try:
            asyncio.get_running_loop().add_reader(r, print)
        finally:
            os.close(r)
            os.close(w)

    with pytest.raises(sim.NondeterminismError, match="real file descriptor"):
        sim.run(real_fd)


def test_nondeterminism_between_runs_is_caught() -> None:
    runs = iter([b"a", b"bb"])

    async def main() -> None:
        sock = __import__("socket").socket(__import__("socket").AF_INET,
                                           __import__("socket").SOCK_DGRAM)
        sock.sendto(next(runs), ("127.0.0.1", 9))
        sock.close()

    with pytest.raises(sim.NondeterminismError, match="packet #0 differs"):
        sim.run(main, check_determinism=True)


def test_deadlock_and_until() -> None:
    async def waits_for_ever() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(sim.SimulationDeadlock):
        sim.run(waits_for_ever)
    with pytest.raises(sim.SimulationTimeout):
        sim.run(waits_for_ever, until="60s")

    async def sleeps() -> None:
        await asyncio.sleep(100)

    with pytest.raises(sim.SimulationTimeout):
        sim.run(sleeps, until=60)
