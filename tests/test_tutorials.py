"""The tutorials in docs/tutorials/ run top to bottom, so they never rot.

Each tutorial's ```python blocks are executed in order, in one namespace, in a fresh
interpreter per tutorial (a tutorial that patches ``socket`` or starts daemons cannot leak
into another one or into this process). The blocks ``assert`` what their prose claims, so
a change of behaviour fails here rather than silently contradicting the text.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "docs" / "tutorials"
FILES = sorted(TUTORIALS.glob("[0-9]*.md"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

# Runs in the child: exec every block in one namespace, naming the block that failed.
_RUNNER = """
import re, sys, os
path = sys.argv[1]
text = open(path, encoding="utf-8").read()
blocks = re.findall(r"^```python\\n(.*?)^```", text, re.S | re.M)
namespace = {"__name__": "__tutorial__"}
os.chdir(sys.argv[2])
for number, code in enumerate(blocks, 1):
    try:
        exec(compile(code, f"{os.path.basename(path)}[block {number}]", "exec"), namespace)
    except BaseException:
        import traceback
        print(f"block {number} failed:\\n{code}", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)  # a thread the tutorial left waiting must not hang the exit
print(f"ran {len(blocks)} blocks")
"""


def blocks_of(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


def test_the_learning_path_is_all_there() -> None:
    names = [f.name for f in FILES]
    assert [n.split("-")[0] for n in names] == ["1", "2", "3", "4", "5"], names
    index = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"({name})" in index, f"docs/tutorials/README.md does not link {name}"
    for path in FILES:
        assert blocks_of(path), f"{path.name} has no python block to run"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_tutorial_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _RUNNER, str(path), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{path.name}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert f"ran {len(blocks_of(path))} blocks" in result.stdout
