"""Drivers of plugin instrument kinds (`xbarlab.bench.kinds`): their link and their object.

`drivers/registry.py` calls `plugin_transport` and `make_plugin_driver` for any driver name that
is not built in. The object a plugin's factory returns must implement its role's protocol
(`SourceMeter`, `SwitchMatrix` or `Board` of `xbarlab.bench.roles`); anything else is refused
here, before the bench uses it, with one line naming the missing methods.
"""

from __future__ import annotations

from typing import Any

from xbarlab.bench.config import InstrumentConfig
from xbarlab.bench.kinds import DriverContext, InstrumentKind, PluginError, plugin_kind
from xbarlab.bench.roles import Board, SourceMeter, SwitchMatrix
from xbarlab.drivers.limits import SmuLimits
from xbarlab.drivers.transports import SerialTransport, Transport, VisaTransport

ROLE_PROTOCOLS: dict[str, type] = {"smu": SourceMeter, "matrix": SwitchMatrix, "board": Board}


class NoLink:
    """The transport of a ``link="none"`` kind: the driver owns its link; closing the bench
    closes the driver (`bind`)."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._driver: Any = None

    def bind(self, driver: Any) -> None:
        self._driver = driver

    def open(self) -> None:
        return None

    def write(self, line: str) -> None:  # pragma: no cover - never used by such drivers
        raise PluginError(f"{self.address}: this instrument's driver owns its link")

    def query(self, line: str) -> str:  # pragma: no cover
        raise PluginError(f"{self.address}: this instrument's driver owns its link")

    def query_block(self, line: str) -> bytes:  # pragma: no cover
        raise PluginError(f"{self.address}: this instrument's driver owns its link")

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()

    def reopen(self) -> None:
        return None


def plugin_transport(cfg: InstrumentConfig) -> Transport:
    """The link a plugin kind asks for (`InstrumentKind.link`)."""
    kind = plugin_kind(cfg.driver)
    if kind.link == "serial":
        return SerialTransport(cfg.address, baudrate=cfg.baudrate, timeout=cfg.timeout)
    if kind.link == "none":
        return NoLink(cfg.address, cfg.timeout)
    return VisaTransport(cfg.address, visa_library=cfg.visa_library, timeout=cfg.timeout)


def missing_methods(obj: object, role: str) -> list[str]:
    """Members of the role's protocol that `obj` lacks (empty: it implements the role)."""
    proto = ROLE_PROTOCOLS[role]
    names = [n for n in dir(proto) if not n.startswith("_")]
    names += [n for n in getattr(proto, "__annotations__", {}) if not n.startswith("_")]
    return sorted({n for n in names if not hasattr(obj, n)})


def make_plugin_driver(name: str, cfg: InstrumentConfig, transport: Transport, channel: str,
                       shape: tuple[int, int], v_max: float, limits: SmuLimits) -> Any:
    """The driver object of plugin kind ``cfg.driver`` for instrument `name` (channel
    `channel`), checked against its role's protocol."""
    kind: InstrumentKind = plugin_kind(cfg.driver)
    if channel not in kind.channels:
        raise PluginError(f"{name}: channel {channel!r} of {cfg.driver} must be one of "
                          f"{list(kind.channels)}")
    label = f"{name}.{channel}" if channel else name
    ctx = DriverContext(name=label, channel=channel, address=cfg.address,
                        visa_library=cfg.visa_library, timeout=cfg.timeout,
                        transport=None if isinstance(transport, NoLink) else transport,
                        v_max=v_max, compliance=limits.i_max, shape=shape, limits=limits)
    driver = kind.driver(ctx)
    missing = missing_methods(driver, kind.role)
    if missing:
        raise PluginError(f"{name}: driver of plugin {cfg.driver!r} ({kind.source}) is not a "
                          f"{ROLE_PROTOCOLS[kind.role].__name__}: it lacks "
                          f"{', '.join(missing)}")
    if isinstance(transport, NoLink):
        transport.bind(driver)
    return driver


def first_channel(driver: str) -> str:
    """The channel `bench check` uses to query a plugin instrument's identity."""
    return plugin_kind(driver).channels[0]
