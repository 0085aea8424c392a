"""The XBL serial board: transcripts, a real pty through pyserial, and a board bench."""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

import numpy as np
import pytest

from xbarlab.bench.config import BenchConfig
from xbarlab.bench.crossbar import BenchCrossbar
from xbarlab.bench.roles import Board
from xbarlab.config import validate_config
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.base import InstrumentError, ReplyError, SettingError
from xbarlab.drivers.registry import open_bench
from xbarlab.drivers.serial_board import SerialBoard
from xbarlab.drivers.transports import (
    CallbackTransport,
    SerialTransport,
    TranscriptTransport,
    TransportTimeout,
)

IDN = "XBARLAB,XBL-8x8,0001,1.0"


def board(script: list[Any], shape: tuple[int, int] = (2, 3)
          ) -> tuple[TranscriptTransport, SerialBoard]:
    t = TranscriptTransport(script)
    return t, SerialBoard(t, shape, "brd")


def test_board_role_and_no_io_on_construction() -> None:
    t, b = board([])
    assert isinstance(b, Board) and t.sent == []


def test_connect_checks_identity_and_shape() -> None:
    t, b = board([("*IDN?", IDN), ("SHAPE?", "2,3")])
    assert b.connect("XBL") == IDN and t.done
    t, b = board([("*IDN?", IDN), ("SHAPE?", "8,8")])
    with pytest.raises(InstrumentError, match=r"8 x 8"):
        b.connect("XBL")
    t, b = board([("*IDN?", IDN), ("SHAPE?", "8")])
    with pytest.raises(ReplyError, match=r"SHAPE"):
        b.connect("XBL")


def test_every_command() -> None:
    script = [("OFF", "OK"), ("ILIM 0.0001", "OK"),
              ("ROW 0 0.1", "OK"), ("ROW 1 Z", "OK"),
              ("COL 0 0", "OK"), ("COL 1 Z", "OK"), ("COL 2 -0.1", "OK"),
              ("SEL 1 2", "OK"), ("READ 0.2", "1.5e-05,0"), ("PULSE -1.5 1e-06", "nan,1"),
              ("ICOL?", "1e-06,2e-06,-3e-06;0"), ("ERR?", "6,compliance"), ("ERR?", "0,No error"),
              ("SEL NONE", "OK"), ("OFF", "OK")]
    t, b = board(script)
    b.configure(1e-4)
    b.set_lines([0.1, float("nan")], [0.0, float("nan"), -0.1])
    b.select(1, 2)
    r = b.read(0.2)
    assert (r.voltage, r.current, r.compliance) == (0.2, 1.5e-5, False)
    p = b.pulse(-1.5, 1e-6)
    assert math.isnan(p.current) and p.compliance
    cols = b.column_currents()
    assert [m.current for m in cols] == [1e-6, 2e-6, -3e-6]
    assert b.errors() == [] and b.compliance_reports == 1  # flagged in the readings already
    b.deselect()
    b.safe_state()
    assert t.done


def test_compliance_entries_are_drained_but_other_errors_are_reported() -> None:
    script = [("ERR?", "6,compliance"), ("ERR?", "3,out of range"), ("ERR?", "6,compliance"),
              ("ERR?", "0,No error")]
    t, b = board(script)
    assert b.errors() == ["3: out of range"] and b.compliance_reports == 2 and t.done


def test_compliance_on_the_emulated_board_is_a_logged_flag_not_a_stop() -> None:
    """XBL board over a pty (emulator + simulated array): reads that hit the current limit run
    to the end, flagged; as on an SMU bench."""
    from xbarlab.config import SimConfig
    from xbarlab.documents import Event, EventKind
    from xbarlab.drivers.emulators.bench import EmulatedBench
    from xbarlab.engine import RunEngine
    from xbarlab.messages import Read

    cfg = validate_config({
        "name": "board", "rows": 4, "cols": 4,
        "instruments": {"brd": {"driver": "serial_board", "address": "-", "identity": "XBL"}},
        "roles": {"board": "brd"},
        "limits": {"v_max": 3.0, "pulse_width_min": 1e-7, "compliance": 1e-6}}, BenchConfig)
    with EmulatedBench(cfg, SimConfig(rows=4, cols=4, noise=False, seed=3)) as emu:
        bench = open_bench(emu.config(timeout=1.0))
        try:
            docs: list = []
            plan = (m for m in [Read(None, 0.2, BiasScheme.GROUNDED), Read(((1, 1),), 0.2)])
            result = RunEngine(bench.crossbar, cfg.limits, [docs.append]).run(plan, protocol="t")
        finally:
            bench.close()
        assert emu.safe
    assert result.ok, result.reason
    reads = [d for d in docs if isinstance(d, Event) and d.kind is EventKind.READ]
    assert len(reads) == 2 and reads[0].compliance.all() and reads[1].compliance.all()
    assert np.abs(reads[0].currents).max() <= 1e-6 * (1 + 1e-9)  # clipped at the limit
    brd = bench.drivers["board"]
    assert isinstance(brd, SerialBoard) and brd.compliance_reports >= 17


@pytest.mark.parametrize("reply", ["0,No", "0,", "0,No err", "0"])
def test_truncated_empty_error_reply_is_not_no_error(reply: str) -> None:
    _t, b = board([("ERR?", reply)])
    with pytest.raises(ReplyError, match=r"brd.*ERR\?"):
        b.errors()


def test_refused_command_raises_with_the_board_text() -> None:
    _t, b = board([("SEL 1 2", "ERR 3 column out of range")])
    with pytest.raises(InstrumentError, match=r"brd.*SEL 1 2.*column out of range"):
        b.select(1, 2)


@pytest.mark.parametrize("reply", ["1.5e-05", "abc,0", "1.5e-05,2", ""])
def test_garbage_read_reply(reply: str) -> None:
    _t, b = board([("READ 0.2", reply)])
    with pytest.raises(ReplyError, match=r"brd.*READ 0.2"):
        b.read(0.2)


def test_out_of_range_is_refused_before_sending() -> None:
    t, b = board([])
    with pytest.raises(SettingError, match=r"brd\.row\[1\]"):
        b.set_lines([0.0, 6.0], [0.0, 0.0, 0.0])
    with pytest.raises(SettingError, match=r"pulse width"):
        b.pulse(1.0, 5.0)
    with pytest.raises(SettingError):
        b.select(2, 0)
    assert t.sent == []


def _pty_board(master: int, stop: threading.Event, answer: bool = True) -> None:
    buf = b""
    while not stop.is_set():
        try:
            chunk = os.read(master, 256)
        except OSError:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.strip(b"\r")
            if answer:
                reply = {b"*IDN?": IDN.encode(), b"SHAPE?": b"2,3"}.get(line, b"OK")
                os.write(master, reply + b"\r\n")


def test_through_a_real_pty_with_pyserial() -> None:
    master, slave = os.openpty()
    stop = threading.Event()
    th = threading.Thread(target=_pty_board, args=(master, stop), daemon=True)
    th.start()
    try:
        b = SerialBoard(SerialTransport(os.ttyname(slave), timeout=1.0), (2, 3), "brd")
        assert b.connect("XBL-8x8") == IDN
        b.safe_state()
        b.close()
    finally:
        stop.set()
        os.close(slave)
        os.close(master)


def test_silent_board_times_out_within_the_timeout() -> None:
    master, slave = os.openpty()
    try:
        t = SerialTransport(os.ttyname(slave), timeout=0.3)
        b = SerialBoard(t, (2, 3), "brd")
        t0 = time.monotonic()
        with pytest.raises(TransportTimeout, match=r"brd.*\*IDN\?"):
            b.connect("XBL")
        assert time.monotonic() - t0 < 1.5
        t.close()
    finally:
        os.close(slave)
        os.close(master)


# -- a board bench ------------------------------------------------------------------------------
class FakeBoard:
    """XBL v1 over a callback, with an ideal resistive array behind it."""

    def __init__(self, g: np.ndarray) -> None:
        self.g = g
        self.rows = np.full(g.shape[0], np.nan)
        self.cols = np.full(g.shape[1], np.nan)
        self.sel: tuple[int, int] | None = None
        self.off_count = 0

    def __call__(self, line: str, query: bool) -> str:
        w = line.split()
        if line == "*IDN?":
            return IDN
        if line == "SHAPE?":
            return f"{self.g.shape[0]},{self.g.shape[1]}"
        if line == "ERR?":
            return "0,No error"
        if w[0] == "OFF":
            self.rows[:] = np.nan
            self.cols[:] = np.nan
            self.sel = None
            self.off_count += 1
            return "OK"
        if w[0] in ("ROW", "COL"):
            arr = self.rows if w[0] == "ROW" else self.cols
            arr[int(w[1])] = np.nan if w[2] == "Z" else float(w[2])
            return "OK"
        if w[0] == "SEL":
            self.sel = (int(w[1]), int(w[2]))
            return "OK"
        if w[0] in ("READ", "PULSE"):
            assert self.sel is not None
            r, c = self.sel
            rows = self.rows.copy()
            rows[r] = float(w[1])
            i = float(np.nansum(self.g[:, c] * rows))  # column c at virtual ground
            return f"{i:.9e},0"
        if line == "ICOL?":
            i = np.nansum(self.g * self.rows[:, None], axis=0)
            return ",".join(f"{x:.9e}" for x in i) + ";0"
        if w[0] == "ILIM":
            return "OK"
        raise AssertionError(line)


def board_bench(g: np.ndarray) -> tuple[FakeBoard, BenchCrossbar]:
    cfg = validate_config({
        "rows": g.shape[0], "cols": g.shape[1],
        "instruments": {"brd": {"driver": "serial_board", "address": "/dev/ttyUSB0",
                                "identity": "XBL"}},
        "roles": {"board": "brd"}}, BenchConfig)
    fake = FakeBoard(g)
    bench = open_bench(cfg, lambda name, c: CallbackTransport(fake, c.address))
    return fake, bench.crossbar


def test_board_bench_read_pulse_mvm() -> None:
    g = np.array([[1e-4, 2e-4, 3e-4], [4e-4, 5e-4, 6e-4]])
    fake, xbar = board_bench(g)
    r = xbar.read(None, 0.2, BiasScheme.GROUNDED)
    np.testing.assert_allclose(r.conductances.reshape(2, 3), g, rtol=1e-6)
    r = xbar.read([(0, 1)], 0.2, BiasScheme.HALF)
    assert r.currents[0] == pytest.approx(g[0, 1] * 0.2 + g[1, 1] * 0.1, rel=1e-6)
    xbar.pulse((1, 2), 1.0, 1e-6, BiasScheme.THIRD)
    v = np.array([[0.1, -0.2]])
    np.testing.assert_allclose(xbar.mvm(v).currents, v @ g, rtol=1e-6)
    assert fake.sel is None and np.isnan(fake.rows).all()  # left in the safe state
