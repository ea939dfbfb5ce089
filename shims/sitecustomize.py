"""Zero-code activation: ``PYTHONPATH=shims MULTISOCK=1 python app.py``.

Runs at interpreter start-up (Python imports ``sitecustomize`` from the path).
With ``MULTISOCK=1`` it builds the virtual host from the ``MULTISOCK_*``
variables and patches before the application imports anything. Python
subprocesses inherit the environment, so they are activated too. Any other
``sitecustomize`` further along the path still runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _chain_to_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.exists(candidate):
            spec = importlib.util.spec_from_file_location("_next_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            return


if os.environ.get("MULTISOCK", "") not in ("", "0"):
    from multisock.cli import activate, options_from_env

    activate(options_from_env(dict(os.environ)))
_chain_to_next_sitecustomize()
