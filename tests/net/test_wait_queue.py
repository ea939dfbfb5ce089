"""The threads backend's WaitQueue: Condition semantics for wait-with-the-lock + notify_all."""

from __future__ import annotations

import threading
import time
from typing import Any

from multisock.net.driver import Driver, WaitQueue, _thread_waiter


def _queue() -> tuple[threading.RLock, WaitQueue, Driver]:
    driver = Driver()
    return driver.lock, WaitQueue(driver.lock, driver), driver


def test_notify_all_wakes_every_waiter_and_the_lock_is_held_again() -> None:
    lock, queue, _driver = _queue()
    woke: list[tuple[bool, bool]] = []

    def waiter() -> None:
        with lock:
            got = queue.wait(10)
            woke.append((got, lock._is_owned()))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    while True:  # all three are asleep once the lock is free and the list is full
        with lock:
            if len(queue._waiters) == 3:
                queue.notify_all()
                break
        time.sleep(0.001)
    for t in threads:
        t.join(10)
    assert woke == [(True, True)] * 3


def test_a_timeout_returns_false_and_leaves_no_trace() -> None:
    lock, queue, _driver = _queue()
    with lock, lock:  # re-entrant holds are restored whole
        assert queue.wait(0.01) is False
        assert queue.wait(0) is False
        assert queue._waiters == []
        assert lock._is_owned()  # type: ignore[attr-defined]
    assert not _thread_waiter().pending()  # ready for the next wait: no stale signal
    with lock:
        start = time.monotonic()
        assert queue.wait(0.05) is False  # blocks for its whole timeout, not woken at once
        assert time.monotonic() - start >= 0.04


def test_signals_racing_timeouts_never_leave_a_waiter_released() -> None:
    """Waiters time out while another thread keeps notifying: whichever wins, no thread is
    left with a wake-up pending (none carried over into its next wait)."""
    lock, queue, _driver = _queue()
    stop = threading.Event()
    errors: list[BaseException] = []
    states: list[bool] = []

    def waiter() -> None:
        try:
            for _ in range(300):
                with lock:
                    queue.wait(0.0005)
            states.append(not _thread_waiter().pending())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def notifier() -> None:
        while not stop.is_set():
            with lock:
                queue.notify_all()

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    noisy = threading.Thread(target=notifier)
    noisy.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    noisy.join(10)
    assert errors == []
    assert states == [True] * 4


def _asleep(target: Any, lock: threading.RLock, queue: WaitQueue) -> threading.Thread:
    """``target`` started in a thread, returned once it waits on ``queue`` (within 10 s)."""
    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if queue._waiters:
                return thread
        time.sleep(0.001)
    raise AssertionError("the waiter never went to sleep on the queue")


def test_an_operation_wakes_its_waiters_once_it_lets_the_lock_go() -> None:
    """Notified inside ``driver.operation()``, a waiter is woken when the operation ends (it
    would otherwise wake only to block on the lock); a waiter the operation's own thread
    wakes before waiting itself is woken before that thread sleeps."""
    lock, queue, driver = _queue()
    woke: list[float] = []

    def waiter() -> None:
        with lock:
            queue.wait(10)
            woke.append(time.monotonic())

    thread = _asleep(waiter, lock, queue)
    with driver.operation():
        queue.notify_all()
        assert driver.wakes  # owed, not done: the lock is still held
        time.sleep(0.05)
        assert not woke
        left = time.monotonic()
    thread.join(10)
    assert woke and woke[0] >= left
    assert driver.wakes == [] and driver.depth == 0
    # inside an operation that then waits itself: the owed wake goes before it sleeps
    other = WaitQueue(lock, driver)
    thread = _asleep(waiter, lock, queue)
    with driver.operation():
        queue.notify_all()
        assert other.wait(0.3) is False  # (this thread's own wait, on another queue)
        assert driver.depth == 1
        assert len(woke) == 2  # woken while this thread slept, not when its operation ended
    thread.join(10)
    assert len(woke) == 2
    driver.close()


def test_a_signal_runs_its_handler_and_the_wait_goes_on() -> None:
    """A blocked socket call's wait survives a signal whose handler returns (PEP 475, as a
    lock's acquire does): CPython's test_socketserver.SocketWriterTest.test_write signals
    a thread blocked in ``sendall``."""
    import signal

    lock, queue, driver = _queue()
    handled: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: handled.append(1))
    main = threading.get_ident()

    def poke() -> None:
        time.sleep(0.05)
        for _ in range(5):  # while the main thread sleeps in its wait
            signal.pthread_kill(main, signal.SIGUSR1)
            time.sleep(0.02)
        with lock:
            queue.notify_all()

    try:
        thread = threading.Thread(target=poke)
        try:
            with lock:
                thread.start()
                woken = queue.wait()  # not InterruptedError
        finally:
            thread.join(10)  # (its signals all sent before the handler goes)
        assert woken is True
        assert len(handled) == 5
    finally:
        signal.signal(signal.SIGUSR1, previous)
        driver.close()
