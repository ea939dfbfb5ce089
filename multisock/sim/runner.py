"""Running a program in a simulation: ``multisock.sim.run`` and what ``run --virtual-time``
installs around a script.

A :class:`Simulation` wraps a network on the virtual-time driver and, while installed on
the calling thread, gives the program that network's sockets (``monkey.patched``), virtual
time and seeded randomness (``sim.clock``), asyncio loops on the virtual clock
(``sim.loop``), and refuses what would let the real world in: a real thread, a real fd in
the event loop, a signal handler, a subprocess (:class:`NondeterminismError`, naming it).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from multisock.net.network import Network
from multisock.net.units import parse_duration
from multisock.net.virtual_driver import (
    NondeterminismError,
    SimulationError,
    VirtualDriver,
)
from multisock.sim.clock import program_time
from multisock.sim.determinism import first_difference
from multisock.sim.loop import VirtualEventLoop, VirtualEventLoopPolicy

DEFAULT_HOST = "multisock"  # the host a program's sockets live on unless it says otherwise


class Simulation:
    """One simulated run over ``net`` (which must use the ``virtual`` backend)."""

    def __init__(self, net: Network, *, until: float | str | None = None) -> None:
        driver = net.driver
        if not isinstance(driver, VirtualDriver):
            raise ValueError("a simulation needs Network(backend='virtual')")
        self.net = net
        self.driver: VirtualDriver = driver
        if until is not None:
            driver.limit = driver.origin + parse_duration(until)

    def new_loop(self) -> VirtualEventLoop:
        return VirtualEventLoop(self.driver)

    @contextmanager
    def installed(self, host: Any = None, *, patch: bool = True) -> Iterator[None]:
        """Sockets (on ``host``, when ``patch``), time, randomness, asyncio's policy and the
        thread guard, for this thread, for the block."""
        _refuse_gevent()
        with ExitStack() as stack:
            if patch:
                from multisock import monkey

                stack.enter_context(monkey.patched(host))
            stack.enter_context(program_time(self.driver, self.net.seed))
            stack.enter_context(_threads_refused())
            stack.enter_context(_policy(VirtualEventLoopPolicy(self.driver)))
            yield

    def check_errors(self) -> None:
        """A callback on the driver (a fault action, a stack bug) raised: the run is void."""
        errors = self.driver.errors
        if errors:
            raise SimulationError(
                f"multisock.sim: {len(errors)} callback(s) raised on the driver; the first: "
                f"{errors[0]!r}") from errors[0]


def _refuse_gevent() -> None:
    from multisock.net.backends import gevent_patched

    if gevent_patched():
        raise SimulationError(
            "multisock.sim: gevent programs are not simulated yet: the hub's timers run on "
            "libev's real clock (docs/simulation.md, 'gevent')")


@contextmanager
def _threads_refused() -> Iterator[None]:
    """Starting a real thread from the simulation's thread raises, naming the thread."""
    owner = threading.get_ident()
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if threading.get_ident() == owner:
            target = getattr(thread, "_target", None)
            raise NondeterminismError(
                f"multisock.sim: the program started a real thread ({thread.name!r}, target "
                f"{target!r}); its timing would come from the OS scheduler. Use asyncio "
                "tasks (run_in_executor runs inline in a simulation)")
        original(thread)

    setattr(threading.Thread, "start", start)  # noqa: B010 - (mypy: a method replaced)
    try:
        yield
    finally:
        setattr(threading.Thread, "start", original)  # noqa: B010


@contextmanager
def _policy(policy: asyncio.AbstractEventLoopPolicy) -> Iterator[None]:
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(policy)
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def _arguments(main: Callable[..., Any], net: Network) -> tuple[Any, ...]:
    """``main`` gets the network when it has a required positional parameter."""
    try:
        parameters = inspect.signature(main).parameters.values()
    except (TypeError, ValueError):
        return ()
    required = [p for p in parameters if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (net,) if required else ()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _run_once(main: Callable[..., Any], seed: int, until: float | str | None,
              net: Network | None, trace: bool) -> tuple[Any, bytes]:
    own = net is None
    network = Network(seed=seed, name="sim", backend="virtual") if net is None else net
    try:
        host = network.hosts.get(DEFAULT_HOST) or network.add_host(DEFAULT_HOST)
        buffer = io.BytesIO()
        writer = network.capture(buffer) if trace else None
        sim = Simulation(network, until=until)
        args = _arguments(main, network)
        with sim.installed(host):
            result = main(*args)  # a coroutine (also from a lambda or partial), or the answer
            if inspect.isawaitable(result):
                with asyncio.Runner(loop_factory=sim.new_loop) as runner:
                    result = runner.run(_awaited(result))
        sim.check_errors()
        if writer is not None:
            writer.flush()
        return result, buffer.getvalue()
    finally:
        if own:
            network.close()


def run(main: Callable[..., Any], *, seed: int = 0, until: float | str | None = None,
        check_determinism: bool = False, net: Network | None = None,
        pcap: str | None = None) -> Any:
    """Run ``main`` in a fresh simulated network and return its result.

    ``main`` is a coroutine function (run on a virtual-time event loop; so is an awaitable
    that a plain function returns) or a plain function (run on this thread, its blocking
    calls moving virtual time); either gets the
    :class:`~multisock.net.network.Network` when it takes a positional argument, to add
    hosts, links and faults. Its sockets live on host ``"multisock"`` (loopback).
    ``until``: the virtual time limit (seconds or ``"60s"``), past which
    :class:`~multisock.net.virtual_driver.SimulationTimeout` is raised. ``net``: run on this
    network (``backend="virtual"``) instead of a fresh one. ``pcap``: write the trace there.
    ``check_determinism``: run twice on fresh networks and raise
    :class:`~multisock.net.virtual_driver.NondeterminismError` naming the first packet whose
    bytes or virtual time differ.
    """
    if check_determinism:
        if net is not None:
            raise ValueError("check_determinism builds a fresh network for each run")
        result, first = _run_once(main, seed, until, None, True)
        _, second = _run_once(main, seed, until, None, True)
        difference = first_difference(first, second)
        if difference is not None:
            raise NondeterminismError(
                f"multisock.sim: two runs of seed {seed} differ: {difference}")
    else:
        result, first = _run_once(main, seed, until, net, pcap is not None)
    if pcap is not None:
        with open(pcap, "wb") as out:
            out.write(first)
    return result


def run_program(host: Any, until: float | str | None, program: Callable[[], Any]) -> Any:
    """``run --virtual-time``: ``program`` (the script) on an activated virtual host."""
    sim = Simulation(host.net, until=until)
    with sim.installed(host, patch=False):
        result = program()
    sim.check_errors()
    return result
