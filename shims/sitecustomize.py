"""Zero-code activation from a checkout: ``PYTHONPATH=shims MULTISOCK=1 python app.py``.

Runs at interpreter start-up (Python imports ``sitecustomize`` from the path). An installed
multisock does the same through ``multisock-activate.pth`` in site-packages; both call
``multisock._activate.main()``, which activates once per process and stops the program
(exit status 2, one message) on any bad ``MULTISOCK*`` setting instead of letting it run on
kernel sockets. Python subprocesses inherit the environment, so they are activated too
(``docs/activation.md``: what children of a TUN-attached process get). Any other
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


def _activate() -> None:
    try:
        from multisock._activate import main
    except ImportError as exc:
        sys.stderr.write(f"multisock: MULTISOCK is set but multisock cannot be imported ({exc}); "
                         "put the checkout on PYTHONPATH or install it\n")
        sys.stderr.flush()
        os._exit(2)
    main()


if os.environ.get("MULTISOCK", "") not in ("", "0"):
    _activate()
_chain_to_next_sitecustomize()
