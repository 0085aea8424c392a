"""Half-select disturb from write-verify logs: the exposures of each programmed cell are the
later pulses on its row or column (counted here independently from the raw measurements),
the model prediction without exposures is the verify read itself; under V/3 every later
pulse reaches every cell, and the disturb pins t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.analysis.simlogs import simulate_write_verify
from xbarlab.analysis.calibrate_data import LogData, load_log
from xbarlab.analysis.calibrate_disturb import DisturbData, disturb_data, predict_map
from xbarlab.log.reader import LogReader
from xbarlab.sim.presets import CompactPreset, load_preset


@pytest.fixture(scope="module")
def wv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogData, DisturbData]:
    path = simulate_write_verify(tmp_path_factory.mktemp("dist") / "wv.h5", "tio2-o921c",
                                 seed=8, shape=(12, 12)).path
    d = load_log(path)
    dd = disturb_data(d, 0)
    assert dd is not None
    return path, d, dd


def test_exposures_are_the_later_pulses_on_row_and_column(
    wv: tuple[Path, LogData, DisturbData]
) -> None:
    path, d, dd = wv
    with LogReader(path) as reader:
        m = reader.measurements()
    kind = m["kind"].astype(str).to_numpy()
    map_start = int(np.argmax(m["step"].astype(str).to_numpy() == "read_map"))
    rows, cols = m["row"].to_numpy(), m["col"].to_numpy()
    for dev, count, v in zip(dd.device, dd.count, dd.v, strict=True):
        r, c = divmod(int(dev), d.shape[1])
        own_reads = np.flatnonzero((kind[:map_start] == "read") & (rows[:map_start] == r)
                                   & (cols[:map_start] == c))
        later = np.arange(own_reads[-1] + 1, map_start)
        is_p = kind[later] == "pulse"
        hits = later[is_p & ((rows[later] == r) ^ (cols[later] == c))]
        assert count == len(hits), (r, c)
        np.testing.assert_allclose(v[:count], m["voltage"].to_numpy()[hits] / 2)  # V/2 scheme
        assert not np.any(v[count:])
    # the last cell programmed (row-major) sees none; cells of the first row see those of
    # the rows below on their columns
    assert dd.count[dd.device < d.shape[1]].min() > 0
    assert dd.count[dd.device == d.shape[0] * d.shape[1] - 1][0] == 0


def test_prediction_without_rate_is_the_verify_read(
    wv: tuple[Path, LogData, DisturbData]
) -> None:
    _, _, dd = wv
    p = load_preset("tio2-o921c")
    assert isinstance(p, CompactPreset)
    n = len(dd.g_done)
    g = predict_map(p, dd, np.zeros(n), np.zeros(n))
    k = g[np.argmax(dd.g_done)] * p.r_on  # the read factor, from the clip level
    inside = (dd.g_done < k / p.r_on) & (dd.g_done > k / p.r_off)  # stuck cells may be out
    assert inside.sum() > 0.9 * n
    np.testing.assert_allclose(g[inside], dd.g_done[inside], rtol=1e-12)
    # with the preset's rates exposed cells move, unexposed ones do not
    g = predict_map(p, dd, np.full(n, p.set.a), np.full(n, p.reset.a))
    np.testing.assert_allclose(g[inside & (dd.count == 0)], dd.g_done[inside & (dd.count == 0)],
                               rtol=1e-12)
    assert np.mean(np.abs(g[dd.count > 20] / dd.g_done[dd.count > 20] - 1)) > 1e-3


def test_v3_exposures_reach_every_cell_and_pin_t(tmp_path: Path) -> None:
    """Under V/3 every later pulse reaches every programmed cell: +V/3 on its row or column,
    -V/3 elsewhere (counted here from the raw measurements); a 16 x 16 session's disturb then
    gives t within 10 % of the preset (estimated: the log checks no I-V law)."""
    from xbarlab.analysis.calibrate import calibrate

    path = simulate_write_verify(tmp_path / "wv3.h5", "tio2-o921c", seed=9, shape=(16, 16),
                                 pulse_scheme="v/3").path
    d = load_log(path)
    dd = disturb_data(d, 0)
    assert dd is not None
    with LogReader(path) as reader:
        m = reader.measurements()
    kind = m["kind"].astype(str).to_numpy()
    map_start = int(np.argmax(m["step"].astype(str).to_numpy() == "read_map"))
    rows, cols, volts = m["row"].to_numpy(), m["col"].to_numpy(), m["voltage"].to_numpy()
    for dev, count, v in list(zip(dd.device, dd.count, dd.v, strict=True))[::17]:
        r, c = divmod(int(dev), d.shape[1])
        own = np.flatnonzero((kind[:map_start] == "read") & (rows[:map_start] == r)
                             & (cols[:map_start] == c))
        later = np.arange(own[-1] + 1, map_start)
        hits = later[(kind[later] == "pulse") & ~((rows[later] == r) & (cols[later] == c))]
        assert count == len(hits), (r, c)
        line = (rows[hits] == r) | (cols[hits] == c)
        np.testing.assert_allclose(v[:count], np.where(line, 1, -1) * volts[hits] / 3)
    cal = calibrate([path])
    truth = load_preset("tio2-o921c")
    assert isinstance(truth, CompactPreset)
    assert cal.more.disturb is not None and cal.more.disturb.n_cells > 200
    # a write-verify log alone does not check the I-V law and clip levels the rates rest on:
    # t is written as estimated, not determined (`calibrate_unchecked`)
    assert not {"set.t", "reset.t"} & {e.name for e in cal.estimates}
    fitted = {e.name: e.value for e in cal.estimates + cal.estimated}
    assert "set.t" in fitted  # measured: +0.15 %, std error 2.5 %
    assert fitted["set.t"] == pytest.approx(truth.set.t, rel=0.10)
    for name in ("reset.t",):
        if name in fitted:
            assert fitted[name] == pytest.approx(truth.reset.t, rel=0.10)
