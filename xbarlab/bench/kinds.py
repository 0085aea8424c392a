"""Instrument kinds: the built-in drivers and those a lab's package adds as plugins.

A package adds a kind through the entry-point group ``xbarlab.instruments``: the entry point's
name is the ``driver:`` a bench config uses, its object an `InstrumentKind`::

    # the lab's pyproject.toml
    [project.entry-points."xbarlab.instruments"]
    labsmu = "labdrivers.xbarlab:KIND"

    # labdrivers/xbarlab.py
    from xbarlab.bench.kinds import DriverContext, InstrumentKind

    def make(ctx: DriverContext) -> LabSmu:        # a `SourceMeter` (see xbarlab.bench.roles)
        return LabSmu(ctx.transport, ctx.name, v_max=ctx.v_max)

    KIND = InstrumentKind(role="smu", driver=make, channels=("",))

This module only describes kinds and finds them (``importlib.metadata``); it imports no driver.
Building the driver from a kind is `xbarlab.drivers.plugins`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any, Literal

GROUP = "xbarlab.instruments"
"""The entry-point group of instrument plugins."""

Role = Literal["smu", "matrix", "board", "pulse"]
Link = Literal["visa", "serial", "none"]


@dataclass(frozen=True)
class BuiltinKind:
    """What the bench config needs to know of a built-in driver."""

    role: Role
    channels: tuple[str, ...] = ("",)


BUILTIN: dict[str, BuiltinKind] = {
    "keithley2450": BuiltinKind("smu"),
    "keithley2600": BuiltinKind("smu", ("a", "b")),
    "keysight_b2900": BuiltinKind("smu", ("1", "2")),
    "keithley707b": BuiltinKind("matrix"),
    "serial_board": BuiltinKind("board"),
    "keysight33500": BuiltinKind("pulse"),
}


@dataclass(frozen=True)
class DriverContext:
    """What a plugin's driver factory gets to build one driver object.

    `transport` is the opened-on-connect link xbarlab made for the kind's `link` (a
    ``xbarlab.drivers.transports.Transport``: VISA or serial), or None for ``link="none"``
    (the driver then makes its own link in ``connect`` and closes it in ``close``).
    """

    name: str  # label: instrument name, ".channel" appended for multi-channel kinds
    channel: str
    address: str
    visa_library: str
    timeout: float  # s
    transport: Any
    v_max: float  # V, the bench's largest |V| on any terminal
    compliance: float  # A, the bench's current limit
    shape: tuple[int, int]  # (rows, cols) of the array
    limits: Any = None  # xbarlab.drivers.limits.SmuLimits: what an SMU may ever apply


@dataclass(frozen=True)
class InstrumentKind:
    """An instrument kind a plugin adds.

    - `role`: which bench role its driver plays (``smu``: `SourceMeter`, ``matrix``:
      `SwitchMatrix`, ``board``: `Board`, see `xbarlab.bench.roles`).
    - `driver`: builds the driver object from a `DriverContext`; it must do no I/O.
    - `channels`: channel names a role reference may use (``"smu.a"``); ``("",)`` for one.
    - `link`: which transport xbarlab makes for it (``visa``, ``serial``, or ``none``).
    - `emulator`: optional, builds the emulated instrument for `xbarlab emulate`
      (called as ``emulator(name=..., load=..., serial=...)``).
    """

    role: Role
    driver: Callable[[DriverContext], Any]
    channels: tuple[str, ...] = ("",)
    link: Link = "visa"
    emulator: Callable[..., Any] | None = None
    description: str = ""
    source: str = field(default="", compare=False)  # "package:object", filled in by discovery


class PluginError(ValueError):
    """A plugin that cannot be loaded or is not an `InstrumentKind`."""


@cache
def plugin_kinds() -> dict[str, InstrumentKind | PluginError]:
    """Every installed plugin kind by name (a broken plugin maps to its `PluginError`, so one
    broken package does not hide the others). Cached: `refresh_plugins()` looks again."""
    out: dict[str, InstrumentKind | PluginError] = {}
    for ep in metadata.entry_points(group=GROUP):
        if ep.name in BUILTIN:
            out[ep.name] = PluginError(f"plugin {ep.value!r} uses the name of the built-in "
                                       f"driver {ep.name!r}; rename its entry point")
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a lab's package may fail in any way on import
            out[ep.name] = PluginError(f"instrument plugin {ep.name!r} ({ep.value}) failed to "
                                       f"load: {type(exc).__name__}: {exc}")
            continue
        if not isinstance(obj, InstrumentKind):
            out[ep.name] = PluginError(f"instrument plugin {ep.name!r} ({ep.value}) is a "
                                       f"{type(obj).__name__}, not an InstrumentKind")
            continue
        if not obj.channels:
            out[ep.name] = PluginError(f"instrument plugin {ep.name!r}: no channels")
            continue
        out[ep.name] = InstrumentKind(obj.role, obj.driver, tuple(obj.channels), obj.link,
                                      obj.emulator, obj.description, ep.value)
    return out


def refresh_plugins() -> None:
    """Forget the cached plugin list (after installing a package, or in tests)."""
    plugin_kinds.cache_clear()


def plugin_kind(name: str) -> InstrumentKind:
    """The plugin kind `name`; `PluginError` with a clear line if none is installed."""
    found = plugin_kinds().get(name)
    if isinstance(found, InstrumentKind):
        return found
    if isinstance(found, PluginError):
        raise found
    raise PluginError(unknown_driver_message(name))


def unknown_driver_message(name: str) -> str:
    """One line naming the drivers that are known."""
    plugins = sorted(k for k, v in plugin_kinds().items() if isinstance(v, InstrumentKind))
    return (f"unknown driver {name!r}: built-in drivers are {', '.join(sorted(BUILTIN))}; "
            f"plugins installed (entry-point group {GROUP}): "
            f"{', '.join(plugins) if plugins else 'none'}")


def role_of(driver: str) -> Role:
    """The role a driver name plays (built-in or plugin)."""
    return BUILTIN[driver].role if driver in BUILTIN else plugin_kind(driver).role


def channels_of(driver: str) -> tuple[str, ...]:
    """The channel names of a driver (built-in or plugin)."""
    return BUILTIN[driver].channels if driver in BUILTIN else plugin_kind(driver).channels


def check_driver(name: str) -> str:
    """`name` if it is a built-in driver or an installed plugin kind, else `PluginError`."""
    if name not in BUILTIN:
        plugin_kind(name)
    return name
