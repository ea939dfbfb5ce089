"""A libpcap ("classic" format) writer: what Wireshark and tcpdump open.

Links carry raw IP packets, so the link type is ``LINKTYPE_RAW`` (101): no
fake Ethernet header is invented.
"""

from __future__ import annotations

import struct
import threading
from typing import IO, Any

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
MAGIC = 0xA1B2C3D4


class PcapWriter:
    def __init__(self, target: str | IO[bytes], linktype: int = LINKTYPE_RAW,
                 snaplen: int = 262144) -> None:
        self._owned = isinstance(target, str)
        # the writer owns the file for its whole life: no context manager can span that
        self._file: IO[bytes] = open(target, "wb") if isinstance(target, str) else target  # noqa: SIM115
        self.snaplen = snaplen
        self.linktype = linktype
        self._lock = threading.Lock()
        self.packets = 0
        self._file.write(_GLOBAL.pack(MAGIC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, packet: bytes | memoryview, timestamp: float) -> None:
        length = len(packet)
        caplen = min(length, self.snaplen)
        seconds = int(timestamp)
        micros = int(round((timestamp - seconds) * 1e6))
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        with self._lock:
            if self._file.closed:
                return
            self._file.write(_RECORD.pack(seconds, micros, caplen, length))
            self._file.write(packet[:caplen])
            self.packets += 1

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.flush()
            if self._owned:
                self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
