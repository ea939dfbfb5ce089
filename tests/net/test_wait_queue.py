"""The threads backend's WaitQueue: Condition semantics for wait-with-the-lock + notify_all."""

from __future__ import annotations

import threading
import time

from multisock.net.driver import WaitQueue, _thread_waiter


def test_notify_all_wakes_every_waiter_and_the_lock_is_held_again() -> None:
    lock = threading.RLock()
    queue = WaitQueue(lock)
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
    lock = threading.RLock()
    queue = WaitQueue(lock)
    with lock, lock:  # re-entrant holds are restored whole
        assert queue.wait(0.01) is False
        assert queue.wait(0) is False
        assert queue._waiters == []
        assert lock._is_owned()  # type: ignore[attr-defined]
    assert _thread_waiter().locked()  # ready for the next wait: no stale signal
    with lock:
        start = time.monotonic()
        assert queue.wait(0.05) is False  # blocks for its whole timeout, not woken at once
        assert time.monotonic() - start >= 0.04


def test_signals_racing_timeouts_never_leave_a_waiter_released() -> None:
    """Waiters time out while another thread keeps notifying: whichever wins, each thread's
    waiter lock ends held (no spurious wake-up carried over, no release of an unlocked lock)."""
    lock = threading.RLock()
    queue = WaitQueue(lock)
    stop = threading.Event()
    errors: list[BaseException] = []
    states: list[bool] = []

    def waiter() -> None:
        try:
            for _ in range(300):
                with lock:
                    queue.wait(0.0005)
            states.append(_thread_waiter().locked())
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
