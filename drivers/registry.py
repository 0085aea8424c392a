"""Build the bench from a `BenchConfig`: transports, drivers, identities, `BenchCrossbar`.

This is the only place that maps driver names to driver classes; `xbarlab.bench` never imports
drivers. Identities are checked for every instrument before any other command is sent to any
of them: a mismatch closes every link and raises `IdentityMismatch`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xbarlab.bench.config import BenchConfig, InstrumentConfig
from xbarlab.bench.crossbar import BenchCrossbar, Wiring
from xbarlab.bench.watchdog import Supervisor
from xbarlab.drivers.base import Instrument, InstrumentError, SmuLimits
from xbarlab.drivers.keithley707b import Keithley707B
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.serial_board import SerialBoard
from xbarlab.drivers.transports import SerialTransport, Transport, TransportError, VisaTransport

TransportFactory = Callable[[str, InstrumentConfig], Transport]


def default_transport(name: str, cfg: InstrumentConfig) -> Transport:
    """VISA for everything but the serial board (pyserial)."""
    if cfg.driver == "serial_board":
        return SerialTransport(cfg.address, baudrate=cfg.baudrate, timeout=cfg.timeout)
    return VisaTransport(cfg.address, visa_library=cfg.visa_library, timeout=cfg.timeout)


def make_driver(name: str, cfg: InstrumentConfig, transport: Transport, channel: str,
                shape: tuple[int, int], v_max: float = 5.0,
                limits: SmuLimits | None = None) -> Instrument:
    """One driver object for instrument `name` (channel `channel` where it has several). SMU
    drivers hold `limits` (the bench limits) and refuse anything beyond them."""
    label = f"{name}.{channel}" if channel else name
    if cfg.driver == "keithley2450":
        return Keithley2450(transport, label, limits)
    if cfg.driver == "keithley2600":
        return Keithley2600Channel(transport, channel, label, limits)
    if cfg.driver == "keysight_b2900":
        return KeysightB2900Channel(transport, int(channel), label, limits)
    if cfg.driver == "keithley707b":
        return Keithley707B(transport, label)
    if cfg.driver == "serial_board":
        return SerialBoard(transport, shape, label, v_max=v_max)
    raise ValueError(f"unknown driver {cfg.driver!r}")  # pragma: no cover - Literal-checked


@dataclass
class OpenBench:
    """An opened bench: the crossbar backend, the drivers by role, the links."""

    crossbar: BenchCrossbar
    drivers: dict[str, Instrument]  # role -> driver
    transports: dict[str, Transport]  # instrument -> link
    identities: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    supervisor: Supervisor | None = None  # the process that makes the bench safe if we die

    def close(self) -> None:
        """Safe state, then close every link (even if the safe state failed). Idempotent: a
        second call does nothing (the safe state would otherwise reopen the closed links)."""
        if self.closed:
            return
        self.closed = True
        safe = False
        try:
            self.crossbar.safe_state()
            safe = True
        finally:
            for t in self.transports.values():
                with contextlib.suppress(Exception):
                    t.close()
            if self.supervisor is not None:  # unsafe: it tries once more on its own links
                self.supervisor.stop(safe=safe)

    def __enter__(self) -> OpenBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _role_refs(config: BenchConfig) -> dict[str, str]:
    r = config.roles
    refs = {"drive": r.drive, "sense": r.sense, "bias_row": r.bias_row,
            "bias_col": r.bias_col, "matrix": r.matrix, "board": r.board}
    return {k: v for k, v in refs.items() if v is not None}


RESCUE = "xbarlab.drivers.rescue:rescue_bench"
"""What the safety supervisor runs when the session dies (`xbarlab.bench.watchdog`)."""


def open_bench(config: BenchConfig, transport_factory: TransportFactory = default_transport,
               supervise: bool | None = None) -> OpenBench:
    """Open every link, check every identity, and build the `BenchCrossbar` (not configured:
    configuration happens before its first operation).

    `supervise` (default: whenever the links are the real ones, `default_transport`) starts
    the safety supervisor process first; it is armed before this returns, and the crossbar
    refuses to operate if it is gone."""
    shape = (config.rows, config.cols)
    refs = _role_refs(config)
    used = {ref.partition(".")[0] for ref in refs.values()}
    if supervise is None:
        supervise = transport_factory is default_transport
    supervisor = (Supervisor(config.model_dump(mode="json"), RESCUE).start() if supervise
                  else None)
    transports: dict[str, Transport] = {}
    drivers: dict[str, Instrument] = {}
    identities: dict[str, str] = {}
    try:
        transports.update({name: transport_factory(name, config.instruments[name])
                           for name in used})
        for role, ref in refs.items():
            inst, _, ch = ref.partition(".")
            drivers[role] = make_driver(inst, config.instruments[inst], transports[inst], ch,
                                        shape, config.limits.v_max,
                                        SmuLimits.from_bench(config.limits))
        for name in sorted(used):
            # one identity check per instrument (channels share the link)
            first = next(d for role, d in drivers.items() if refs[role].partition(".")[0] == name)
            identities[name] = first.connect(config.instruments[name].identity)
        for role, d in drivers.items():
            d.identity = identities[refs[role].partition(".")[0]]
            d.bench_limits = config.limits  # BenchCrossbar reads it (tightest limits win)
        if supervisor is not None:
            supervisor.wait_ready()
    except BaseException:
        for t in transports.values():
            with contextlib.suppress(Exception):
                t.close()
        if supervisor is not None:
            supervisor.stop(safe=True)  # nothing was switched on yet
        raise
    w = None
    if config.pins is not None and config.roles.matrix is not None:
        p = config.pins
        w = Wiring(p.slot, tuple(p.rows), tuple(p.cols), p.drive, p.sense, p.bias_row,
                   p.bias_col, p.col_slot)
    xbar = BenchCrossbar(
        shape, config.limits, wiring=w, nplc=config.nplc, settle=config.settle,
        operation_timeout=config.operation_timeout,
        description={"bench": config.name,
                     "addresses": {n: config.instruments[n].address for n in sorted(used)}},
        **{role: d for role, d in drivers.items()},
    )
    if supervisor is not None:
        xbar.guardian = supervisor.check
        xbar.supervisor = supervisor
    return OpenBench(xbar, drivers, transports, identities, supervisor=supervisor)


def open_bench_crossbar(path: str | Path,
                        transport_factory: TransportFactory = default_transport
                        ) -> BenchCrossbar:
    """Load a bench config file and open it (identities checked); returns the backend.

    Its `close()` puts the bench in the safe state and closes every link.
    """
    from xbarlab.config import load_config

    bench = open_bench(load_config(path, BenchConfig), transport_factory)
    bench.crossbar.closer = bench.close
    return bench.crossbar


@dataclass(frozen=True)
class IdentityReport:
    name: str
    driver: str
    address: str
    expected: str
    identity: str | None
    ok: bool
    problem: str = ""


def check_identities(config: BenchConfig,
                     transport_factory: TransportFactory = default_transport
                     ) -> list[IdentityReport]:
    """Connect to every configured instrument, read its identity, compare; never raises for
    one instrument's problem (it is reported), and sends nothing but the identity query."""
    out = []
    for name, cfg in config.instruments.items():
        t = transport_factory(name, cfg)
        ch = "a" if cfg.driver == "keithley2600" else "1" if cfg.driver == "keysight_b2900" else ""
        drv = make_driver(name, cfg, t, ch, (config.rows, config.cols))
        try:
            if isinstance(drv, SerialBoard):
                t.open()
                idn = drv.query(drv.IDN_QUERY)
            else:
                idn = Instrument.connect(drv)  # the identity only (no error-queue drain)
            ok = cfg.identity.lower() in idn.lower()
            out.append(IdentityReport(name, cfg.driver, cfg.address, cfg.identity, idn, ok,
                                      "" if ok else "identity does not match"))
        except (TransportError, InstrumentError) as exc:
            out.append(IdentityReport(name, cfg.driver, cfg.address, cfg.identity, None, False,
                                      str(exc)))
        finally:
            with contextlib.suppress(Exception):
                t.close()
    return out


@contextlib.contextmanager
def bench_session(config: BenchConfig,
                  transport_factory: TransportFactory = default_transport
                  ) -> Iterator[BenchCrossbar]:
    """``with bench_session(cfg) as xbar:`` -- safe state and closed links on every exit."""
    bench = open_bench(config, transport_factory)
    try:
        yield bench.crossbar
    finally:
        bench.close()


def describe_drivers() -> dict[str, Any]:
    """Driver name -> class, for documentation and the CLI."""
    return {"keithley2450": Keithley2450, "keithley2600": Keithley2600Channel,
            "keysight_b2900": KeysightB2900Channel, "keithley707b": Keithley707B,
            "serial_board": SerialBoard}
