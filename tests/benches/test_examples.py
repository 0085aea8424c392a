"""The example session runs unchanged on `sim` and on the emulators of the example benches
that can make its 1 µs pulses; the SMU bench refuses it up front with one line naming what to
change."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from xbarlab.bench.arctwo_config import ArcTwoBenchConfig
from xbarlab.bench.config import BenchConfig
from xbarlab.cli.main import app
from xbarlab.config import SimConfig
from xbarlab.drivers.emulators.arc2 import EmulatedInstrument
from xbarlab.drivers.emulators.arc2_link import Arc2Server
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.registry import load_bench_config
from xbarlab.log.reader import LogReader
from xbarlab.sim.factory import build_sim_crossbar

ROOT = Path(__file__).resolve().parents[2]
SESSION = ROOT / "examples" / "session-write-verify.yaml"
BENCHES = ROOT / "examples" / "bench"
runner = CliRunner()


def _run(tmp: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp / "wv.h5"
    res = runner.invoke(app, ["run", "write_verify_array", "-c", str(SESSION), "--out",
                              str(out), *extra])
    return res.exit_code, res.output, out


def _dump(path: Path, cfg: BenchConfig | ArcTwoBenchConfig) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    return path


def test_example_session_on_the_emulated_arc2(tmp_path: Path) -> None:
    cfg = load_bench_config(BENCHES / "arc2.yaml")
    assert isinstance(cfg, ArcTwoBenchConfig)
    sim = SimConfig(rows=16, cols=16, device="simple", noise=False, seed=1)
    inst = EmulatedInstrument(build_sim_crossbar(sim), list(range(16, 32)), list(range(16)))
    with Arc2Server(inst) as server:
        bench = _dump(tmp_path / "emu.yaml",
                      cfg.model_copy(update={"address": server.address, "firmware": None}))
        code, output, out = _run(tmp_path, "--backend", "bench", "--bench", str(bench))
    assert code in (0, 3), output  # done, or done with cells outside tolerance (partial)
    assert inst.safe and inst.clamped == [] and server.errors == []
    m = LogReader(out).measurements()
    assert set(m.loc[m.kind == "pulse", "width"]) == {1e-6}
    assert inst.sim.n_pulses == (m.kind == "pulse").sum() > 256


def test_example_session_is_refused_up_front_by_the_smu_bench(tmp_path: Path) -> None:
    cfg = load_bench_config(BENCHES / "two_smu_707b.yaml")
    assert isinstance(cfg, BenchConfig)
    with EmulatedBench(cfg, SimConfig(rows=8, cols=8, noise=False)) as emu:
        bench = _dump(tmp_path / "emu.yaml", emu.config())
        code, output, out = _run(tmp_path, "--backend", "bench", "--bench", str(bench))
        assert emu.safe
        received = [line for e in emu.instruments.values() for line in e.received]
        pulses = emu.sim.n_pulses
    assert code == 2
    assert "Traceback" not in output
    flat = " ".join(output.split())
    # checked against the bench config's limits before anything is connected (one line)
    assert "protocol.params.width: 1 µs is outside the limits of the bench config" in flat
    assert "[100 µs, 1 ms]; for shorter pulses use an ArC TWO" in flat
    assert not out.exists()
    assert pulses == 0 and received == []  # refused before any instrument was connected


def test_example_session_runs_on_sim(tmp_path: Path) -> None:
    code, output, _ = _run(tmp_path)
    assert code in (0, 3), output


@pytest.mark.slow
def test_example_session_on_the_emulated_pulse_bench(tmp_path: Path) -> None:
    cfg = load_bench_config(BENCHES / "pulse_33500_707b.yaml")
    assert isinstance(cfg, BenchConfig)
    cfg = cfg.model_copy(update={"settle": 0.0})
    with EmulatedBench(cfg, SimConfig(rows=16, cols=16, device="simple", noise=False,
                                      seed=1)) as emu:
        bench = _dump(tmp_path / "emu.yaml", emu.config())
        code, output, out = _run(tmp_path, "--backend", "bench", "--bench", str(bench))
        assert emu.safe, emu.unsafe()
        assert emu.violations == [] and emu.server_errors == []
    assert code in (0, 3), output
    m = LogReader(out).measurements()
    assert set(m.loc[m.kind == "pulse", "width"]) == {1e-6}
