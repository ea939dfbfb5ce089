"""asyncio on virtual time: an event loop whose clock is the network's and whose selector
never sleeps for real.

:class:`VirtualSelector` answers ``select(timeout)`` from the stack's own readiness (each
registered fd is a multisock socket's); when nothing is ready it runs the network forward
with :meth:`VirtualDriver.run_until`, which jumps the clock to the earliest deadline - a
network timer, a link delivery, or the loop's own next timer (the ``timeout`` asyncio
computed from ``call_later``/``sleep``/``wait_for``). So time passes only when every task
waits. A real fd registered with the loop is refused (:class:`NondeterminismError`), as is
a signal handler (the loop has no self-pipe: nothing from outside can wake it).

``run_in_executor`` runs the function to completion inline, in zero virtual time, and
returns a finished future: a simulation has one thread, and an executor thread's timing
would come from the real scheduler. ``loop.getaddrinfo`` goes through it, so name lookups
work. Work that blocks on the network inside the executor function runs the network
forward meanwhile (other asyncio tasks wait, as with a blocking call on a real loop).
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Callable
from typing import Any, cast

from multisock.net.virtual_driver import NondeterminismError, VirtualDriver


class VirtualSelector(selectors._BaseSelectorImpl):
    """A selector over multisock sockets whose wait is virtual time."""

    def __init__(self, driver: VirtualDriver) -> None:
        super().__init__()
        self._driver = driver
        self._cores: dict[int, Any] = {}
        self._watchers: dict[int, Callable[[], None]] = {}
        # fds that may be ready: told so by their core, or ready at the last look (level-
        # triggered); insertion-ordered, so events come out in a replayable order
        self._suspects: dict[int, None] = {}
        self._found: list[tuple[selectors.SelectorKey, int]] = []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        from multisock.select import _core_of

        core = _core_of(fileobj)
        if core is None:
            raise NondeterminismError(
                f"multisock.sim: a real file descriptor ({fileobj!r}) was registered with the "
                "simulated event loop; its readiness would come from the real world")
        key = super().register(fileobj, events, data)
        fd = key.fd
        suspects = self._suspects

        def watcher() -> None:  # the stack says this socket's readiness may have changed
            suspects[fd] = None

        self._cores[fd] = core
        self._watchers[fd] = watcher
        core.watchers.add(watcher)
        suspects[fd] = None
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        core = self._cores.pop(key.fd, None)
        watcher = self._watchers.pop(key.fd, None)
        if core is not None and watcher is not None:
            core.watchers.discard(watcher)
        self._suspects.pop(key.fd, None)
        return key

    def _check(self) -> bool:
        """Collect the ready keys among the suspects (driver lock held); True if any.
        Only sockets whose core signalled a change, or that were ready last time, are
        looked at: a thousand idle connections cost nothing per loop pass."""
        found = self._found
        found.clear()
        suspects = self._suspects
        if not suspects:
            return False
        keys: dict[int, selectors.SelectorKey] = cast(Any, self)._fd_to_key
        cores = self._cores
        for fd in list(suspects):
            key = keys.get(fd)
            if key is None:
                del suspects[fd]
                continue
            core = cores[fd]
            events = 0
            if key.events & selectors.EVENT_READ and core.readable():
                events |= selectors.EVENT_READ
            if key.events & selectors.EVENT_WRITE and core.writable():
                events |= selectors.EVENT_WRITE
            if events:
                found.append((key, events))
            else:
                del suspects[fd]
        return bool(found)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        driver = self._driver
        if timeout is not None and timeout <= 0:
            with driver.lock:
                while driver.backlog:
                    driver.drain()
                self._check()
        else:
            deadline = None if timeout is None else driver.time + timeout
            driver.run_until(self._check, deadline, "every task of the asyncio program")
        ready = list(self._found)
        self._found.clear()
        return ready

    def close(self) -> None:
        for fd, core in self._cores.items():
            core.watchers.discard(self._watchers[fd])
        self._cores.clear()
        self._watchers.clear()
        self._suspects.clear()
        super().close()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """``SelectorEventLoop`` with ``time()`` on the virtual clock; see the module text."""

    def __init__(self, driver: VirtualDriver) -> None:
        self._driver = driver
        self._owner = threading.get_ident()
        super().__init__(VirtualSelector(driver))
        # (asyncio's "due" slack; far above float rounding at any simulated time)
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._driver.time

    # no self-pipe: nothing outside the simulation may wake the loop
    def _make_self_pipe(self) -> None:
        self._ssock = self._csock = None

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        if threading.get_ident() != self._owner:
            raise NondeterminismError(
                "multisock.sim: call_soon_threadsafe() from another thread "
                f"({threading.current_thread().name}): a real thread's timing is not simulated")

    def run_in_executor(self, executor: Any, func: Callable[..., Any],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[Any]:
        """Run ``func(*args)`` now, to completion, in zero virtual time (see the module)."""
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        future: asyncio.Future[Any] = self.create_future()
        try:
            future.set_result(func(*args))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future

    def add_signal_handler(self, sig: int, callback: Callable[..., Any],  # type: ignore[override]
                           *args: Any) -> None:
        raise NondeterminismError(
            f"multisock.sim: signal handler for {sig}: a signal comes from the real world")

    async def subprocess_exec(self, *args: Any, **kwargs: Any) -> Any:
        raise NondeterminismError("multisock.sim: a subprocess is not simulated")

    async def subprocess_shell(self, *args: Any, **kwargs: Any) -> Any:
        raise NondeterminismError("multisock.sim: a subprocess is not simulated")


class VirtualEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The policy a simulated program runs under: ``asyncio.run`` & co. get virtual loops."""

    def __init__(self, driver: VirtualDriver) -> None:
        super().__init__()
        self._driver = driver

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return VirtualEventLoop(self._driver)
