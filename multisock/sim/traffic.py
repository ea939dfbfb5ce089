"""Traffic generators: programs on the virtual hosts' own sockets, reporting what iperf,
iperf -u, ping or an HTTP load tester would.

Each generator runs in threads of its own (as the real programs would run in processes),
talks only through ``host.socket()`` and reads time from the network's clock
(``Driver.now``), so the same code speeds up when virtual time drives that clock.
A generator is started by the scenario's timeline (:meth:`Traffic.start`, on the driver's
thread: it only starts threads there, never blocks), stopped at its end or the run's
(:meth:`Traffic.stop`), and then :meth:`Traffic.report` says what it measured.

TCP flows expose their control blocks (:meth:`Traffic.probes`) so the metrics sampler can
read goodput, RTT, cwnd and retransmissions over time, as ``ss -ti`` would.
"""

from __future__ import annotations

import _socket
import http.client
import http.server
import math
import statistics
import struct
import threading
from typing import TYPE_CHECKING, Any

from multisock.net.units import parse_duration, parse_rate, parse_size

if TYPE_CHECKING:
    from multisock.net.host import Host

TCP_CONGESTION = getattr(_socket, "TCP_CONGESTION", 13)
_POLL = 0.2  # how often a blocked thread looks at its stop flag (seconds)
_UDP_HEADER = struct.Struct("!Qd")  # sequence number, send time (the network's clock)


class FlowProbe:
    """One TCP connection the sampler watches: a label and the sending control block."""

    __slots__ = ("label", "tcb", "kind")

    def __init__(self, label: str, tcb: Any, kind: str = "tcp") -> None:
        self.label = label
        self.tcb = tcb
        self.kind = kind


class Traffic:
    """What every generator offers the scenario: start, stop, join, report, probes."""

    kind = "traffic"

    def __init__(self, name: str, src: Host, dst: Host, dst_addr: str, *,
                 duration: float | None = None) -> None:
        self.name = name
        self.src = src
        self.dst = dst
        self.dst_addr = dst_addr
        self.duration = duration
        self.driver = src.driver
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.started_at: float | None = None
        self.ended_at: float | None = None

    # -------------------------------------------------------------- lifetime

    def start(self) -> None:
        """Begin now (called by the timeline; must not block)."""
        self.started_at = self.driver.now()
        self._spawn(self.run, f"{self.kind}:{self.name}")

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float = 5.0) -> None:
        for thread in list(self.threads):
            thread.join(timeout)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception as exc:  # a generator's failure is reported, never raised
                self.errors.append(f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def now(self) -> float:
        return self.driver.now()

    def over(self) -> bool:
        """Stop asked, or the generator's own duration has run out."""
        if self.stopping.is_set():
            return True
        return (self.duration is not None and self.started_at is not None
                and self.now() >= self.started_at + self.duration)

    def probes(self) -> list[FlowProbe]:
        return []

    def report(self) -> dict[str, Any]:
        raise NotImplementedError


# ------------------------------------------------------------------ bulk TCP


class BulkTcp(Traffic):
    """iperf3's TCP test: ``flows`` parallel connections sending as fast as the path lets
    them for ``duration`` (or ``size`` bytes each), with a congestion control of choice."""

    kind = "bulk"

    def __init__(self, name: str, src: Host, dst: Host, dst_addr: str, *, port: int = 5201,
                 flows: int = 1, cc: str | None = None, duration: float | None = 10.0,
                 size: int | None = None, chunk: int = 65536) -> None:
        super().__init__(name, src, dst, dst_addr, duration=duration)
        self.port = port
        self.flows = flows
        self.cc = cc
        self.size = size
        self.chunk = chunk
        self._probes: list[FlowProbe] = []
        # per flow (index): bytes the server received, its first and last byte's time
        self.received = [0] * flows
        self.first = [math.inf] * flows
        self.last = [0.0] * flows
        self.sent = [0] * flows
        self.final_info: list[dict[str, Any]] = [{} for _ in range(flows)]
        self._by_port: dict[int, int] = {}
        self._listening = threading.Event()

    def run(self) -> None:
        listener = self.dst.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        listener.bind((self.dst_addr, self.port))
        listener.listen(self.flows + 8)
        listener.settimeout(_POLL)
        for index in range(self.flows):
            self._spawn(self._client, f"bulk:{self.name}:{index}", index)
        accepted = 0
        try:
            while accepted < self.flows and not self.stopping.is_set():
                try:
                    conn, peer = listener.accept()
                except TimeoutError:
                    continue
                accepted += 1
                self._spawn(self._reader, f"bulk-rx:{self.name}", conn, peer[1])
        finally:
            listener.close()

    def _client(self, index: int) -> None:
        sock = self.src.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            if self.cc:
                sock.setsockopt(_socket.IPPROTO_TCP, TCP_CONGESTION, self.cc.encode())
            sock.settimeout(10.0)
            sock.connect((self.dst_addr, self.port))
            self._by_port[sock.getsockname()[1]] = index
            tcb = sock._sock.tcb
            self._probes.append(FlowProbe(f"{self.name}/{index}", tcb))
            sock.settimeout(_POLL)
            block = memoryview(bytes(self.chunk))
            while not self.over() and (self.size is None or self.sent[index] < self.size):
                want = self.chunk if self.size is None else min(self.chunk,
                                                                self.size - self.sent[index])
                try:
                    self.sent[index] += sock.send(block[:want])
                except TimeoutError:
                    continue
            with self.driver.operation():
                self.final_info[index] = tcb.info()
            if self.size is None:
                # a timed test ends at its time, as iperf's does: what is still queued is
                # discarded (an abortive close, RST) rather than drained past the end
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()

    def _reader(self, conn: Any, peer_port: int) -> None:
        buf = bytearray(262144)
        conn.settimeout(_POLL)
        index: int | None = None
        try:
            while True:
                try:
                    n = conn.recv_into(buf)
                except ConnectionResetError:  # the sender's abortive close at the end
                    break
                except TimeoutError:
                    if self.stopping.is_set():
                        break
                    continue
                if not n:
                    break
                if index is None:
                    index = self._by_port.get(peer_port, 0)
                now = self.now()
                if self.duration is not None and self.size is None and \
                        now > (self.started_at or 0.0) + self.duration:
                    continue  # past the test's end: not counted
                self.received[index] += n
                if self.first[index] == math.inf:
                    self.first[index] = now
                self.last[index] = now
        finally:
            conn.close()

    def probes(self) -> list[FlowProbe]:
        return list(self._probes)

    def report(self) -> dict[str, Any]:
        flows = []
        for index in range(self.flows):
            info = self.final_info[index]
            start = self.started_at or 0.0
            seconds = max(self.last[index] - start, 1e-9) if self.received[index] else 0.0
            bps = self.received[index] * 8 / seconds if seconds else 0.0
            flows.append({
                "flow": index, "cc": info.get("congestion") or self.cc or "cubic",
                "bytes": self.received[index], "seconds": round(seconds, 6), "bps": bps,
                "retransmits": info.get("total_retrans", 0),
                "rtt_ms": round(float(info.get("rtt", 0.0)) * 1000, 3),
                "cwnd": info.get("snd_cwnd", 0),
            })
        total = sum(f["bytes"] for f in flows)
        seconds = max((f["seconds"] for f in flows), default=0.0)
        lines = ["[ ID] Interval           Transfer     Bitrate         Retr"]
        for f in flows:
            lines.append(f"[{f['flow']:3d}] 0.00-{f['seconds']:<6.2f} sec "
                         f"{_human_bytes(f['bytes']):>10}  {_human_bits(f['bps']):>14}  "
                         f"{f['retransmits']:4d}  ({f['cc']})")
        sum_bps = total * 8 / seconds if seconds else 0.0
        lines.append(f"[SUM] 0.00-{seconds:<6.2f} sec {_human_bytes(total):>10}  "
                     f"{_human_bits(sum_bps):>14}")
        return {"name": self.name, "kind": self.kind, "flows": flows, "bytes": total,
                "bps": sum_bps, "errors": self.errors, "text": "\n".join(lines)}


# ----------------------------------------------------------------------- UDP


class UdpStream(Traffic):
    """iperf -u: datagrams of ``size`` bytes at ``rate`` bits/s (constant bit rate), or,
    with ``on``/``off`` periods, an on/off source (bursts at ``rate``, then silence).
    The receiver reports loss, reordering and RFC 3550's interarrival jitter."""

    kind = "cbr"

    def __init__(self, name: str, src: Host, dst: Host, dst_addr: str, *, port: int = 5202,
                 rate: float = 1e6, size: int = 1000, duration: float | None = 10.0,
                 on: float | None = None, off: float | None = None) -> None:
        super().__init__(name, src, dst, dst_addr, duration=duration)
        if on is not None or off is not None:
            self.kind = "onoff"
        self.port = port
        self.rate = rate
        self.size = max(size, _UDP_HEADER.size)
        self.on = on
        self.off = off
        self.sent = 0
        self.received = 0
        self.out_of_order = 0
        self.highest = -1
        self.jitter = 0.0
        self.delays: list[float] = []
        self._last_transit: float | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        sock = self.dst.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        sock.bind((self.dst_addr, self.port))
        sock.settimeout(_POLL)
        self._ready.set()
        self._spawn(self._sender, f"udp-tx:{self.name}")
        try:
            while True:
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    if self.stopping.is_set() or (self.ended_at is not None
                                                  and self.now() > self.ended_at + 1.0):
                        break
                    continue
                if len(data) < _UDP_HEADER.size:
                    continue
                seq, sent_at = _UDP_HEADER.unpack_from(data)
                now = self.now()
                self.received += 1
                if seq < self.highest:
                    self.out_of_order += 1
                self.highest = max(self.highest, seq)
                transit = now - sent_at
                self.delays.append(transit)
                if self._last_transit is not None:  # RFC 3550 A.8
                    self.jitter += (abs(transit - self._last_transit) - self.jitter) / 16
                self._last_transit = transit
        finally:
            sock.close()

    def _sender(self) -> None:
        self._ready.wait(5.0)
        sock = self.src.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        gap = self.size * 8 / self.rate
        padding = bytes(self.size - _UDP_HEADER.size)
        start = next_at = self.now()
        try:
            while not self.over():
                now = self.now()
                if self.on is not None and self.off is not None:
                    phase = (now - start) % (self.on + self.off)
                    if phase >= self.on:  # silent until the next burst
                        next_at = now + (self.on + self.off - phase)
                        self._sleep_until(next_at)
                        continue
                if now < next_at:
                    self._sleep_until(next_at)
                    continue
                sock.sendto(_UDP_HEADER.pack(self.sent, self.now()) + padding,
                            (self.dst_addr, self.port))
                self.sent += 1
                next_at += gap
        finally:
            self.ended_at = self.now()
            sock.close()

    def _sleep_until(self, when: float) -> None:
        delay = when - self.now()
        if delay > 0:
            self.stopping.wait(min(delay, _POLL))

    def report(self) -> dict[str, Any]:
        lost = max(self.sent - self.received, 0)
        seconds = ((self.ended_at or self.now()) - (self.started_at or 0.0))
        bps = self.received * self.size * 8 / seconds if seconds > 0 else 0.0
        loss = lost / self.sent if self.sent else 0.0
        delay_ms = statistics.mean(self.delays) * 1000 if self.delays else 0.0
        text = (f"[  1] 0.00-{seconds:.2f} sec {_human_bytes(self.received * self.size)} "
                f"{_human_bits(bps)}  {self.jitter * 1000:.3f} ms  "
                f"{lost}/{self.sent} ({loss * 100:.2g}%)")
        return {"name": self.name, "kind": self.kind, "sent": self.sent,
                "received": self.received, "lost": lost, "loss": loss, "bps": bps,
                "jitter_ms": self.jitter * 1000, "mean_delay_ms": delay_ms,
                "out_of_order": self.out_of_order, "errors": self.errors, "text": text}


# ---------------------------------------------------------------------- ping


class Ping(Traffic):
    """ping: one ICMP echo each ``interval`` (``count`` of them, or for ``duration``)."""

    kind = "ping"

    def __init__(self, name: str, src: Host, dst: Host, dst_addr: str, *,
                 interval: float = 1.0, count: int | None = None, size: int = 56,
                 timeout: float = 1.0, duration: float | None = None) -> None:
        super().__init__(name, src, dst, dst_addr, duration=duration)
        self.interval = interval
        self.count = count
        self.size = size
        self.timeout = timeout
        self.sent = 0
        self.rtts: list[float] = []
        self.samples: list[tuple[float, float | None]] = []  # (time, rtt or None if lost)

    def run(self) -> None:
        next_at = self.now()
        while not self.over() and (self.count is None or self.sent < self.count):
            delay = next_at - self.now()
            if delay > 0:
                self.stopping.wait(min(delay, _POLL))
                continue
            self.sent += 1
            at = self.now()
            try:
                rtt: float | None = self.src.ping(self.dst_addr, timeout=self.timeout,
                                                  size=self.size)
            except (TimeoutError, OSError):
                rtt = None
            self.samples.append((at - (self.started_at or 0.0), rtt))
            if rtt is not None:
                self.rtts.append(rtt)
            # like ping: the next one leaves on the interval, never in a catch-up burst
            next_at = max(next_at + self.interval, self.now())

    def report(self) -> dict[str, Any]:
        received = len(self.rtts)
        loss = (self.sent - received) / self.sent if self.sent else 0.0
        ms = [r * 1000 for r in self.rtts]
        stats = {"min": min(ms), "avg": statistics.mean(ms), "max": max(ms),
                 "mdev": statistics.pstdev(ms)} if ms else {}
        text = (f"{self.sent} packets transmitted, {received} received, "
                f"{loss * 100:.0f}% packet loss")
        if stats:
            text += ("\nrtt min/avg/max/mdev = " + "/".join(
                f"{stats[k]:.3f}" for k in ("min", "avg", "max", "mdev")) + " ms")
        return {"name": self.name, "kind": self.kind, "transmitted": self.sent,
                "received": received, "loss": loss, "rtt_ms": stats,
                "samples": [(round(t, 6), None if r is None else round(r * 1000, 3))
                            for t, r in self.samples],
                "errors": self.errors, "text": text}


# ---------------------------------------------------------------------- HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's spelling
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HttpRequests(Traffic):
    """Request/response: the stdlib's http.server on ``dst`` answering GETs with ``size``
    bytes, and http.client on ``src`` asking ``requests`` times (or for ``duration``),
    each over a new connection unless ``keepalive``; reports latency like ab/wrk."""

    kind = "http"

    def __init__(self, name: str, src: Host, dst: Host, dst_addr: str, *, port: int = 8080,
                 size: int = 10000, requests: int | None = None, keepalive: bool = False,
                 duration: float | None = None) -> None:
        super().__init__(name, src, dst, dst_addr, duration=duration)
        self.port = port
        self.size = size
        self.requests = requests
        self.keepalive = keepalive
        self.latencies: list[float] = []
        self.failures = 0
        self.bytes = 0

    def run(self) -> None:
        server = http.server.ThreadingHTTPServer((self.dst_addr, self.port), _Handler,
                                                 bind_and_activate=False)
        server.socket.close()  # the kernel socket it made: ours replaces it
        sock = self.dst.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind((self.dst_addr, self.port))
        sock.listen(64)
        server.socket = sock
        server.server_name, server.server_port = self.dst_addr, self.port
        server.body = bytes(self.size)  # type: ignore[attr-defined]
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL},
                                   daemon=True)
        serving.start()
        try:
            self._client()
        finally:
            server.shutdown()
            server.server_close()

    def _connect(self, address: tuple[str, int], timeout: Any = None,
                 source_address: Any = None) -> Any:
        sock = self.src.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.settimeout(timeout if isinstance(timeout, (int, float)) else 10.0)
        sock.connect(address)
        return sock

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self.over() and (self.requests is None
                                   or len(self.latencies) + self.failures < self.requests):
            if conn is None:
                conn = http.client.HTTPConnection(self.dst_addr, self.port, timeout=10.0)
                conn._create_connection = self._connect  # type: ignore[attr-defined]
            start = self.now()
            try:
                conn.request("GET", "/", headers={} if self.keepalive
                             else {"Connection": "close"})
                response = conn.getresponse()
                self.bytes += len(response.read())
                self.latencies.append(self.now() - start)
            except (OSError, http.client.HTTPException):
                self.failures += 1
                conn.close()
                conn = None
                continue
            if not self.keepalive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def report(self) -> dict[str, Any]:
        ms = sorted(x * 1000 for x in self.latencies)
        latency = {"mean": statistics.mean(ms), "p50": ms[len(ms) // 2],
                   "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))], "max": ms[-1]} if ms else {}
        text = f"{len(ms)} requests, {self.failures} failed"
        if latency:
            text += (f", latency mean {latency['mean']:.2f} ms p50 {latency['p50']:.2f} ms "
                     f"p99 {latency['p99']:.2f} ms")
        return {"name": self.name, "kind": self.kind, "requests": len(ms),
                "failures": self.failures, "bytes": self.bytes, "latency_ms": latency,
                "errors": self.errors, "text": text}


# ------------------------------------------------------------ from a scenario


def make(name: str, spec: dict[str, Any], src: Host, dst: Host, dst_addr: str) -> Traffic:
    """A generator from a scenario file's ``[[traffic]]`` table (``type`` picks it)."""
    kind = spec.get("type", "bulk")
    duration = _opt(spec, "duration", parse_duration)
    if kind == "bulk":
        return BulkTcp(name, src, dst, dst_addr, port=int(spec.get("port", 5201)),
                       flows=int(spec.get("flows", 1)), cc=spec.get("cc"),
                       duration=duration if duration is not None or "size" in spec else 10.0,
                       size=_opt(spec, "size", parse_size))
    if kind in ("cbr", "onoff", "udp"):
        on, off = _opt(spec, "on", parse_duration), _opt(spec, "off", parse_duration)
        if kind == "onoff" and (on is None or off is None):
            raise ValueError(f"traffic {name!r}: onoff needs on = and off = durations")
        return UdpStream(name, src, dst, dst_addr, port=int(spec.get("port", 5202)),
                         rate=parse_rate(spec.get("rate", "1mbit")),
                         size=int(parse_size(spec.get("size", 1000))),
                         duration=duration if duration is not None else 10.0, on=on, off=off)
    if kind == "ping":
        return Ping(name, src, dst, dst_addr,
                    interval=parse_duration(spec.get("interval", "1s")),
                    count=int(spec["count"]) if "count" in spec else None,
                    size=int(spec.get("size", 56)),
                    timeout=parse_duration(spec.get("timeout", "1s")), duration=duration)
    if kind == "http":
        return HttpRequests(name, src, dst, dst_addr, port=int(spec.get("port", 8080)),
                            size=int(parse_size(spec.get("size", 10000))),
                            requests=int(spec["requests"]) if "requests" in spec else None,
                            keepalive=bool(spec.get("keepalive", False)), duration=duration)
    raise ValueError(f"traffic {name!r}: unknown type {kind!r} "
                     "(bulk, cbr, onoff, ping or http)")


def _opt(spec: dict[str, Any], key: str, parse: Any) -> Any:
    return parse(spec[key]) if key in spec else None


def _human_bytes(n: float) -> str:
    for unit in ("Bytes", "KBytes", "MBytes", "GBytes"):
        if n < 1024 or unit == "GBytes":
            return f"{n:.3g} {unit}" if unit != "Bytes" else f"{int(n)} Bytes"
        n /= 1024
    return f"{n:.3g} GBytes"


def _human_bits(bps: float) -> str:
    for unit in ("bits/sec", "Kbits/sec", "Mbits/sec", "Gbits/sec"):
        if bps < 1000 or unit == "Gbits/sec":
            return f"{bps:.3g} {unit}"
        bps /= 1000
    return f"{bps:.3g} Gbits/sec"
