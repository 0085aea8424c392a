"""Does a calibrated preset predict a session? Re-run a write-verify log's session on it.

The log's own session config (protocol, targets, pulse settings, order, array size) is run
on the simulator with the calibrated preset; the measured and the simulated session are
compared cell by cell as distributions: pulses per cell and final error |G - target| /
target at the session's final read map (which includes the half-select disturb of every
later cell), each by a two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`). Given a
log held out of the calibration, this is the prediction test of a calibration.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from xbarlab.analysis.calibrate_data import CalibrationInputError, FloatArray
from xbarlab.log.reader import LogReader

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass
class PredictionCheck:
    """Measured vs simulated per-cell outcomes of one session."""

    log: Path
    pulses_meas: IntArray
    pulses_sim: IntArray
    error_meas: FloatArray  # |G - target| / target at the final read map
    error_sim: FloatArray
    p_pulses: float  # KS p-values
    p_error: float


def session_outcomes(path: Path) -> tuple[IntArray, FloatArray, dict[str, Any]]:
    """Pulses per cell and final error of a write-verify log, and its session config."""
    from pydantic import ValidationError

    from xbarlab.config import WriteVerifyArrayProtocol
    from xbarlab.log.errors import LogError
    from xbarlab.protocols.patterns import target_map

    if not path.is_file():
        raise CalibrationInputError(f"{path}: " + ("not a log file" if path.exists()
                                                   else "no such file"))
    try:
        with LogReader(path) as reader:
            m = reader.measurements()
            info = reader.info
    except LogError as exc:
        raise CalibrationInputError(str(exc).splitlines()[0]) from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CalibrationInputError(f"{path}: not an xbarlab log ({exc})") from None
    config = info.config or {}
    if config.get("protocol", {}).get("kind") != "write_verify_array":
        raise CalibrationInputError(f"{path}: not a write-verify session: nothing to predict")
    try:
        proto = WriteVerifyArrayProtocol.model_validate(config["protocol"])
    except ValidationError:
        raise CalibrationInputError(f"{path}: its write-verify settings do not validate") from None
    shape = (int(info.shape[0]), int(info.shape[1]))
    kind = m["kind"].astype(str).to_numpy()
    cell = m["row"].to_numpy(np.int64) * shape[1] + m["col"].to_numpy(np.int64)
    pulses = np.bincount(cell[kind == "pulse"], minlength=shape[0] * shape[1])
    maps = (kind == "read") & (m["step"].astype(str).to_numpy() == "read_map")
    if not maps.any():
        raise CalibrationInputError(f"{path}: the session has no final read map")
    last_map = maps & (m["seq"].to_numpy() == m["seq"].to_numpy()[maps][-1])
    g = np.full(shape[0] * shape[1], np.nan)
    g[cell[last_map]] = m["conductance"].to_numpy(np.float64)[last_map]
    target = target_map(proto.target, shape).ravel()
    return pulses.astype(np.int64), np.abs(g / target - 1), config


def predict_session(preset: str | Path, log: str | Path, seed: int = 1) -> PredictionCheck:
    """Run `log`'s write-verify session on `preset` (seeded) and compare (module docstring)."""
    path = Path(log)
    n_meas, e_meas, _ = session_outcomes(path)
    with tempfile.TemporaryDirectory(prefix="xbarlab-predict-") as tmp:
        out = simulate_session(preset, path, Path(tmp) / "predicted.h5", seed)
        n_sim, e_sim, _ = session_outcomes(out)
    ok_m, ok_s = np.isfinite(e_meas), np.isfinite(e_sim)
    return PredictionCheck(
        log=path, pulses_meas=n_meas, pulses_sim=n_sim, error_meas=e_meas[ok_m],
        error_sim=e_sim[ok_s], p_pulses=float(stats.ks_2samp(n_meas, n_sim).pvalue),
        p_error=float(stats.ks_2samp(e_meas[ok_m], e_sim[ok_s]).pvalue))


def simulate_session(preset: str | Path, log: str | Path, out: Path, seed: int = 1) -> Path:
    """Run `log`'s write-verify session on `preset` (seeded, noise on); log it to `out`."""
    from xbarlab.config import SessionConfig, SimConfig, WriteVerifyArrayProtocol
    from xbarlab.engine import RunEngine
    from xbarlab.log.writer import HDF5Writer
    from xbarlab.protocols.patterns import target_map
    from xbarlab.protocols.write_verify import write_verify_array
    from xbarlab.sim.factory import build_sim_crossbar

    path = Path(log)
    _, _, config = session_outcomes(path)
    try:
        cfg = SessionConfig.model_validate({k: v for k, v in config.items()
                                            if k in SessionConfig.model_fields})
    except ValueError:
        raise CalibrationInputError(f"{path}: its session config does not validate") from None
    with LogReader(path) as reader:
        rows, cols = int(reader.info.shape[0]), int(reader.info.shape[1])
    sim = SimConfig(rows=rows, cols=cols, device=str(preset), seed=seed, noise=True)
    run = cfg.model_copy(update={"backend": "sim", "sim": sim, "seed": seed, "bench": None})
    backend = build_sim_crossbar(sim, compliance=run.limits.compliance)
    proto = run.protocol
    assert isinstance(proto, WriteVerifyArrayProtocol)  # session_outcomes checked the kind
    plan = write_verify_array(target_map(proto.target, backend.shape), proto.params,
                              proto.order, passes=proto.passes)
    with HDF5Writer(out) as writer:
        RunEngine(backend, run.limits, [writer]).run(
            plan, protocol=proto.kind, config=run.model_dump(mode="json"), seed=seed)
    return out


def draw_check(check: PredictionCheck, axes: Any) -> None:
    """Two report panels: pulses per cell and final error, measured vs predicted."""
    ax = axes[0]
    top = int(max(check.pulses_meas.max(), check.pulses_sim.max())) + 1
    bins = np.linspace(0, top, min(top, 40) + 1)
    ax.hist(check.pulses_meas, bins=bins, histtype="step", lw=1.5, label="measured")
    ax.hist(check.pulses_sim, bins=bins, histtype="step", lw=1.5, ls="--",
            label="simulated, calibrated preset")
    ax.set_xlabel("pulses per cell")
    ax.set_ylabel("cells")
    ax.set_title(f"prediction of {check.log.name}: pulses per cell, KS p = "
                 f"{check.p_pulses:.2g}", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for e, ls, label in ((check.error_meas, "-", "measured"),
                         (check.error_sim, "--", "simulated, calibrated preset")):
        x = np.sort(e) * 100
        ax.step(x, np.arange(1, len(x) + 1) / len(x), ls=ls, where="post", label=label)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("final error |G − target| / target at the final read map (%)")
    ax.set_ylabel("fraction of cells")
    ax.set_title(f"final error, KS p = {check.p_error:.2g}", fontsize=9)
    ax.legend(fontsize=7)
