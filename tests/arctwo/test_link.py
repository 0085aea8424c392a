"""The emulated ArC TWO behind its link: same results as in-process, whole command buffers only,
and a session killed with SIGKILL at any moment leaves the instrument idle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.arctwo.helpers import LIMITS, MAPPING_16, emulated, mapping
from xbarlab.bench.arctwo import ArcTwoCrossbar
from xbarlab.config import SimConfig
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.emulators.arc2 import EmulatedInstrument
from xbarlab.drivers.emulators.arc2_link import Arc2Server, RemoteInstrument
from xbarlab.drivers.registry import load_bench_config, open_arc2_crossbar
from xbarlab.sim.factory import build_sim_crossbar

ROOT = Path(__file__).resolve().parents[2]
SIM = SimConfig(rows=16, cols=16, noise=False, seed=2)


def _served(sim: SimConfig = SIM) -> tuple[Arc2Server, EmulatedInstrument]:
    m = mapping(sim.rows, sim.cols)
    inst = EmulatedInstrument(build_sim_crossbar(sim, compliance=LIMITS.compliance),
                              m.words, m.bits)
    return Arc2Server(inst).start(), inst


def test_remote_gives_the_in_process_results() -> None:
    server, inst = _served()
    try:
        remote = RemoteInstrument(server.address.removeprefix("emulated://"))
        xbar = ArcTwoCrossbar(remote, mapping(), (16, 16), LIMITS)
        local, _ = emulated(SIM)
        for x in (xbar, local):
            x.pulse((3, 4), 1.5, 2e-7, BiasScheme.HALF)
            x.pulse((5, 4), -1.5, 1e-6, BiasScheme.FLOATING)
        for scheme in (BiasScheme.GROUNDED, BiasScheme.HALF, BiasScheme.THIRD):
            a = xbar.read([(3, 4), (5, 4), (0, 0)], 0.2, scheme).currents
            b = local.read([(3, 4), (5, 4), (0, 0)], 0.2, scheme).currents
            np.testing.assert_array_equal(a, b)
        xbar.close()
        remote.close()
        assert inst.safe and server.errors == []
    finally:
        server.stop()


def test_a_partial_buffer_never_runs() -> None:
    server, inst = _served()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b'[["config_channels", [[[16, 2.0]], null]], ["execute", []]')  # no \n
        deadline = time.monotonic() + 5
        while server.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.dropped == 1 and server.frames == 0
        assert inst.level[16] == 0.0 and inst.safe
    finally:
        server.stop()


def _session_files(tmp: Path, address: str) -> Path:
    bench = tmp / "arc2.yaml"
    bench.write_text(yaml.safe_dump({
        "kind": "arc2", "name": "killed", "rows": 16, "cols": 16, "address": address,
        "mapping": str(MAPPING_16), "limits": LIMITS.model_dump()}))
    session = tmp / "session.yaml"
    data = yaml.safe_load((ROOT / "examples" / "session-write-verify.yaml").read_text())
    data.update(backend="bench", bench=str(bench), limits=LIMITS.model_dump())
    session.write_text(yaml.safe_dump(data))
    return session


@pytest.mark.parametrize("delay", [0.8, 1.3, 1.9])
def test_sigkill_of_a_session_leaves_the_instrument_idle(tmp_path: Path, delay: float) -> None:
    """A real `xbarlab run` process drives the emulated instrument through the link and is
    killed (SIGKILL) mid write-verify: no code of it runs afterwards, yet every channel is at
    0 V or floating, because each command buffer it sent ended in the idle mode."""
    server, inst = _served()
    try:
        session = _session_files(tmp_path, server.address)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "xbarlab.cli.main", "run", "write_verify_array", "-c",
             str(session), "--out", str(tmp_path / "wv.h5")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while inst.sim.n_pulses < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay - 0.8)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
        pulses = inst.sim.n_pulses
        time.sleep(0.2)
        assert inst.sim.n_pulses == pulses >= 5  # it was programming, and it stopped
        assert inst.safe, [inst.potential(c) for c in range(64)]
        assert server.errors == []
    finally:
        server.stop()


def test_config_file_opens_the_emulated_instrument(tmp_path: Path) -> None:
    server, inst = _served()
    try:
        cfg = load_bench_config(_session_files(tmp_path, server.address).parent / "arc2.yaml")
        xbar = open_arc2_crossbar(cfg)  # type: ignore[arg-type]
        r = xbar.read([(0, 0)], 0.2, BiasScheme.GROUNDED)
        assert r.currents[0] == pytest.approx(0.2 * inst.sim.g[0, 0], rel=1e-6)
        assert xbar.describe()["backend"] == "arc2"
        xbar.close()
        assert inst.safe
    finally:
        server.stop()
