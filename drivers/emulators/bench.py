"""An emulated bench: every instrument of a bench config as an emulator on a real link, wired to
one simulated crossbar by the config's pin map.

    with EmulatedBench(bench_config, SimConfig(rows=8, cols=8, noise=False)) as emu:
        cfg = emu.config()            # the same bench config, addresses pointing at the emulators
        bench = open_bench(cfg)       # real drivers, pyvisa-py sockets, pyserial on a pty
        ...
        assert emu.safe               # outputs off, 0 V, relays open / board off

VISA instruments listen on 127.0.0.1 (``TCPIP::127.0.0.1::PORT::SOCKET``; port 0 = any free
port, or `ports` to ask for fixed ones), the serial board on a pseudo-terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from xbarlab.bench.config import BenchConfig, InstrumentConfig
from xbarlab.bench.kinds import PluginError, plugin_kind
from xbarlab.config import SimConfig
from xbarlab.drivers.emulators.board import Board
from xbarlab.drivers.emulators.faults import FaultPlan, FaultRecord
from xbarlab.drivers.emulators.fgen_33500 import Fgen33500
from xbarlab.drivers.emulators.matrix_707b import Matrix707B
from xbarlab.drivers.emulators.server import PtyServer, TcpHub, TcpServer
from xbarlab.drivers.emulators.smu_2450 import Smu2450
from xbarlab.drivers.emulators.smu_2600 import Smu2600
from xbarlab.drivers.emulators.smu_b2900 import SmuB2900
from xbarlab.drivers.emulators.state import SmuChannel
from xbarlab.drivers.emulators.wiring import MatrixWiring
from xbarlab.sim.crossbar import SimCrossbar
from xbarlab.sim.factory import build_sim_crossbar

Emulator: TypeAlias = Smu2450 | Smu2600 | SmuB2900 | Matrix707B | Board | Fgen33500


def _identity(default: str, expected: str) -> str:
    """The emulator's *IDN? reply: its default, or one naming the model the config expects."""
    if expected.lower() in default.lower():
        return default
    maker, _, rest = default.partition(",")
    return f"{maker},{expected},{rest.partition(',')[2]}"


class EmulatedBench:
    """Emulators for every instrument of `config`, a `SimConfig` crossbar behind them."""

    def __init__(self, config: BenchConfig, sim: SimConfig | None = None, *,
                 faults: Mapping[str, FaultPlan] | None = None,
                 ports: Mapping[str, int] | None = None, ordered: bool = True) -> None:
        """`ordered` (default): one thread serves every TCP instrument and processes what the
        client sent in the order it sent it wherever the physics depends on it. False: one
        thread per instrument, each on its own like real instruments; commands to different
        instruments may then take effect in another order than they were sent."""
        self.bench_config = config
        self.sim_config = sim or SimConfig(rows=config.rows, cols=config.cols)
        if (self.sim_config.rows, self.sim_config.cols) != (config.rows, config.cols):
            raise ValueError(f"sim config is {self.sim_config.rows} x {self.sim_config.cols}, "
                             f"the bench config {config.rows} x {config.cols}")
        self.sim: SimCrossbar = build_sim_crossbar(self.sim_config,
                                                   compliance=config.limits.compliance)
        self.faults = {name: (faults or {}).get(name) or FaultPlan()
                       for name in config.instruments}
        self.ports = dict(ports or {})
        self.ordered = ordered
        self.instruments: dict[str, Emulator] = {}
        self.servers: dict[str, TcpServer | PtyServer] = {}
        self.wiring: MatrixWiring | None = None
        self.hub: TcpHub | None = None
        self._build()

    def _build(self) -> None:
        cfg = self.bench_config
        r = cfg.roles
        if r.matrix is not None:
            assert cfg.pins is not None
            p = cfg.pins
            buses = {bus: ref for bus, ref in ((p.drive, r.drive), (p.sense, r.sense),
                                              (p.bias_row, r.bias_row), (p.bias_col, r.bias_col),
                                              (p.pulse, r.pulse))
                     if bus is not None and ref is not None}
            self.wiring = MatrixWiring(self.sim, p, {b: self._key(ref) for b, ref in
                                                     buses.items()})
        for k, (name, inst) in enumerate(cfg.instruments.items()):
            self.instruments[name] = self._emulator(name, inst, k + 1)
        if self.wiring is not None:
            for ch in self.channels():
                self.wiring.register(ch)

    def _key(self, ref: str) -> str:
        """Role reference ('smu.a', 'bias_rows', 'b29.1') -> SMU channel key."""
        return ref

    def _emulator(self, name: str, inst: InstrumentConfig, k: int) -> Emulator:
        load = self.wiring
        if inst.driver == "keithley2450":
            e: Emulator = Smu2450(name, load, serial=f"0440{k:04d}")
        elif inst.driver == "keithley2600":
            e = Smu2600(name, load, serial=f"440{k:04d}")
        elif inst.driver == "keysight_b2900":
            e = SmuB2900(name, load, serial=f"MY5114{k:04d}")
        elif inst.driver == "keysight33500":
            e = Fgen33500(name, load, serial=f"MY5260{k:04d}")
        elif inst.driver == "keithley707b":
            p = self.bench_config.pins
            slots = ({p.slot, p.col_slot or p.slot, *p.line_slots("row"), *p.line_slots("col")}
                     if p is not None else {1})
            e = Matrix707B(name, slots, serial=f"123{k:04d}",
                           on_change=self.wiring.relays_changed if self.wiring else None)
        elif inst.driver == "serial_board":
            e = Board(name, self.sim, serial=f"EMU{k:04d}")
        else:
            e = self._plugin_emulator(name, inst, k)
        e.identity = _identity(e.identity, inst.identity)
        return e

    def _plugin_emulator(self, name: str, inst: InstrumentConfig, k: int) -> Emulator:
        """The emulator a plugin kind brings (`InstrumentKind.emulator`)."""
        kind = plugin_kind(inst.driver)
        if kind.emulator is None:
            raise PluginError(f"{name}: plugin kind {inst.driver!r} has no emulator")
        e = kind.emulator(name=name, load=self.wiring, serial=f"PLG{k:04d}")
        if not isinstance(e, Smu2450 | Smu2600 | SmuB2900 | Matrix707B | Board):
            raise PluginError(f"{name}: the emulator of plugin kind {inst.driver!r} must be "
                              f"one of xbarlab's emulators (got {type(e).__name__})")
        return e

    def channels(self) -> list[SmuChannel]:
        out: list[SmuChannel] = []
        for e in self.instruments.values():
            if isinstance(e, Smu2450):
                out.append(e.channel)
            elif isinstance(e, Smu2600):
                out.extend(s.ch for s in e.smus.values())
            elif isinstance(e, SmuB2900):
                out.extend(c.smu for c in e.channels.values())
            elif isinstance(e, Fgen33500):
                out.append(e.channel)
        return out

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> EmulatedBench:
        """Listen on every link (one thread for the TCP instruments, one per pty)."""
        if self.hub is not None or any(s.running for s in self.servers.values()):
            return self
        self.servers = {}
        tcp = []
        for name, e in self.instruments.items():
            if isinstance(e, Board):
                self.servers[name] = PtyServer(e, faults=self.faults[name])
            else:
                srv = TcpServer(e, self.ports.get(name, 0), faults=self.faults[name])
                self.servers[name] = srv
                tcp.append(srv)
        self.hub = TcpHub(tcp) if tcp and self.ordered else None
        try:
            if self.hub is not None:
                self.hub.start()
            elif not self.ordered:
                for srv in tcp:
                    srv.start()
            for srv in self.servers.values():
                if isinstance(srv, PtyServer):
                    srv.start()
        except BaseException:
            self.stop()
            raise
        if self.wiring is not None and self.hub is not None:
            self.wiring.sync = self.hub.sync
        return self

    def stop(self) -> None:
        """Stop every server, join the threads, close every socket and descriptor."""
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
        for srv in self.servers.values():
            srv.stop()
        if self.wiring is not None:
            self.wiring.sync = lambda: None

    def __enter__(self) -> EmulatedBench:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients use -----------------------------------------------------------------------
    @property
    def addresses(self) -> dict[str, str]:
        return {name: srv.address for name, srv in self.servers.items()}

    def config(self, timeout: float | None = None, *,
               timeouts: Mapping[str, float] | None = None, **overrides: Any) -> BenchConfig:
        """The bench config with every address pointing at the running emulators (pyvisa-py).
        `timeout` sets every link's I/O timeout; `timeouts` sets single links' (by instrument
        name) over it."""
        if not self.servers:
            raise RuntimeError("start the emulated bench first")
        insts = {}
        for name, inst in self.bench_config.instruments.items():
            upd: dict[str, Any] = {"address": self.servers[name].address}
            if inst.driver != "serial_board":
                upd["visa_library"] = "@py"
            link_timeout = (timeouts or {}).get(name, timeout)
            if link_timeout is not None:
                upd["timeout"] = link_timeout
            insts[name] = inst.model_copy(update=upd)
        return self.bench_config.model_copy(update={"instruments": insts, **overrides})

    # -- what tests look at ---------------------------------------------------------------------
    @property
    def safe(self) -> bool:
        """Every output off at 0 V, every relay open, every board off."""
        return all(e.safe for e in self.instruments.values())

    def unsafe(self) -> list[str]:
        """What is not in the safe state, one line per instrument."""
        out = []
        for name, e in self.instruments.items():
            if e.safe:
                continue
            if isinstance(e, Matrix707B):
                out.append(f"{name}: relays closed {sorted(e.closed)}")
            elif isinstance(e, Board):
                out.append(f"{name}: lines driven or a cell selected")
            else:
                out.append(f"{name}: " + ", ".join(f"{c.key} output={c.output} level={c.level}"
                                                   for c in self.channels()
                                                   if c.key.startswith(name) and not c.safe))
        return out

    @property
    def violations(self) -> list[str]:
        fgen = [f"{e.name}: {v}" for e in self.instruments.values()
                if isinstance(e, Fgen33500) for v in e.violations]
        return (list(self.wiring.violations) if self.wiring is not None else []) + fgen

    @property
    def fault_log(self) -> list[FaultRecord]:
        return [rec for plan in self.faults.values() for rec in plan.log]

    @property
    def server_errors(self) -> list[str]:
        """Exceptions raised inside emulators (bugs of the emulator; should stay empty)."""
        return [f"{n}: {e}" for n, s in self.servers.items() for e in s.errors]
