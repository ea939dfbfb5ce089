"""Pluggable congestion control: Reno/NewReno (RFC 5681) and CUBIC (RFC 9438, default).

The engine owns loss detection and recovery mechanics (which segments to resend,
the pipe estimate); an algorithm only decides the window: how it grows on ACKs,
what it becomes on a congestion event, after a timeout, and after idleness.
Windows are in bytes; time comes from the ``now`` arguments, never a clock.
"""

from __future__ import annotations

from typing import Final, Protocol


class CongestionControl(Protocol):
    name: str
    cwnd: int
    ssthresh: int

    def on_ack(self, acked: int, rtt: float | None, in_flight: int, now: float) -> None: ...
    def on_congestion_event(self, in_flight: int, now: float) -> None: ...
    def on_recovery_ack(self, acked: int, in_flight: int, now: float) -> None: ...
    def on_recovery_exit(self, now: float) -> None: ...
    def on_rto(self, in_flight: int, now: float) -> None: ...
    def on_idle_restart(self, now: float) -> None: ...
    def set_mss(self, mss: int) -> None: ...


INFINITE_SSTHRESH: Final = 0x7FFFFFFF


def initial_window(mss: int) -> int:
    """RFC 6928's ten segments (Linux uses 10 whatever the MSS)."""
    return 10 * mss


class Reno:
    """RFC 5681 with appropriate byte counting (RFC 3465, L = 2*MSS in slow start)."""

    name = "reno"
    __slots__ = ("mss", "cwnd", "ssthresh", "_acked_in_ca")  # one per connection: no __dict__

    def __init__(self, mss: int, now: float) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        self.ssthresh = INFINITE_SSTHRESH
        self._acked_in_ca = 0

    def set_mss(self, mss: int) -> None:
        if self.cwnd == initial_window(self.mss):
            self.cwnd = initial_window(mss)
        self.mss = mss

    def on_ack(self, acked: int, rtt: float | None, in_flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * self.mss)
            return
        self._acked_in_ca += acked
        if self._acked_in_ca >= self.cwnd:
            self._acked_in_ca -= self.cwnd
            self.cwnd += self.mss

    def on_congestion_event(self, in_flight: int, now: float) -> None:
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._acked_in_ca = 0

    def on_recovery_ack(self, acked: int, in_flight: int, now: float) -> None:
        """Window stays at ssthresh during recovery; the engine's pipe rule paces sending."""

    def on_recovery_exit(self, now: float) -> None:
        self.cwnd = max(self.ssthresh, 2 * self.mss)

    def on_rto(self, in_flight: int, now: float) -> None:
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._acked_in_ca = 0

    def on_idle_restart(self, now: float) -> None:
        self.cwnd = min(self.cwnd, initial_window(self.mss))


class Cubic(Reno):
    """RFC 9438: W_cubic(t) = C*(t-K)^3 + W_max, with the Reno-friendly region."""

    name = "cubic"
    C: Final = 0.4  # (Final: class constants, also when compiled by mypyc)
    BETA: Final = 0.7
    __slots__ = ("w_max", "k", "epoch", "w_est", "cwnd_epoch", "_cwnd_frac")

    def __init__(self, mss: int, now: float) -> None:
        super().__init__(mss, now)
        self.w_max = 0.0  # in segments
        self.k = 0.0
        self.epoch: float | None = None
        self.w_est = 0.0  # Reno-friendly estimate, segments
        self.cwnd_epoch = 0.0
        self._cwnd_frac = 0.0

    def _start_epoch(self, now: float) -> None:
        self.epoch = now
        segments = self.cwnd / self.mss
        self.cwnd_epoch = segments
        if self.w_max > segments:
            self.k = ((self.w_max - segments) / self.C) ** (1 / 3)
        else:
            self.k = 0.0
            self.w_max = segments
        self.w_est = segments

    def on_ack(self, acked: int, rtt: float | None, in_flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * self.mss)
            return
        if self.epoch is None:
            self._start_epoch(now)
        assert self.epoch is not None
        t = now - self.epoch + (rtt or 0.0)
        target = self.C * (t - self.k) ** 3 + self.w_max  # segments
        segments = self.cwnd / self.mss
        acked_segments = acked / self.mss
        # Reno-friendly estimate (RFC 9438 §4.3): alpha = 3(1-beta)/(1+beta)
        alpha = 3 * (1 - self.BETA) / (1 + self.BETA)
        self.w_est += alpha * acked_segments / max(segments, 1.0)
        if self.w_est > target:
            target = self.w_est
        if target > segments:
            # grow by (target - cwnd)/cwnd per segment acked, capped at 1.5x per RTT
            target = min(target, 1.5 * segments)
            self._cwnd_frac += (target - segments) / segments * acked_segments
        else:
            self._cwnd_frac += acked_segments / (100 * segments)
        whole = int(self._cwnd_frac)
        if whole:
            self._cwnd_frac -= whole
            self.cwnd += whole * self.mss

    def on_congestion_event(self, in_flight: int, now: float) -> None:
        segments = self.cwnd / self.mss
        if segments < self.w_max:  # fast convergence
            self.w_max = segments * (1 + self.BETA) / 2
        else:
            self.w_max = segments
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.mss)
        self.cwnd = self.ssthresh
        self.epoch = None
        self._cwnd_frac = 0.0

    def on_rto(self, in_flight: int, now: float) -> None:
        self.on_congestion_event(in_flight, now)
        self.cwnd = self.mss
        self.epoch = None

    def on_idle_restart(self, now: float) -> None:
        super().on_idle_restart(now)
        self.epoch = None


# Linux's names (tcp_available_congestion_control): "reno" is its NewReno-style Reno (the
# recovery is RFC 6582's in both), and there is no "newreno" - an unknown name is ENOENT
_ALGORITHMS: Final[dict[str, type[Reno]]] = {"reno": Reno, "cubic": Cubic}
AVAILABLE: Final = tuple(sorted(_ALGORITHMS))


def make_congestion_control(name: str, mss: int, now: float) -> Reno:
    """An instance of the algorithm ``name``. Typed ``Reno`` (every algorithm here is one,
    ``CongestionControl`` describes what the engine uses): compiled code then calls the
    per-ACK methods and reads ``cwnd`` natively, not through generic look-ups."""
    try:
        cls = _ALGORITHMS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r}; available: {', '.join(AVAILABLE)}"
        ) from None
    return cls(mss, now)
