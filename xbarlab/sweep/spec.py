"""Sweep files: which command runs on which base config, over which axes, and their points.

A sweep file (YAML) names the command, the base config (a path relative to the sweep file, or
inline), and the axes over config fields by their dotted paths:

- `grid`: every combination of the listed values (a product),
- `zip`: lists of equal length taken side by side (one axis),
- `points`: an explicit list of overrides (one axis),
- `seeds`: a list of seeds or a count; each sets every field of `seed_fields`.

The axes combine as a product: grid x zip x points x seeds. Every point is the base config with
its overrides applied; its id is a stable hash of the command and the resolved config, so a
rerun of the same sweep finds the same points (and a changed base gives new ones).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from xbarlab.config import ConfigError, _Strict, load_yaml, validate_config

__all__ = ["Point", "SweepFile", "expand", "load_sweep", "point_id", "set_path", "validate_config"]


class SweepFile(_Strict):
    """The contents of a sweep file."""

    command: str = Field(description="what each point runs, e.g. 'run write_verify_array'")
    base: str | dict[str, Any] = Field(
        default_factory=dict,
        description="base config: a file (relative to the sweep file) or the config inline",
    )
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="product of values")
    zip: dict[str, list[Any]] | list[dict[str, list[Any]]] = Field(
        default_factory=dict,
        description="equal-length lists taken side by side (a list of such groups: one axis each)",
    )
    points: list[dict[str, Any]] = Field(default_factory=list, description="explicit overrides")
    seeds: list[int] | int | None = Field(None, description="seeds (a list) or how many (0..n-1)")
    seed_fields: list[str] = Field(
        default_factory=lambda: ["seed", "sim.seed"],
        description="the config fields a seed sets",
    )

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in v.items():
            if not values:
                raise ValueError(f"axis '{path}' has no values")
        return v

    @property
    def zip_groups(self) -> list[dict[str, list[Any]]]:
        return [self.zip] if isinstance(self.zip, dict) else self.zip

    @model_validator(mode="after")
    def _zip_lengths(self) -> SweepFile:
        for group in self.zip_groups:
            lengths = {len(v) for v in group.values()}
            if len(lengths) > 1:
                raise ValueError(f"zip lists differ in length: {sorted(lengths)}")
            if lengths == {0}:
                raise ValueError("zip lists are empty")
        if isinstance(self.seeds, int) and self.seeds < 1:
            raise ValueError("seeds must be a positive count or a list")
        return self


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a sweep: its overrides, the config they give, and its stable id."""

    index: int
    point_id: str
    command: str
    overrides: dict[str, Any]
    config: dict[str, Any]  # the resolved config, as plain data (validated)


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted `path` in the nested mapping `tree` (creating mappings on the way)."""
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def point_id(command: str, config: Mapping[str, Any]) -> str:
    """A stable short hash of a point's command and resolved config."""
    text = json.dumps({"command": command, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _combinations(sweep: SweepFile) -> list[dict[str, Any]]:
    axes: list[list[dict[str, Any]]] = []
    if sweep.grid:
        keys = list(sweep.grid)
        axes.append([dict(zip(keys, vals, strict=True))
                     for vals in itertools.product(*sweep.grid.values())])
    for group in sweep.zip_groups:
        if group:
            keys = list(group)
            axes.append([dict(zip(keys, vals, strict=True))
                         for vals in zip(*group.values(), strict=True)])
    if sweep.points:
        axes.append([dict(p) for p in sweep.points])
    if sweep.seeds is not None:
        seeds = range(sweep.seeds) if isinstance(sweep.seeds, int) else sweep.seeds
        axes.append([{f: s for f in sweep.seed_fields} for s in seeds])
    combos = []
    for parts in itertools.product(*axes):
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part)
        combos.append(merged)
    return combos


Validator = Callable[[dict[str, Any]], dict[str, Any]]
"""Checks a resolved config; returns it as plain data, or raises `ConfigError`."""


def expand(sweep: SweepFile, base: dict[str, Any], validate: Validator) -> list[Point]:
    """Every point of `sweep`, each validated; `ConfigError` with one line per bad point."""
    points: list[Point] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, overrides in enumerate(_combinations(sweep)):
        cfg = deepcopy(base)
        for path, value in overrides.items():
            set_path(cfg, path, value)
        label = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(base)"
        try:
            resolved = validate(cfg)
        except ConfigError as exc:
            problems += [
                f"point {i} ({label}): "
                + line.split(": ", 1)[-1].replace("Extra inputs are not permitted", "no such field")
                for line in str(exc).splitlines()
            ]
            continue
        pid = point_id(sweep.command, resolved)
        if pid in seen:
            problems.append(f"point {i} ({label}) is the same run as point {seen[pid]}")
            continue
        seen[pid] = i
        points.append(Point(i, pid, sweep.command, overrides, resolved))
    if problems:
        raise ConfigError("\n".join(problems))
    return points


def load_sweep(path: str | Path) -> tuple[SweepFile, dict[str, Any]]:
    """Read a sweep file and its base config (as plain data); `ConfigError` on any problem."""
    p = Path(path)
    data = load_yaml(p)
    if data is None:
        raise ConfigError(f"{p}: empty sweep file (it needs at least `command:`)")
    sweep = validate_config(data, SweepFile, str(p))
    if isinstance(sweep.base, str):
        base_path = (p.parent / sweep.base) if not Path(sweep.base).is_absolute() else Path(
            sweep.base)
        base = load_yaml(base_path)
        if base is None:
            base = {}
        if not isinstance(base, dict):
            raise ConfigError(f"{base_path}: the base config must be a mapping")
        base = _absolute_paths(base, base_path.parent)
    else:
        base = deepcopy(sweep.base)
    return sweep, base


def _absolute_paths(base: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Make a base config's file references (`bench:`) absolute, so points run anywhere."""
    bench = base.get("bench")
    if isinstance(bench, str) and not Path(bench).is_absolute():
        base = {**base, "bench": str((folder / bench).resolve())}
    return base


def describe_axes(points: Sequence[Point]) -> dict[str, list[Any]]:
    """The distinct values each overridden path takes, in first-seen order."""
    out: dict[str, list[Any]] = {}
    for p in points:
        for k, v in p.overrides.items():
            vals = out.setdefault(k, [])
            if v not in vals:
                vals.append(v)
    return out
