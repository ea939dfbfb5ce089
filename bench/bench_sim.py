"""Simulation speed (virtual time, ``multisock.sim``): how much simulated time a wall second
buys when the program mostly waits, and how many packets when it never does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import multisock.sim as sim
from multisock.net.network import Network


async def _idle(net: Network, seconds: float, clients: int) -> int:
    """``clients`` connections, each sending a 16-byte keep-alive every 30 s, answered."""
    server_host = net.add_host("server", "10.0.0.1/24")
    client_host = net.hosts["multisock"]
    client_host.add_address("10.0.0.2/24")
    net.link(client_host, server_host, delay="10ms")
    listener = server_host.socket()
    listener.bind(("10.0.0.1", 7))
    listener.listen(clients)
    listener.setblocking(False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(64):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    loop = asyncio.get_running_loop()
    answers = 0

    async def client(index: int) -> None:
        nonlocal answers
        reader, writer = await asyncio.open_connection("10.0.0.1", 7)
        await asyncio.sleep(index * 30 / clients)  # spread over the period
        while loop.time() < seconds:
            writer.write(b"keep-alive %05d\n" % index)
            await reader.readexactly(16)
            answers += 1
            await asyncio.sleep(30)
        writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    await asyncio.sleep(1)  # the handlers see the clients' FINs and end
    server.close()
    return answers


async def _busy(net: Network, messages: int) -> int:
    """One connection echoing ``messages`` 100-byte messages back to back."""
    server_host = net.add_host("server", "10.0.0.1/24")
    client_host = net.hosts["multisock"]
    client_host.add_address("10.0.0.2/24")
    link = net.link(client_host, server_host, delay="1ms")
    listener = server_host.socket()
    listener.bind(("10.0.0.1", 7))
    listener.listen()
    listener.setblocking(False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, sock=listener)
    reader, writer = await asyncio.open_connection("10.0.0.1", 7)
    for _ in range(messages):
        writer.write(b"x" * 100)
        await reader.readexactly(100)
    writer.close()
    await asyncio.sleep(1)
    server.close()
    return sum(d["offered"] for d in link.stats().values())


def idle_rate(seconds: float, clients: int = 50) -> float:
    """Simulated seconds per wall second for the idle-heavy workload."""
    started = time.perf_counter()
    sim.run(lambda net: _idle(net, seconds, clients), seed=1)
    return seconds / (time.perf_counter() - started)


def busy_rate(messages: int) -> tuple[float, dict[str, Any]]:
    """Packets per wall second (every packet through the link) for the busy workload."""
    started = time.perf_counter()
    packets = sim.run(lambda net: _busy(net, messages), seed=1)
    return packets / (time.perf_counter() - started), {"packets": packets}
