"""A bench session killed by SIGKILL leaves the bench safe: its supervisor process opens its own
links and switches everything off within the stated time (`TIME_TO_SAFE`).

One emulated bench (a 2636B drives and senses, two 2450s bias, a 707B routes) serves every
session; each session is a real ``xbarlab run write_verify_array`` subprocess with
``backend: bench`` through pyvisa-py sockets, killed at a random moment once it operates.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.emulators.benches import K2600_707B, SIM, WV_PARAMS, bench_config
from xbarlab.bench.watchdog import safety_log_path
from xbarlab.cli.main import app
from xbarlab.drivers.emulators.bench import EmulatedBench

TIME_TO_SAFE = 2.0
"""s from the SIGKILL to every output off at 0 V and every relay open (README, Safety); the
measured time is ~0.1 s on an idle machine."""

KILLS = 12
WINDOW = 0.4
"""s after the session starts operating in which it is killed: kill k lands at a random moment
in its own slot of WINDOW / KILLS (the slots in random order), so every 33 ms of the window
gets one kill and no two neighbouring kills are more than 67 ms apart; 20 independent uniform
moments (the test before) left a largest gap of 69 ms on average, more in unlucky draws. Each
kill costs ~2 s (a session and its supervisor start)."""

XBARLAB = [sys.executable, "-c", "from xbarlab.cli.entry import main; main()"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatedBench, Path]]:
    folder = tmp_path_factory.mktemp("supervised")
    cfg = bench_config(K2600_707B)
    with EmulatedBench(cfg, SIM) as emu:
        bench_yaml = folder / "bench.yaml"
        bench_yaml.write_text(yaml.safe_dump(emu.config(timeout=1.0).model_dump(mode="json")),
                              encoding="utf-8")
        params = WV_PARAMS.model_copy(update={"max_pulses": 400, "tolerance": 0.02})
        session = {"backend": "bench", "bench": str(bench_yaml), "limits": K2600_707B["limits"],
                   "protocol": {"kind": "write_verify_array", "passes": 1,
                                "params": params.model_dump(mode="json")}}
        path = folder / "session.yaml"
        path.write_text(yaml.safe_dump(session), encoding="utf-8")
        yield emu, path


def _start(session: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*XBARLAB, "run", "write_verify_array", "-c", str(session),
                             "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(cond: Callable[[], object], timeout: float, step: float = 0.002) -> float | None:
    """Seconds until `cond()` held (polled), or None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    return None


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_the_bench_safe(
        bench: tuple[EmulatedBench, Path], tmp_path: Path) -> None:
    emu, session = bench
    seed = int(os.environ.get("XBARLAB_KILL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    slots = list(range(KILLS))
    rng.shuffle(slots)
    times: list[float] = []
    unsafe_at_kill = 0
    for k in range(KILLS):
        out = tmp_path / f"run{k}.h5"
        proc = _start(session, out)
        try:
            operating = _wait(lambda p=proc: not emu.safe or p.poll() is not None, 60.0)
            assert operating is not None and proc.poll() is None, \
                f"seed {seed}, kill {k}: the session never operated (exit {proc.returncode})"
            # somewhere in the operations that follow (see WINDOW)
            time.sleep((slots[k] + rng.random()) * WINDOW / KILLS)
            assert proc.poll() is None, f"seed {seed}, kill {k}: the session ended by itself"
            unsafe_at_kill += not emu.safe
            proc.send_signal(signal.SIGKILL)
            t_safe = _wait(lambda: emu.safe, TIME_TO_SAFE)
        finally:
            proc.kill()
            proc.wait()
        assert t_safe is not None, (f"seed {seed}, kill {k}: not safe {TIME_TO_SAFE} s after "
                                    f"SIGKILL: {emu.unsafe()}")
        times.append(t_safe)
        note = safety_log_path(out)
        assert _wait(note.exists, 10.0) is not None, f"kill {k}: the supervisor left no note"
        _wait(lambda n=note: "\n" in n.read_text(encoding="utf-8"), 5.0)
        text = note.read_text(encoding="utf-8")
        assert "died" in text and "safe state reached" in text, text
        if k == 0:  # the log of the killed session shows what the supervisor did
            shown = CliRunner().invoke(app, ["log", "summary", str(out)])
            assert shown.exit_code == 0 and "safe state reached" in shown.output, shown.output
    assert not emu.violations, emu.violations  # relays never switched with an output on
    assert not emu.server_errors, emu.server_errors
    assert unsafe_at_kill >= KILLS // 2, f"only {unsafe_at_kill} kills hit a live bench"
    print(f"\ntime to safe after SIGKILL over {KILLS} kills (seed {seed}): "
          f"median {sorted(times)[KILLS // 2] * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms; "
          f"{unsafe_at_kill} kills hit outputs on or relays closed")


def test_without_its_session_the_emulated_bench_stays_as_it_was_left(
        bench: tuple[EmulatedBench, Path]) -> None:
    """The emulated instruments behave as the manuals say a real one does when its host goes
    quiet: nothing switches off by itself (which is why the supervisor exists)."""
    from xbarlab.crossbar import BiasScheme
    from xbarlab.drivers.registry import open_bench

    emu, _ = bench
    opened = open_bench(emu.config(timeout=1.0), supervise=False)
    xbar = opened.crossbar
    xbar.read([(1, 1)], 0.2, BiasScheme.GROUNDED)  # leaves the routing relays closed
    drive = xbar.drive
    assert drive is not None
    drive.set_voltage(0.3)
    drive.enable()
    for t in opened.transports.values():  # the host vanishes: links gone, no safe state
        t.close()
    time.sleep(0.5)
    try:
        assert not emu.safe and any("relays closed" in u for u in emu.unsafe())
        assert any("output=True" in u for u in emu.unsafe()), emu.unsafe()
    finally:
        for t in opened.transports.values():
            t.open()
        opened.close()
    assert emu.safe
