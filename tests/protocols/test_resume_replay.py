"""A resumed simulated write-verify starts from the array's physical state: the old run's
logged operations are replayed on a simulator built from the same config (disturb after the
last reads and the noise stream included), not from the old run's last reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.network.test_session import _KillAfter
from xbarlab.analysis.resume import prepare_resume
from xbarlab.documents import RunStatus
from xbarlab.engine import RunEngine
from xbarlab.log.writer import HDF5Writer
from xbarlab.protocol_configs import ProtocolSession, session_from_data
from xbarlab.protocols.registry import plan_for
from xbarlab.sessions import build_backend

DATA = {"sim": {"rows": 8, "cols": 8, "device": "tio2-o921c", "seed": 5},
        "protocol": {"kind": "write_verify_array", "target": {"pattern": "gradient"}}}


def _session(**sim: object) -> ProtocolSession:
    data = {**DATA, "sim": {**DATA["sim"], **sim}}
    return session_from_data("write_verify_array", data, "test")


def _killed_run(cfg: ProtocolSession, path: Path) -> np.ndarray:
    """Run until 20 cells are done, interrupted as by Ctrl-C; the array's true state."""
    xbar = build_backend(cfg)
    with HDF5Writer(path) as writer:
        result = RunEngine(xbar, cfg.limits, [writer, _KillAfter(20)]).run(
            plan_for(cfg.protocol, xbar.shape), protocol=cfg.protocol.kind,
            config=cfg.model_dump(mode="json"), seed=cfg.seed)
    assert result.status is RunStatus.ABORTED
    return np.array(xbar.g)  # type: ignore[attr-defined]


def test_resume_replays_the_old_operations_to_the_true_state(tmp_path: Path) -> None:
    cfg = _session()
    truth = _killed_run(cfg, tmp_path / "a.h5")
    fresh = build_backend(cfg)
    state = prepare_resume(tmp_path / "a.h5", cfg, fresh)
    assert state.replayed > 20 and state.restored == 0
    assert len(state.done) == 20
    np.testing.assert_array_equal(fresh.g, truth)  # type: ignore[attr-defined]
    assert "replayed" in state.describe()
    # the old way (last reads) would have erased the disturb the done cells received later
    last = np.full(truth.shape, np.nan)
    for run in state.chain:
        last = np.where(np.isfinite(run.last_g), run.last_g, last)
    read = np.isfinite(last)
    assert np.abs(last[read] / truth[read] - 1).max() > 1e-3


def test_another_simulated_chip_falls_back_to_the_last_reads_and_says_so(
        tmp_path: Path) -> None:
    _killed_run(_session(), tmp_path / "a.h5")
    other = _session(seed=6)
    state = prepare_resume(tmp_path / "a.h5", other, build_backend(other))
    assert state.replayed == 0 and state.restored > 0
    assert "another chip" in state.describe() and "last logged read" in state.describe()
