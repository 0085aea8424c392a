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
from typing import TYPE_CHECKING, Any, cast

from xbarlab.bench.arctwo_config import ArcTwoBenchConfig, load_any_bench_config
from xbarlab.bench.config import BenchConfig, InstrumentConfig
from xbarlab.bench.crossbar import BenchCrossbar, Wiring
from xbarlab.bench.kinds import BUILTIN, InstrumentKind, PluginError, plugin_kinds
from xbarlab.bench.lock import BenchInUse, InstrumentLocks, instrument_locks
from xbarlab.bench.pulse_bench import PulseBenchCrossbar
from xbarlab.bench.watchdog import Supervisor
from xbarlab.drivers.base import Instrument, InstrumentError, SmuLimits
from xbarlab.drivers.keithley707b import Keithley707B
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600Channel
from xbarlab.drivers.keysight33500 import Keysight33500
from xbarlab.drivers.keysight_b2900 import KeysightB2900Channel
from xbarlab.drivers.plugins import first_channel, make_plugin_driver, plugin_transport
from xbarlab.drivers.serial_board import SerialBoard
from xbarlab.drivers.transports import SerialTransport, Transport, TransportError, VisaTransport

if TYPE_CHECKING:
    from xbarlab.bench.arctwo import ArcTwoCrossbar

TransportFactory = Callable[[str, InstrumentConfig], Transport]


def default_transport(name: str, cfg: InstrumentConfig) -> Transport:
    """VISA for everything but the serial board (pyserial)."""
    if cfg.driver == "serial_board":
        return SerialTransport(cfg.address, baudrate=cfg.baudrate, timeout=cfg.timeout)
    if cfg.driver not in BUILTIN:
        return plugin_transport(cfg)  # the link the plugin kind asks for
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
    if cfg.driver == "keysight33500":
        return Keysight33500(transport, label, limits)
    # a plugin kind (entry-point group xbarlab.instruments): checked against its role
    return cast(Instrument, make_plugin_driver(name, cfg, transport, channel, shape, v_max,
                                               limits or SmuLimits()))


@dataclass
class OpenBench:
    """An opened bench: the crossbar backend, the drivers by role, the links."""

    crossbar: BenchCrossbar
    drivers: dict[str, Instrument]  # role -> driver
    transports: dict[str, Transport]  # instrument -> link
    identities: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    supervisor: Supervisor | None = None  # the process that makes the bench safe if we die
    locks: InstrumentLocks | None = None  # one session per instrument (`xbarlab.bench.lock`)

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
            if self.locks is not None:  # before an unsafe end's rescue, which takes them
                self.locks.release()
            if self.supervisor is not None:  # unsafe: it tries again on its own links
                self.supervisor.stop(safe=safe)

    def __enter__(self) -> OpenBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def simulated(cfg: InstrumentConfig) -> bool:
    """A pyvisa-sim instrument (``...@sim``): nothing to share, nothing to lock."""
    return cfg.visa_library.endswith("@sim")


def _role_refs(config: BenchConfig) -> dict[str, str]:
    r = config.roles
    refs = {"drive": r.drive, "sense": r.sense, "bias_row": r.bias_row,
            "bias_col": r.bias_col, "matrix": r.matrix, "board": r.board, "pulse": r.pulse}
    return {k: v for k, v in refs.items() if v is not None}


RESCUE = "xbarlab.drivers.rescue:rescue_bench"
"""What the safety supervisor runs when the session dies (`xbarlab.bench.watchdog`)."""


def open_bench(config: BenchConfig, transport_factory: TransportFactory = default_transport,
               supervise: bool | None = None) -> OpenBench:
    """Open every link, check every identity, and build the `BenchCrossbar` (not configured:
    configuration happens before its first operation).

    Whenever the links are the real ones (`default_transport`): every instrument's address is
    locked for this session first (`BenchInUse` if another session holds one, and nothing is
    opened), and `supervise` (default: the same) starts the safety supervisor process; it is
    armed before this returns, and the crossbar refuses to operate if it is gone."""
    shape = (config.rows, config.cols)
    refs = _role_refs(config)
    used = {ref.partition(".")[0] for ref in refs.values()}
    real = transport_factory is default_transport
    if supervise is None:
        supervise = real
    locks = (instrument_locks({n: config.instruments[n].address for n in used
                               if not simulated(config.instruments[n])}).acquire()
             if real else None)
    try:
        supervisor = (Supervisor(config.model_dump(mode="json"), RESCUE).start() if supervise
                      else None)
    except BaseException:
        if locks is not None:
            locks.release()
        raise
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
        if locks is not None:
            locks.release()
        if supervisor is not None:
            supervisor.stop(safe=True)  # nothing was switched on yet
        raise
    w = None
    if config.pins is not None and config.roles.matrix is not None:
        p = config.pins
        w = Wiring(p.slot, tuple(p.rows), tuple(p.cols), p.drive, p.sense, p.bias_row,
                   p.bias_col, p.col_slot,
                   None if p.row_slots is None else tuple(p.row_slots),
                   None if p.col_slots is None else tuple(p.col_slots))
    common: dict[str, Any] = dict(
        wiring=w, nplc=config.nplc, settle=config.settle,
        operation_timeout=config.operation_timeout,
        description={"bench": config.name,
                     "addresses": {n: config.instruments[n].address for n in sorted(used)}},
        **{role: d for role, d in drivers.items() if role != "pulse"},
    )
    xbar: BenchCrossbar
    if "pulse" in drivers:
        assert config.pins is not None and config.pins.pulse is not None
        pulser = drivers["pulse"]
        assert isinstance(pulser, Keysight33500)
        xbar = PulseBenchCrossbar(shape, config.limits, pulser=pulser,
                                  pulse_bus=config.pins.pulse, edge=config.pulse_edge, **common)
    else:
        xbar = BenchCrossbar(shape, config.limits, **common)
    if supervisor is not None:
        xbar.guardian = supervisor.check
        xbar.supervisor = supervisor
    return OpenBench(xbar, drivers, transports, identities, supervisor=supervisor, locks=locks)


def load_bench_config(path: str | Path) -> BenchConfig | ArcTwoBenchConfig:
    """A bench config file of any kind (see `load_any_bench_config`)."""
    return load_any_bench_config(path)


def open_arc2_crossbar(config: ArcTwoBenchConfig) -> ArcTwoCrossbar:
    """Connect to the ArC TWO of `config` (or to its emulator at ``emulated://HOST:PORT``) and
    build the backend; its `close()` idles the instrument and closes the link."""
    from xbarlab.bench.arctwo_config import load_mapping
    from xbarlab.config import ConfigError

    try:
        from xbarlab.bench.arctwo import ArcTwoCrossbar, connect_instrument
    except ImportError as exc:
        raise ConfigError(f"the ArC TWO backend needs pyarc2 ({exc}): "
                          "pip install 'xbarlab[arc2]'") from None

    mapping = load_mapping(config.mapping)
    mapping.check((config.rows, config.cols), str(config.mapping))
    link_close: Callable[[], None] | None = None
    locks = instrument_locks({"arc2": config.address}).acquire()
    try:
        if config.address.startswith("emulated://"):
            from xbarlab.drivers.emulators.arc2_link import RemoteInstrument

            remote = RemoteInstrument(config.address.removeprefix("emulated://"))
            inst: Any = remote
            link_close = remote.close
        else:  # pragma: no cover - needs the instrument
            inst = connect_instrument(config)
        xbar = ArcTwoCrossbar(inst, mapping, (config.rows, config.cols), config.limits,
                              idle=config.idle, operation_timeout=config.operation_timeout,
                              description={"bench": config.name, "address": config.address})
    except BaseException:
        if link_close is not None:
            with contextlib.suppress(Exception):
                link_close()
        locks.release()
        raise

    def close() -> None:
        try:
            xbar.safe_state()
        finally:
            try:
                if link_close is not None:
                    link_close()
            finally:
                locks.release()
    xbar.closer = close
    return xbar


def open_bench_crossbar(path: str | Path,
                        transport_factory: TransportFactory = default_transport
                        ) -> BenchCrossbar | ArcTwoCrossbar:
    """Load a bench config file and open it (identities checked); returns the backend.

    Its `close()` puts the bench in the safe state and closes every link.
    """
    config = load_bench_config(path)
    if isinstance(config, ArcTwoBenchConfig):
        return open_arc2_crossbar(config)
    bench = open_bench(config, transport_factory)
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
        lock = instrument_locks({name: cfg.address})
        if transport_factory is default_transport and not simulated(cfg):
            # never a query into another session's link
            try:
                lock.acquire()
            except BenchInUse as exc:
                out.append(IdentityReport(name, cfg.driver, cfg.address, cfg.identity, None,
                                          False, f"not queried: {exc}"))
                continue
        t = transport_factory(name, cfg)
        ch = "a" if cfg.driver == "keithley2600" else "1" if cfg.driver == "keysight_b2900" else ""
        if cfg.driver not in BUILTIN:
            ch = first_channel(cfg.driver)
        try:
            drv = make_driver(name, cfg, t, ch, (config.rows, config.cols), config.limits.v_max,
                              SmuLimits.from_bench(config.limits))
            if isinstance(drv, SerialBoard):
                t.open()
                idn = drv.query(drv.IDN_QUERY)
            else:
                # the identity only (no error-queue drain); a plugin driver's own connect
                idn = Instrument.connect(drv) if isinstance(drv, Instrument) else drv.connect()
            ok = cfg.identity.lower() in idn.lower()
            out.append(IdentityReport(name, cfg.driver, cfg.address, cfg.identity, idn, ok,
                                      "" if ok else "identity does not match"))
        except (TransportError, InstrumentError, PluginError) as exc:
            out.append(IdentityReport(name, cfg.driver, cfg.address, cfg.identity, None, False,
                                      str(exc)))
        finally:
            with contextlib.suppress(Exception):
                t.close()
            lock.release()
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
    builtin: dict[str, Any] = {
        "keithley2450": Keithley2450, "keithley2600": Keithley2600Channel,
        "keysight_b2900": KeysightB2900Channel, "keithley707b": Keithley707B,
        "serial_board": SerialBoard, "keysight33500": Keysight33500}
    return builtin | {name: kind for name, kind in plugin_kinds().items()
                      if isinstance(kind, InstrumentKind)}
