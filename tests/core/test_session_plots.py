"""Session plots say what was measured and how the run ended, and do not mislead."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from xbarlab.analysis.session_plots import cell_histories, error_norm, plot_session
from xbarlab.config import SimConfig, WriteVerifyParams
from xbarlab.crossbar import BiasScheme
from xbarlab.engine import RunEngine
from xbarlab.limits import BenchLimits
from xbarlab.log.reader import LogReader
from xbarlab.log.writer import HDF5Writer
from xbarlab.messages import Plan
from xbarlab.protocols.read_map import read_map
from xbarlab.protocols.write_verify import write_verify_array
from xbarlab.sim.factory import build_sim_crossbar


def _svg_text(log: Path, out: Path) -> str:
    """The plot as SVG with its text kept as text (searchable)."""
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        plot_session(log, out)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", out.read_text(encoding="utf-8"))
    return " ".join(" ".join(texts).split())  # title lines wrap: join them


def _log(tmp_path: Path, plan: Plan, sim: SimConfig, name: str, config: dict) -> Path:
    out = tmp_path / f"{name}.h5"
    xbar = build_sim_crossbar(sim)
    with HDF5Writer(out) as writer:
        RunEngine(xbar, BenchLimits(), [writer]).run(plan, protocol=name, config=config)
    return out


@pytest.fixture(scope="module")
def three_passes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("plots")
    sim = SimConfig(rows=4, cols=4, seed=2)
    targets = np.where(np.eye(4, dtype=bool), 400e-6, 150e-6)
    cfg = {"backend": "sim", "sim": sim.model_dump(), "protocol": {"params": {"tolerance": 0.01}}}
    return _log(d, write_verify_array(targets, WriteVerifyParams(), passes=3), sim,
                "write_verify_array", cfg)


def test_a_cell_is_traced_once_across_passes(three_passes: Path) -> None:
    with LogReader(three_passes) as log:
        notes = log.annotations()
        hist = cell_histories(log)
    done = notes[notes["message"] == "cell_done"]
    assert len(done) > 16  # some cells were programmed again in later passes
    assert sorted(hist) == [(r, c) for r in range(4) for c in range(4)]
    assert sum(h.attempts for h in hist.values()) == len(done)
    assert sum(h.pulses for h in hist.values()) == sum(d["n_pulses"] for d in done["data"])


def test_write_verify_figure_states_units_scheme_and_status(three_passes: Path,
                                                           tmp_path: Path) -> None:
    svg = _svg_text(three_passes, tmp_path / "wv.svg")
    for text in ("µS", "200 mV, grounded scheme", "write_verify_array on sim, 4 × 4",
                 "status: partial", "tolerance ±1 %", "symlog"):
        assert text in svg, text
    assert "uS" not in svg
    png = tmp_path / "wv.png"
    plot_session(three_passes, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_error_scale_spans_the_worst_cell() -> None:
    err = np.array([[0.5, -2.0], [6.0, 312.0]])
    norm = error_norm(err, 1.0)
    assert norm.vmax >= 312.0 and norm.vmin <= -312.0
    # 6 % and 312 % get clearly different colours (no clipping at a percentile)
    assert norm(312.0) - norm(6.0) > 0.15


def test_an_aborted_run_says_so(tmp_path: Path) -> None:
    def stopped() -> Plan:
        yield from read_map((3, 3), 0.2, BiasScheme.GROUNDED)
        raise KeyboardInterrupt

    sim = SimConfig(rows=3, cols=3)
    log = _log(tmp_path, stopped(), sim, "read_map", {"backend": "sim", "sim": sim.model_dump()})
    svg = _svg_text(log, tmp_path / "a.svg")
    assert "status: ABORTED" in svg


def test_a_sneak_path_dominated_read_map_is_flagged(tmp_path: Path) -> None:
    sim = SimConfig(rows=12, cols=12, fidelity="wires", r_wire_row=1.0, r_wire_col=1.0, seed=1)
    log = _log(tmp_path, read_map((12, 12), 0.2, BiasScheme.FLOATING), sim, "read_map",
               {"backend": "sim", "sim": sim.model_dump()})
    svg = _svg_text(log, tmp_path / "f.svg")
    assert "floating scheme" in svg and "sneak paths dominate them" in svg
    assert "200 mV, floating scheme" in svg
    # the same array read under the grounded scheme raises no flag
    log2 = _log(tmp_path, read_map((12, 12), 0.2, BiasScheme.GROUNDED), sim, "read_map2",
                {"backend": "sim", "sim": sim.model_dump()})
    assert "sneak paths dominate" not in _svg_text(log2, tmp_path / "g.svg")


def test_cell_axes_have_integer_ticks() -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xbarlab.analysis.session_plots import _cell_axes

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((5, 7)))
    _cell_axes(ax, (5, 7))
    fig.canvas.draw()
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        assert np.all(ticks == np.round(ticks))
    plt.close(fig)
