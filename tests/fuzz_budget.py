"""How many examples each fuzzer runs: small in the default suite, as many as asked otherwise.

The default suite keeps every fuzzer at a budget of a few seconds in total. A longer run::

    MULTISOCK_FUZZ_EXAMPLES=200000 python -m pytest -q tests/net/test_fuzz_stack.py tests/net/test_fuzz_input.py

raises every budget to that many examples (never lowers one). The seeded mutation loops stay
reproducible at any budget: the same count replays the same packets.
"""

from __future__ import annotations

import os

ENV = "MULTISOCK_FUZZ_EXAMPLES"


def budget(default: int) -> int:
    """``default`` examples, or the environment's larger number."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return default
    try:
        asked = int(value)
    except ValueError:
        raise ValueError(f"{ENV}={value!r}: expected a whole number of examples") from None
    return max(default, asked)
