"""TcpConfig's field list is the same in both builds: compiled by mypyc, the class keeps no
annotations and lists its attributes (``__hash__`` among them) in ``__mypyc_attrs__``."""

from __future__ import annotations

import pytest

from multisock.stack.tcp.config import TcpConfig


def test_repr_and_keywords_cover_exactly_the_tunables() -> None:
    text = repr(TcpConfig(msl=1.0))
    assert text.startswith("TcpConfig(rto_min=0.2, ") and text.endswith("log_transitions=False)")
    assert "__" not in text and "msl=1.0" in text
    assert TcpConfig(msl=1.0) == TcpConfig(msl=1.0) != TcpConfig()
    with pytest.raises(TypeError):
        TcpConfig(__hash__=None)
