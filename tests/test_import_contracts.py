"""Dependency direction of the package, checked on the source with `ast`.

import-linter cannot see drivers/ and protocols/ as xbarlab.drivers / xbarlab.protocols (they are
mapped with setuptools package-dir), so the contracts are enforced here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"xbarlab": ROOT / "xbarlab", "xbarlab.drivers": ROOT / "drivers",
           "xbarlab.protocols": ROOT / "protocols"}

# Highest first. A module may import its own package and lower layers only.
LAYERS: list[set[str]] = [
    {"cli"},
    {"sweep", "studies"},
    {"network"},
    {"sessions", "nn", "analysis", "watch"},
    {"protocols", "drivers"},
    {"engine", "sim", "bench", "log"},
    {"protocol_configs"},
    {"config"},
    {"limits"},
    {"cells"},
    {"messages", "documents", "biasing", "interrupts", "host_locks"},
    {"crossbar", "units", "devnull"},
]
# Third-party packages that only one part of xbarlab may import.
OWNERS = {"torch": {"nn"}, "h5py": {"log"}, "pyvisa": {"drivers"}, "serial": {"drivers"},
          "pyarc2": {"bench"}, "bokeh": {"watch"}, "pymeasure": {"drivers"}}
# Lower layers that some modules must not use although the layering would allow it:
# protocols never know the backend; drivers are pure instrument code (emulators may use sim).
FORBIDDEN = {
    "xbarlab.protocols": {"sim", "bench", "log", "engine"},
    "xbarlab.drivers": {"sim", "engine", "log"},
    "xbarlab.drivers.emulators": {"engine", "log"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def _part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 and bits[0] == "xbarlab" else None


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imports(module: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                out.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.append(node.module)
    return out


MODULES = _modules()


def test_every_part_has_a_layer() -> None:
    parts = {_part(m) for m in MODULES} - {None}
    unknown = [p for p in parts if not any(p in layer for layer in LAYERS)]
    assert not unknown, f"add {unknown} to LAYERS in this test"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependency_direction(module: str) -> None:
    own = _part(module)
    problems = []
    for target in _imports(module, MODULES[module]):
        top = target.split(".")[0]
        if top in OWNERS and own not in OWNERS[top]:
            problems.append(f"imports {top}, which only {sorted(OWNERS[top])} may import")
        other = _part(target)
        if own is None or other is None or other == own:
            continue
        rule = max((k for k in FORBIDDEN if module == k or module.startswith(k + ".")),
                   key=len, default=None)
        if rule and other in FORBIDDEN[rule]:
            problems.append(f"imports {target}: '{other}' is off limits for {rule}")
        if _layer(other) <= _layer(own):
            problems.append(f"imports {target} (layer of '{other}' is not below '{own}')")
    assert not problems, f"{module}: " + "; ".join(problems)
