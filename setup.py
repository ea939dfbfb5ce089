"""Installs ``multisock-activate.pth`` into site-packages, beside the ``multisock`` package.

Everything else is in pyproject.toml. Python runs each ``import`` line of a ``.pth`` file in
site-packages at start-up; this one checks ``MULTISOCK`` itself, so a process without it
pays one dictionary lookup and imports nothing, and a process with ``MULTISOCK=1`` is
activated before its own code runs (``multisock/_activate.py``), like the checkout's
``PYTHONPATH=shims``. setuptools only puts packages in the wheel, so ``build_py`` writes the
file at the root of the build tree (a wheel's root is site-packages). An editable install
builds nothing there: its wheel is assembled from the directory that setuptools points the
``install`` command at, so the file goes there too.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "multisock-activate.pth"
PTH_LINE = ('import os; os.environ.get("MULTISOCK", "") in ("", "0") or '
            '__import__("multisock._activate")._activate.main()\n')


class BuildPyWithActivation(build_py):
    """build_py that also writes the activation .pth at the root of what gets installed."""

    def run(self) -> None:
        super().run()
        self._write(os.path.join(self.build_lib, PTH_NAME))
        if getattr(self, "editable_mode", False):
            root = self.get_finalized_command("install").install_lib
            if root and any(name.endswith(".dist-info") for name in os.listdir(root)):
                self._write(os.path.join(root, PTH_NAME))
            else:
                self.warn(f"{PTH_NAME} not installed (editable wheel layout not recognised): "
                          "MULTISOCK=1 needs PYTHONPATH=shims in this install")

    def _write(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": BuildPyWithActivation})
