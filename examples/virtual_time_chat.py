"""A keep-alive chat protocol, simulated for hours of virtual time in seconds of wall time.

A server relays lines between clients; each client pings every 15 s, talks at random
moments, and the server drops a client silent for 45 s. One link flaps now and then.
Run it: ``python examples/virtual_time_chat.py [simulated seconds] [seed]``; it prints what
happened and how fast the simulation ran. The same seed prints the same story.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

import multisock.sim as sim
from multisock.net.network import Network

PING_EVERY = 15.0
IDLE_LIMIT = 45.0


async def serve(host: Any, counters: dict[str, int]) -> asyncio.AbstractServer:
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), IDLE_LIMIT)
                if not line:
                    break
                if line == b"PING\n":
                    writer.write(b"PONG\n")
                    counters["pongs"] += 1
                else:
                    counters["relayed"] += 1
                    for other in list(writers):
                        if other is not writer:
                            other.write(line)
                await writer.drain()
        except (TimeoutError, ConnectionError):
            counters["dropped"] += 1
        finally:
            writers.discard(writer)
            writer.close()

    sock = host.socket()
    sock.bind(("10.0.0.1", 6667))
    sock.listen()
    sock.setblocking(False)
    return await asyncio.start_server(handle, sock=sock)


async def client(name: str, host: Any, until: float, counters: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        sock = host.socket()
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("10.0.0.1", 6667)), 10)
            reader, writer = await asyncio.open_connection(sock=sock)
        except (TimeoutError, OSError):
            sock.close()
            counters["connect_failures"] += 1
            await asyncio.sleep(5)
            continue
        counters["sessions"] += 1

        async def listen(reader: asyncio.StreamReader) -> None:
            while line := await reader.readline():
                counters["heard"] += 1 if line != b"PONG\n" else 0

        listener = asyncio.create_task(listen(reader))
        try:
            while loop.time() < until and not listener.done():
                await asyncio.sleep(min(PING_EVERY, random.expovariate(1 / 20)))
                if random.random() < 0.5:
                    writer.write(f"{name}: hello at {loop.time():.0f}\n".encode())
                    counters["said"] += 1
                writer.write(b"PING\n")
                await asyncio.wait_for(writer.drain(), 30)
        except (TimeoutError, ConnectionError):
            counters["client_errors"] += 1
        finally:
            listener.cancel()
            writer.close()


async def chat(net: Network, seconds: float = 10_000.0, clients: int = 3) -> dict[str, int]:
    counters = dict.fromkeys(("pongs", "relayed", "dropped", "sessions", "said", "heard",
                              "connect_failures", "client_errors"), 0)
    server_host = net.add_host("server", "10.0.0.1/24")
    switch = net.add_switch()
    net.link(server_host, switch)
    hosts = []
    for index in range(clients):
        host = net.add_host(f"c{index}", f"10.0.0.{index + 2}/24")
        link = net.link(host, switch, delay="20ms", jitter="5ms", loss=0.01)
        for start in range(1000, int(seconds), 3000):  # a 60 s outage every 3000 s
            link.down(at=start + 300 * index)
            link.up(at=start + 300 * index + 60)
        hosts.append(host)
    server = await serve(server_host, counters)
    await asyncio.gather(*(client(f"c{i}", h, seconds, counters) for i, h in enumerate(hosts)))
    await asyncio.sleep(1)  # the server's handlers see the clients' FINs and end
    server.close()
    return counters


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10_000.0
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    started = time.perf_counter()
    counters = sim.run(lambda net: chat(net, seconds), seed=seed)
    wall = time.perf_counter() - started
    print(counters)
    print(f"{seconds:g} simulated seconds in {wall:.2f} s of wall time "
          f"({seconds / wall:,.0f}x)")


if __name__ == "__main__":
    main()
