"""Mutation fuzzing shared by the parser tests: only MalformedPacket may escape a parser.

Mutations are drawn from a seeded ``random.Random`` so a failure replays exactly;
they aim at what breaks parsers: truncation, bit flips, length and offset fields
set to boundary values, trailing garbage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from multisock.wire.errors import MalformedPacket

T = TypeVar("T")

BOUNDARY_WORDS = (0, 1, 2, 7, 8, 19, 20, 39, 40, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF)


def mutate(packet: bytes, rng: random.Random) -> bytes:
    """One random damage to ``packet``."""
    data = bytearray(packet)
    kind = rng.randrange(6)
    if kind == 0 or not data:
        return bytes(data[: rng.randrange(len(data) + 1)]) if data else rng.randbytes(4)
    if kind == 1:
        for _ in range(rng.randint(1, 4)):
            bit = rng.randrange(len(data) * 8)
            data[bit >> 3] ^= 1 << (bit & 7)
    elif kind == 2 and len(data) >= 2:
        offset = rng.randrange(len(data) - 1)
        word = rng.choice(BOUNDARY_WORDS + (len(data), len(data) - 1, len(data) + 1))
        data[offset : offset + 2] = (word & 0xFFFF).to_bytes(2, "big")
    elif kind == 3:
        offset = rng.randrange(len(data))
        data[offset] = rng.choice((0, 1, 2, 4, 5, 6, 15, 0x44, 0x46, 0x4F, 0x60, 0xFF))
    elif kind == 4:
        data += rng.randbytes(rng.randint(1, 40))
    else:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def mutants(seeds: Iterable[bytes], count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    pool = list(seeds)
    for i in range(count):
        packet = pool[i % len(pool)]
        # stack two or three mutations now and then to reach deeper states
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3)):
            packet = mutate(packet, rng)
        yield packet


def run_parser(parse: Callable[[memoryview], T], data: bytes) -> T | None:
    """Parse ``data`` through a memoryview; None when refused as malformed."""
    try:
        return parse(memoryview(data))
    except MalformedPacket as error:
        assert error.reason and error.layer
        return None
