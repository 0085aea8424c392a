"""A resumed simulated run continues from the chip's true state (logged operations replayed on
the same chip), not from its last reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.network.nets import moons, moons_net, sim_config
from tests.network.test_session import _KillAfter
from xbarlab.config import ConfigError
from xbarlab.documents import RunStatus
from xbarlab.log.replay import replay
from xbarlab.network.bank import ArrayBank
from xbarlab.network.config import NetworkSessionConfig
from xbarlab.network.session import build_arrays, map_for, run_session, simulated


def _cfg(**sim: object) -> NetworkSessionConfig:
    cfg = sim_config(8, 8, write_verify={"tolerance": 0.05, "max_pulses": 200}, max_cal=30,
                     max_test=30)
    return cfg.model_copy(update={"sim": cfg.sim.model_copy(update={
        "device": "tio2-o921c", "noise": True, **sim})})


def _bank(cfg: NetworkSessionConfig) -> ArrayBank:
    nmap = map_for(cfg, moons_net(8), moons().limited(30, 30), (8, 8), 64)
    bank = build_arrays(cfg, nmap.n_arrays)
    assert isinstance(bank, ArrayBank) and simulated(bank)  # 66 devices on two 8 x 8 arrays
    return bank


def _state(bank: ArrayBank) -> tuple[np.ndarray, list[object]]:
    return (np.vstack([a.g for a in bank.arrays]),  # type: ignore[attr-defined]
            [a.rng.bit_generator.state for a in bank.arrays])  # type: ignore[attr-defined]


def test_replay_reproduces_the_killed_chip_bit_for_bit(tmp_path: Path) -> None:
    cfg = _cfg()
    net, data = moons_net(8), moons()
    first = _bank(cfg)
    a = run_session(cfg, net, data, tmp_path / "a.h5", [_KillAfter(20)], backend=first)
    assert a.result.status is RunStatus.ABORTED
    g_first, rng_first = _state(first)
    fresh = _bank(cfg)
    n = replay(fresh, [tmp_path / "a.h5"])
    assert n > 20
    g, rng = _state(fresh)
    assert np.array_equal(g, g_first) and rng == rng_first  # devices and noise stream
    # the last reads are not that state: later pulses disturbed the devices read before them
    from xbarlab.analysis.resume import read_run

    last = read_run(tmp_path / "a.h5").last_g
    read = np.isfinite(last)
    assert np.max(np.abs(last[read] - g_first[read]) / g_first[read]) > 0.02

    # a resumed run that is killed again: replaying both logs gives its chip's state
    second = _bank(cfg)
    b = run_session(cfg, net, data, tmp_path / "b.h5", [_KillAfter(15)],
                    resume=tmp_path / "a.h5", backend=second)
    assert b.result.status is RunStatus.ABORTED and "replayed" in b.resumed
    fresh = _bank(cfg)
    replay(fresh, [tmp_path / "a.h5", tmp_path / "b.h5"])
    assert np.array_equal(_state(fresh)[0], _state(second)[0])
    # and the run finishes from there
    c = run_session(cfg, net, data, tmp_path / "c.h5", resume=tmp_path / "b.h5")
    assert c.result.status in (RunStatus.PROGRAMMED, RunStatus.PARTIAL)
    assert "replayed" in c.resumed


def test_resume_on_another_simulated_chip_is_refused(tmp_path: Path) -> None:
    cfg = _cfg()
    a = run_session(cfg, moons_net(8), moons(), tmp_path / "a.h5", [_KillAfter(3)])
    assert a.result.status is RunStatus.ABORTED
    other = _cfg(seed=6)
    with pytest.raises(ConfigError, match="another chip"):
        run_session(other, moons_net(8), moons(), tmp_path / "b.h5", resume=tmp_path / "a.h5")
    assert not (tmp_path / "b.h5").exists()
