"""Initial sequence numbers (RFC 6528) and SYN cookies.

ISN = M + F(4-tuple, secret), where M is a 4 µs clock and F a keyed hash: hard to
predict off-path, monotonic per 4-tuple across incarnations.

A SYN cookie is an ISN that carries what a half-open connection would have held:
a time counter (64 s units, 5 bits), an MSS index (3 bits) and a 24-bit keyed hash
of the 4-tuple, the peer's ISN and the counter. When the final ACK comes back,
``ack - 1`` is checked and the connection is created with no state kept before.

With timestamps, the options a cookie has no room for travel in our SYN-ACK's TSval, which
the peer echoes in every ACK (Linux's cookie_init_timestamp): its low 6 bits carry the
peer's window scale (4 bits, 15 = none) and SACK-permitted (bit 4; bit 5 is Linux's
ECN, which we do not negotiate). The value is rounded down so that our later timestamps
are never older than it. Without timestamps a cookie connection has none of them.

The timestamp clock's offset (RFC 7323 §7.1) is a keyed hash of the address pair, as
Linux's ``secure_tcp_ts_off``: hidden from other hosts, but one clock for every
connection between two addresses, so a new incarnation of a 4-tuple (TIME-WAIT reuse,
either side) carries timestamps newer than the old one's and PAWS keeps working.
"""

from __future__ import annotations

import struct
from typing import Any, Final

MSS_TABLE: Final = (536, 1220, 1300, 1440, 1460, 4312, 8960, 65483)


_keyed: Final[dict[bytes, Any]] = {}  # secret -> a BLAKE2s state with the key already absorbed
_PORTS: Final = struct.Struct("!HH")


def _blake2s() -> Any:
    """BLAKE2s, imported on a stack's first keyed hash (a connection or a listener's
    cookie), not with the module: the row ``import`` + ``patch_all()`` + one host has no use
    for it (docs/performance.md, footprint). hashlib itself would load OpenSSL's libcrypto
    (+3.5 MiB RSS) just to reach the built-in BLAKE2 that hashlib.blake2s is anyway."""
    try:
        from _blake2 import blake2s
    except ImportError:  # pragma: no cover - a CPython built without _blake2
        from hashlib import blake2s
    return blake2s


def _hasher(secret: bytes) -> Any:
    """A fresh keyed BLAKE2s state: a copy of one keyed once per secret (keying absorbs a
    whole 64-byte block, two thirds of the work for a message this short)."""
    base = _keyed.get(secret)
    if base is None:
        if len(_keyed) > 64:  # stacks are few; a bound all the same
            _keyed.clear()
        base = _keyed[secret] = _blake2s()(key=secret[:32], digest_size=8)
    return base.copy()


def _hash(secret: bytes, *parts: object) -> int:
    h = _hasher(secret)
    h.update(repr(parts).encode())
    return int.from_bytes(h.digest(), "big")


def initial_sequence(
    secret: bytes, src: bytes, sport: int, dst: bytes, dport: int, now: float
) -> int:
    h = _hasher(secret)
    h.update(src + dst + _PORTS.pack(sport, dport))
    return (int(now * 250_000) + int.from_bytes(h.digest(), "big")) & 0xFFFFFFFF


_TS_OFFSETS: Final[dict[tuple[bytes, bytes, bytes], int]] = {}  # (secret, src, dst) -> offset


def ts_offset(secret: bytes, src: bytes, dst: bytes) -> int:
    """Our timestamp clock's offset towards ``dst`` from ``src`` (see the module text)."""
    key = (secret, src, dst)
    offset = _TS_OFFSETS.get(key)
    if offset is None:
        if len(_TS_OFFSETS) >= 4096:  # peers are few in practice; a bound all the same
            _TS_OFFSETS.clear()
        h = _hasher(secret)
        h.update(b"ts" + src + dst)
        offset = _TS_OFFSETS[key] = int.from_bytes(h.digest()[:4], "big")
    return offset


def make_cookie(
    secret: bytes,
    src: bytes,
    sport: int,
    dst: bytes,
    dport: int,
    peer_isn: int,
    mss: int,
    now: float,
) -> int:
    counter = int(now // 64) & 0x1F
    index = max(i for i, value in enumerate(MSS_TABLE) if value <= max(mss, MSS_TABLE[0]))
    mac = _hash(secret, src, sport, dst, dport, peer_isn, counter) & 0xFFFFFF
    return (counter << 27) | (index << 24) | mac


def check_cookie(
    secret: bytes,
    src: bytes,
    sport: int,
    dst: bytes,
    dport: int,
    peer_isn: int,
    cookie: int,
    now: float,
) -> int | None:
    """The MSS the cookie encodes, or None when it is forged or older than ~2 minutes."""
    counter = (cookie >> 27) & 0x1F
    current = int(now // 64) & 0x1F
    if (current - counter) & 0x1F > 2:
        return None
    mac = _hash(secret, src, sport, dst, dport, peer_isn, counter) & 0xFFFFFF
    if mac != cookie & 0xFFFFFF:
        return None
    return MSS_TABLE[(cookie >> 24) & 0x7]


_TS_BITS: Final = 6  # low TSval bits that carry options
_TS_NO_WSCALE: Final = 0xF
_TS_SACK: Final = 1 << 4


def cookie_timestamp(ts_now: int, wscale: int | None, sack: bool) -> int:
    """The TSval of a cookie SYN-ACK: ``ts_now`` with its low bits replaced by the peer's
    window scale (None: not offered) and SACK-permitted, never later than ``ts_now``."""
    options = _TS_NO_WSCALE if wscale is None else min(wscale, 14)
    if sack:
        options |= _TS_SACK
    ts = ((ts_now >> _TS_BITS) << _TS_BITS) | options
    if ts > ts_now:
        ts -= 1 << _TS_BITS
    return ts & 0xFFFFFFFF


def cookie_options(ts_ecr: int) -> tuple[int | None, bool]:
    """The peer's window scale (None: none) and SACK-permitted, from the echo of a cookie
    SYN-ACK's TSval (``cookie_timestamp``)."""
    wscale = ts_ecr & _TS_NO_WSCALE
    return (None if wscale == _TS_NO_WSCALE else wscale), bool(ts_ecr & _TS_SACK)
