"""Device preset figures and the `xbarlab device` commands."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from xbarlab.analysis.device_plots import iv_curve, pulse_response
from xbarlab.cli.main import app
from xbarlab.sim.presets import load_compact_preset

runner = CliRunner()


def test_pulse_response_sets_then_resets_and_grows_with_amplitude() -> None:
    p = load_compact_preset("tio2-o921c")
    n = 30
    trains = pulse_response(p, amplitudes=((1.1, -1.1), (1.3, -1.4)), n_pulses=n)
    # the highest read conductance: R_on read through the sinh law at v_read
    g_max_read = p.iv.a * np.sinh(p.iv.b * p.v_read) / p.v_read / p.r_on
    for t in trains:
        assert t.g.size == 2 * n + 1
        assert all(b >= a for a, b in pairwise(t.g[: n + 1]))
        assert all(b <= a for a, b in pairwise(t.g[n:]))
        assert t.g[n] > t.g[0] and t.g[-1] < t.g[n]
    assert trains[1].g[n] > trains[0].g[n]
    assert max(t.g.max() for t in trains) <= g_max_read * (1 + 1e-9)


def test_iv_curve_is_odd_and_superlinear() -> None:
    p = load_compact_preset("tio2-o921c")
    v, i = iv_curve(p, 300e-6, v_max=1.0, n=101)
    np.testing.assert_allclose(i, -i[::-1], rtol=1e-12, atol=1e-18)
    assert i[-1] / 1.0 > i[60] / v[60]  # I/V grows with V (sinh)
    assert abs(i[np.argmin(np.abs(v - 0.2))] / 0.2 - 300e-6) < 1e-9


def test_device_list_shows_the_presets() -> None:
    res = runner.invoke(app, ["device", "list"])
    assert res.exit_code == 0
    for name in ("simple", "tio2-o921c", "tio2-sherbrooke-2023", "compact", "statistical"):
        assert name in res.output


def _png_shape(path: Path) -> tuple[int, ...]:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return tuple(matplotlib.image.imread(path).shape)


def test_device_plot_writes_png_files(tmp_path: Path) -> None:
    for name in ("tio2-o921c", "tio2-sherbrooke-2023"):
        out = tmp_path / f"{name}.png"
        res = runner.invoke(app, ["device", "plot", name, "--out", str(out)])
        assert res.exit_code == 0, res.output
        h, w, *_ = _png_shape(out)
        assert w > 600 and h > 300


def test_device_plot_refuses_bad_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["device", "plot", "nope", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "known presets" in res.output and "tio2-o921c" in res.output
    res = runner.invoke(app, ["device", "plot", "tio2-o921c", "--out", str(tmp_path / "x.jpg")])
    assert res.exit_code == 2 and ".png" in res.output
    existing = tmp_path / "there.png"
    existing.write_bytes(b"keep")
    res = runner.invoke(app, ["device", "plot", "tio2-o921c", "--out", str(existing)])
    assert res.exit_code == 2 and existing.read_bytes() == b"keep"
