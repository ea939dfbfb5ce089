"""TCP goodput under loss: multisock's TCP and the kernel's cross the same impaired link.

multisock's side: two hosts on an in-process link with 10 ms delay each way (20 ms RTT),
MTU 1500 and Bernoulli loss, one bulk transfer (``bench_tcp.bulk``).

The kernel's side (root, /dev/net/tun, python-pytun, iproute2): two network namespaces this
module creates and removes, each holding one TUN device whose file descriptor stays in this
process. The kernel's TCP (CUBIC, set on the sending socket: this machine's default is BBR,
which ignores random loss by design, and a namespace may not default to a congestion control
outside ``tcp_allowed_congestion_control``) sends from one namespace to the other, and this
process forwards every IPv4 packet between the two descriptors through ``multisock.net.link.Link``:
the same ``Direction``/``Impairment`` objects an in-process link uses, on a network's own
driver (its lock, timers and reader callbacks). Nothing of the impairment is re-implemented
here, and tc/netem (absent from this kernel) is not needed.

Same seed, same fate: the forwarding link draws from ``Network.derive_rng("link", "0", ...)``,
exactly the generators ``Network.link`` gives the first link of a network of that seed, so
the n-th packet in a direction is lost on the kernel's path iff the n-th packet is lost on
multisock's (the two stacks send different packets, so the runs still differ). Each figure
is the median over several seeds; the multisock and kernel runs of a seed alternate.

The no-loss row is the check that the forwarder is not the bottleneck: the kernel's goodput
through it with delay only, far above the lossy rows. The TUN devices' drop counters are
reported with each row (a drop there would be a loss the impairment did not decide).

Run alone: ``python -m bench.bench_loss [--quick] [--cc bbr]`` (``--cc``: the kernel
sender's congestion control instead of CUBIC).
"""

from __future__ import annotations

import os
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import multisock
from bench import bench_tcp
from bench.rows import row
from multisock.net.link import Link, LinkEnd
from multisock.net.tun import IFF_NO_PI, IFF_TUN, TunUnavailable, check_available

ROOT = Path(__file__).resolve().parent.parent
ONE_WAY = 0.010  # seconds: 20 ms RTT
MTU = 1500
MSS = 1448  # MTU 1500 less IPv4, TCP and timestamp option headers: both stacks' segment
LOSSES = (0.0, 0.01, 0.05)
PORT = 5001
CONGESTION = "cubic"  # the kernel's default on most systems, and the model multisock follows
# addresses only ever used inside the two namespaces this module makes
SENDER_ADDR, RECEIVER_ADDR = "10.81.0.1", "10.81.0.2"

# bytes per transfer by loss rate; quick: a few seconds for all rows, full: a stable figure
# (quick: one seed, since a single retransmission timeout costs a second; full: ~4 min)
QUICK = {"seeds": (1,), 0.0: 1 << 20, 0.01: 256 << 10, 0.05: 128 << 10}
FULL = {"seeds": (1, 2, 3, 4, 5), 0.0: 32 << 20, 0.01: 8 << 20, 0.05: 3 << 20}


def scenario(loss: float) -> str:
    if loss == 0:
        return "TCP goodput, no loss, 20 ms RTT (forwarder check)"
    return f"TCP goodput, {loss * 100:g} % loss, 20 ms RTT"


def mathis(loss: float) -> float:
    """Mathis et al.'s MSS/RTT * 1.22/sqrt(p), Mbit/s: the classic Reno ceiling."""
    return MSS * 8 / (2 * ONE_WAY) * 1.22 / loss**0.5 / 1e6


def multisock_goodput(seed: int, loss: float, size: int) -> float:
    """Mbit/s of one ``size``-byte transfer between two multisock hosts on the impaired link."""
    with multisock.Network(seed=seed) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, delay=ONE_WAY, loss=loss, mtu=MTU)  # the network's link "0"
        pair = bench_tcp._pair_multisock(net)
        return bench_tcp.bulk(lambda: pair, size) * 1000


def unavailable_reason() -> str | None:
    """Why the kernel's side cannot run here (root, /dev/net/tun, pytun, iproute2), or None."""
    try:
        check_available()
    except TunUnavailable as exc:
        return f"not measured: {exc.strerror}"
    return None


def _sh(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def forwarding_link(net: multisock.Network, end_a: LinkEnd, end_b: LinkEnd,
                    loss: float) -> Link:
    """A link of ``net``'s driver between two ends that are not hosts, impaired as
    ``multisock_goodput``'s: it draws from the generators ``Network.link`` gives a network's
    first link ("0"), so a seed decides the same packet fates on both paths
    (``tests/test_bench_loss.py`` holds that to ``Network.link``)."""
    return Link(net.driver, end_a, end_b, net.derive_rng("link", "0", "a->b"),
                net.derive_rng("link", "0", "b->a"), MTU, {"delay": ONE_WAY, "loss": loss},
                (None, None))


class _TunEnd:
    """One end of the forwarding link: delivering writes the packet to a TUN device, i.e.
    hands it to the kernel of that device's namespace."""

    __slots__ = ("name", "fd", "errors")

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd
        self.errors = 0

    def deliver(self, packet: bytes, next_hop: bytes, now: float) -> None:
        try:
            os.write(self.fd, packet)
        except OSError:
            self.errors += 1


def _reader(fd: int, send: Callable[[bytes, bytes, float], None],
            now: Callable[[], float]) -> Callable[[], None]:
    """The driver's callback for a readable TUN fd: each IPv4 packet enters the link
    (bounded per wake-up, as ``TunLink`` does, so that timers keep running). Anything else
    (there should be nothing: IPv6 is off in the namespaces) is dropped before the
    impairment, so that it draws nothing from the seeded generator."""

    def readable() -> None:
        t = now()
        for _ in range(256):
            try:
                packet = os.read(fd, 65536)
            except BlockingIOError:
                return
            if packet and packet[0] >> 4 == 4:
                send(packet, b"", t)

    return readable


def _drain(fd: int) -> None:
    """Drop whatever the kernel queued on a TUN device while no forwarder ran (the previous
    connection's last retransmissions): it must not enter the next seed's link."""
    while True:
        try:
            os.read(fd, 65536)
        except BlockingIOError:
            return


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _line(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else ""
    if not line:
        raise RuntimeError("a kernel peer of the loss bench stopped answering")
    return line


class KernelPath:
    """The kernel's TCP, sender in namespace A and receiver in namespace B, joined by this
    process's forwarder. Use as a context manager: the namespaces, devices and peer
    processes are removed on the way out, whatever happened (Ctrl-C included)."""

    def __init__(self, congestion: str = CONGESTION) -> None:
        self.congestion = congestion
        tag = os.getpid()
        self.namespaces = (f"msbench-a-{tag}", f"msbench-b-{tag}")
        self.devices = (f"msba{tag}", f"msbb{tag}")
        self._made: list[str] = []
        self._tuns: list[Any] = []
        self._peers: list[subprocess.Popen[str]] = []
        self._old_sigterm: Any = None

    def __enter__(self) -> KernelPath:
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (a timeout, kill) unwinds like Ctrl-C, through close()
            self._old_sigterm = signal.signal(signal.SIGTERM, _terminated)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        import pytun

        for ns, dev, addr in zip(self.namespaces, self.devices, (SENDER_ADDR, RECEIVER_ADDR),
                                 strict=True):
            _sh("ip", "netns", "add", ns)
            self._made.append(ns)
            tun = pytun.TunTapDevice(name=dev, flags=IFF_TUN | IFF_NO_PI)
            self._tuns.append(tun)
            os.set_blocking(tun.fileno(), False)
            _sh("ip", "link", "set", "dev", dev, "netns", ns)  # the fd stays ours
            inside = ("ip", "netns", "exec", ns)
            _sh(*inside, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
                # no ssthresh carried from one seed's connection to the next
                "net.ipv4.tcp_no_metrics_save=1")
            _sh(*inside, "ip", "link", "set", "lo", "up")
            # a ring of 10,000 packets between the kernel and our fd, not 500: a burst
            # while the forwarder waits for a CPU must not overflow it (the in-process link
            # has no queue limit; a drop here would be a loss no seed decided)
            _sh(*inside, "ip", "link", "set", "dev", dev, "mtu", str(MTU), "txqueuelen",
                "10000")
            _sh(*inside, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            _sh(*inside, "ip", "link", "set", "dev", dev, "up")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for ns, role, addr in ((self.namespaces[1], "recv", RECEIVER_ADDR),
                               (self.namespaces[0], "send", RECEIVER_ADDR)):
            self._peers.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "bench.loss_peer", role,
                 addr, str(PORT), self.congestion],
                cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            if role == "recv":
                assert self._peers[0].stdout is not None
                if _line(self._peers[0].stdout, 30).strip() != "READY":
                    raise RuntimeError("the kernel receiver did not start")

    def drops(self) -> int:
        """Packets the two TUN devices dropped so far (queue overflows on either side)."""
        total = 0
        for ns, dev in zip(self.namespaces, self.devices, strict=True):
            for counter in ("tx_dropped", "rx_dropped"):
                total += int(_sh("ip", "netns", "exec", ns, "cat",
                                 f"/sys/class/net/{dev}/statistics/{counter}"))
        return total

    def goodput(self, seed: int, loss: float, size: int, timeout: float = 900) -> float:
        """Mbit/s of one ``size``-byte kernel transfer through a link of seed ``seed``."""
        receiver, sender = self._peers
        assert receiver.stdout is not None and sender.stdin is not None
        assert sender.stdout is not None
        with multisock.Network(seed=seed) as net:
            fd_a, fd_b = (tun.fileno() for tun in self._tuns)
            _drain(fd_a)
            _drain(fd_b)
            link = forwarding_link(net, _TunEnd(self.devices[0], fd_a),
                                   _TunEnd(self.devices[1], fd_b), loss)
            driver = net.driver
            driver.add_reader(fd_a, _reader(fd_a, link.a_to_b.send, driver.now))
            driver.add_reader(fd_b, _reader(fd_b, link.b_to_a.send, driver.now))
            try:
                sender.stdin.write(f"{size}\n")
                sender.stdin.flush()
                got, seconds = _line(receiver.stdout, timeout).split()
                if _line(sender.stdout, timeout).strip() != "DONE":
                    raise RuntimeError("the kernel sender failed")
                time.sleep(4 * ONE_WAY)  # the sender's last ACK reaches the receiver
            finally:
                driver.remove_reader(fd_a)
                driver.remove_reader(fd_b)
        if int(got) != size:
            raise RuntimeError(f"the kernel receiver got {got} of {size} bytes")
        return int(got) * 8 / float(seconds) / 1e6

    def close(self) -> None:
        for peer in self._peers:
            peer.kill()
            peer.communicate()
        self._peers.clear()
        for ns in self._made:  # anything else still inside goes too
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout
            for pid in pids.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
        for tun in self._tuns:
            tun.close()  # the device goes with its last fd
        self._tuns.clear()
        for ns in self._made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made.clear()
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None


@contextmanager
def _kernel_path(enabled: bool,
                 congestion: str) -> Iterator[tuple[KernelPath | None, str | None]]:
    """The kernel's path when it can be built here, else None and the reason why not."""
    reason = unavailable_reason() if enabled else (
        "not measured: quick mode builds no namespaces (run --quick --only loss as root)")
    if reason is not None:
        yield None, reason
        return
    try:
        path = KernelPath(congestion).__enter__()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        yield None, f"not measured: {exc}"
        return
    try:
        yield path, None
    finally:
        path.close()


def rows(quick: bool, namespaces: bool = True, seeds: tuple[int, ...] | None = None,
         losses: tuple[float, ...] = LOSSES,
         congestion: str = CONGESTION) -> list[dict[str, Any]]:
    """One row per loss rate: multisock and the kernel, seed by seed, alternating."""
    sizes: dict[Any, Any] = QUICK if quick else FULL
    seeds = seeds or sizes["seeds"]
    out = []
    with _kernel_path(namespaces, congestion) as (path, reason):
        for loss in losses:
            ours, kernel = [], []
            drops = path.drops() if path else 0
            for seed in seeds:
                ours.append(multisock_goodput(seed, loss, sizes[loss]))
                if path is not None:
                    kernel.append(path.goodput(seed, loss, sizes[loss]))
            extra: dict[str, Any] = {"bytes": sizes[loss], "seeds": list(seeds), "mtu": MTU}
            if loss:
                extra["mathis_mbps"] = mathis(loss)
            if path is not None:
                extra["kernel_note"] = (f"kernel {congestion} between two namespaces, through "
                                        "this process's forwarder and the same impairment")
                extra["tun_drops"] = path.drops() - drops
                # the runs of one seed share their packet fates: their ratio is paired
                extra["ratio_per_seed"] = [o / k for o, k in zip(ours, kernel, strict=True)]
                if not loss:
                    extra["note"] = ("the forwarder's ceiling: the kernel column is bounded by "
                                     "it when tun_drops > 0; far above the lossy rows")
            else:
                extra["kernel_missing"] = reason
            out.append(row(scenario(loss), "Mbit/s", ours, kernel or None, True, **extra))
    return out


def main() -> None:
    """``[--quick] [--cc NAME]``: NAME the kernel sender's congestion control (cubic)."""
    argv = sys.argv[1:]
    congestion = argv[argv.index("--cc") + 1] if "--cc" in argv else CONGESTION
    for r in rows("--quick" in argv, congestion=congestion):
        kernel = (f"{r['kernel_min']:8.2f} / {r['kernel_median']:8.2f}  ratio "
                  f"{r['ratio_median']:.2f}  tun drops {r['tun_drops']}"
                  if "kernel_median" in r else r["kernel_missing"])
        print(f"{r['scenario']:52} multisock {r['multisock_min']:8.2f} / "
              f"{statistics.median(r['multisock']):8.2f}  kernel {kernel}")


if __name__ == "__main__":
    main()
