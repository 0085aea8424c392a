"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README has no python examples"
    namespace: dict[str, object] = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    result = namespace["result"]
    assert getattr(result, "ok", False)


def test_readme_commands_match_ci() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    bash = re.findall(r"```bash\n(.*?)```", text, re.S)
    setup, tests = bash[0].strip(), bash[1].strip()
    assert setup in ci.splitlines()
    assert tests in ci.splitlines()
