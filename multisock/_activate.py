"""Zero-code activation's one entry point, for ``multisock-activate.pth`` and the shims.

The ``.pth`` file that a wheel installs into site-packages and ``shims/sitecustomize.py``
(``PYTHONPATH=shims`` from a checkout) both call ``main()`` at interpreter start-up. It
activates at most once per process, so an editable install with the shims on the path as
well builds one host, not two. It fails closed: a bad ``MULTISOCK*`` setting, or a host
that cannot be built as asked, ends the process (exit status 2) with one message before the
program's code runs. ``site`` would otherwise print the error and carry on, leaving the
program on kernel sockets while its author believes them impaired.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

EXIT_STATUS = 2


def is_active() -> bool:
    """True once the environment activated multisock in this process."""
    from multisock import runtime

    return runtime.env_activated


def main(env: Mapping[str, str] | None = None) -> None:
    """Activate from ``MULTISOCK=1`` and the ``MULTISOCK_*`` variables, once."""
    if is_active():
        return
    environ = os.environ if env is None else env
    try:
        from multisock.launch import ActivationError, activate
        from multisock.options import OptionError, enabled, from_env

        if not enabled(environ):
            return
        options = from_env(environ)
        from multisock import runtime

        runtime.env_activated = True
        activate(options)
    except (OptionError, ActivationError) as exc:
        _refuse(str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure here must stop the program
        _refuse(f"activation failed: {type(exc).__name__}: {exc}")


def _refuse(message: str) -> None:
    sys.stderr.write(f"multisock: {message}\n"
                     "multisock: not starting the program on kernel sockets; fix the setting, "
                     "or unset MULTISOCK to run without multisock\n")
    sys.stderr.flush()
    os._exit(EXIT_STATUS)
