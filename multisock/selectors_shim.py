"""A selector class for the patched ``selectors`` module (read and write readiness exact)."""

from __future__ import annotations

import selectors
from typing import Any

from multisock import select as mselect


class MultisockSelector(selectors.SelectSelector):
    """``SelectSelector`` whose wait understands multisock sockets mixed with real fds."""

    def _select(self, r: Any, w: Any, _: Any, timeout: float | None = None) -> Any:
        ready_r, ready_w = mselect.wait(r, w, timeout)
        return ready_r, ready_w, []
