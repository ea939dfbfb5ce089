"""The virtual-time driver: a network whose clock moves only when everybody waits.

Same run-to-completion model as :class:`~multisock.net.driver.Driver` (the lock, the ready
queue, the timer heap and the drain budget are inherited unchanged); what differs is *who
moves time*. There is no driver thread and no real sleep. The clock is a number
(``VirtualDriver.time``, seconds since the network was made) that only
:meth:`VirtualDriver.run_until` moves: when the simulated program has nothing left to do
before its next deadline - every task waits on a socket, a timer or a sleep - the clock
jumps to the earliest deadline (a TCP timer, a link delivery, the caller's own timeout),
the timers due then run, and the caller looks again. CPU time costs no virtual time, as in
Shadow and FoundationDB's simulator.

Everything that waits in a simulation comes here: a blocking socket call (through
:class:`VirtualCondition`), a patched ``time.sleep``, and the simulated asyncio loop's
selector (``multisock.sim.loop``). All of them run on the one thread that owns the
simulation; a real fd (a TUN device) cannot join, since its readiness would depend on the
world outside.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from multisock.net.driver import Driver, _python_class

# what ``time.time()`` (and a pcap's timestamps) read at virtual time 0: fixed, so two runs
# of one seed write the same bytes (2023-11-14T22:13:20Z)
EPOCH = 1_700_000_000.0


@_python_class
class SimulationError(RuntimeError):
    """A simulation could not go on (the base of the errors below)."""


@_python_class
class SimulationDeadlock(SimulationError):
    """Every task waits, nothing is pending that could wake one, and no limit was set:
    nothing can ever happen again (a real program would hang here)."""


@_python_class
class SimulationTimeout(SimulationError, TimeoutError):
    """The virtual clock reached the run's ``until`` limit before the program finished."""


@_python_class
class NondeterminismError(SimulationError):
    """Something outside the simulation (a real thread, a real fd) tried to take part: its
    timing would come from the real world and break replay by seed."""


class VirtualCondition:
    """What a blocking socket call waits on in a simulation: waiting *runs the network*
    forward (timers, deliveries) until ``notify_all`` or the timeout, in virtual time."""

    __slots__ = ("_driver", "_waiters")

    def __init__(self, driver: VirtualDriver) -> None:
        self._driver = driver
        self._waiters: list[list[bool]] = []

    def wait(self, timeout: float | None = None) -> bool:
        driver = self._driver
        token = [False]
        self._waiters.append(token)
        deadline = None if timeout is None else driver.time + max(0.0, timeout)
        try:
            return driver.run_until(lambda: token[0], deadline, "a blocking socket call")
        finally:
            if not token[0] and token in self._waiters:
                self._waiters.remove(token)

    def notify_all(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for token in waiters:
                token[0] = True

    def notify(self) -> None:
        """As ``notify_all`` (a method, not an alias: a native class's alias is dropped)."""
        self.notify_all()


class VirtualDriver(Driver):
    """A :class:`Driver` on a virtual clock; see the module text."""

    backend = "virtual"

    def __init__(self, clock: Callable[[], float] | None = None, name: str = "multisock") -> None:
        self.time = 0.0  # virtual seconds (the clock the stack, the loop and time.* read)
        self.limit: float | None = None  # ``until``: the clock never passes it
        self.jumps = 0  # times the clock moved: a test's measure of work
        super().__init__(self._read, name)

    def _read(self) -> float:
        return self.time

    def wall(self) -> float:
        return EPOCH + self.time

    # ------------------------------------------------- no thread, no real fds

    def _ensure_thread(self) -> None:
        """No thread: whoever waits moves the clock (``run_until``)."""

    def _wake(self) -> None:
        """Nobody sleeps in real time, so nobody needs waking."""

    def _continue_later(self) -> None:
        """What a drain's budget left runs in the next ``run_until`` pass, before time moves."""

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        raise NondeterminismError(
            f"multisock: fd {fd} (a real device, e.g. TUN) cannot join a virtual-time network: "
            "its readiness comes from the real world")

    def new_condition(self) -> VirtualCondition:
        return VirtualCondition(self)

    # ----------------------------------------------------------------- time

    def next_deadline(self) -> float | None:
        """The earliest pending timer (lock held), dropping cancelled ones on the way."""
        timers = self._timers
        while timers:
            handle = timers[0][2]
            if not handle.cancelled:
                return timers[0][0]
            heapq.heappop(timers)
        return None

    def _jump(self, when: float) -> None:
        limit = self.limit
        if limit is not None and when > limit:
            self.time = max(self.time, limit)
            raise SimulationTimeout(f"multisock.sim: virtual time limit reached ({limit:g} s)")
        if when > self.time:
            self.time = when
            self.jumps += 1

    def run_until(self, ready: Callable[[], bool], deadline: float | None,
                  what: str = "the program") -> bool:
        """Run the network until ``ready()`` or the clock reaches ``deadline`` (None: no
        deadline); returns ``ready()``. Raises :class:`SimulationDeadlock` when nothing could
        ever make it ready, :class:`SimulationTimeout` at the ``until`` limit."""
        with self.lock:
            while True:
                while self._ready or self._after_drain:
                    self.drain()
                if ready():
                    return True
                nxt = self.next_deadline()
                if nxt is not None and (deadline is None or nxt <= deadline):
                    self._jump(nxt)
                    self.run_due()
                    continue
                if deadline is None:
                    if self.limit is not None:
                        self._jump(float("inf"))  # idle for ever: the run ends at its limit
                    raise SimulationDeadlock(
                        f"multisock.sim: {what} waits for ever at virtual time {self.time:g} s: "
                        "no timer, delivery or timeout is pending that could wake it")
                self._jump(deadline)
                while self._ready or self._after_drain:
                    self.drain()
                return ready()

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` inside a simulation: the network runs, the clock moves ``seconds``."""
        self.run_until(_never, self.time + max(0.0, seconds), "time.sleep")



def _never() -> bool:
    return False
