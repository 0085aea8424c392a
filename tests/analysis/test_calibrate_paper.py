"""The paper's own data (Drolet et al. 2023 reference release): the published disturb figures
are reproduced from delta_dicts.json, and the shipped preset's simulated 8 x 8 lab sessions
match the measured per-k disturb and the published tuning imprecision (within the margins
below; the measured differences are in the README). Skips without the reference folder."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.analysis.calibrate_paper import paper_check, published_disturb
from xbarlab.analysis.derive_sherbrooke import article_dir

FOLDER = article_dir()
pytestmark = pytest.mark.skipif(FOLDER is None, reason="reference data not present "
                                "(set XBARLAB_REFERENCE_DIR or provide ../shared/reference)")


def test_published_disturb_figures_reproduced() -> None:
    assert FOLDER is not None
    stats = published_disturb(FOLDER)
    # the reference README: k=1: 1259 samples, mean -0.4 uS, std 6.7 uS; k=30: -7.7, 18.5
    n1, m1, s1 = stats[1]
    assert n1 == 1259
    assert m1 * 1e6 == pytest.approx(-0.4, abs=0.05)
    assert s1 * 1e6 == pytest.approx(6.7, abs=0.05)
    _, m30, s30 = stats[30]
    assert m30 * 1e6 == pytest.approx(-7.7, abs=0.05)
    assert s30 * 1e6 == pytest.approx(18.5, abs=0.05)


@pytest.mark.slow  # ten simulated 8 x 8 write-verify sessions (~10 s)
def test_shipped_preset_against_the_measured_disturb_and_tuning() -> None:
    check = paper_check("tio2-o921c", sessions=10, seed=0, folder=FOLDER)
    assert check is not None
    for i, (lo, hi) in enumerate(check.k_bins):
        print(f"k {lo}-{hi}: mean {check.mean_meas[i] * 1e6:+.2f} / {check.mean_sim[i] * 1e6:+.2f}"
              f" uS, std {check.std_meas[i] * 1e6:.2f} / {check.std_sim[i] * 1e6:.2f} uS, "
              f"KS p {check.ks_p[i]:.2g} (measured / simulated)")
    print("tuning std %:", np.round(check.tuning_sim, 3), "authors' model (line and offset "
          "spread):", np.round(check.tuning_paper_total, 3), "line alone:",
          np.round(check.tuning_paper, 3), "mean %:", np.round(check.tuning_mean_sim, 3))
    # k <= 40 (>= 1000 measured devices per bin): mean within 2 uS, std within 25 %
    well = np.array([hi <= 40 for _, hi in check.k_bins])
    assert np.all(np.abs(check.mean_sim - check.mean_meas)[well] < 2e-6)
    assert np.all(np.abs(check.std_sim / check.std_meas - 1)[well] < 0.25)
    # the spread of programmed devices around their targets against the authors' whole
    # tuning model (40 sessions: -16, -12, -13, +5 % from 150 to 450 µS); the published line
    # alone is only its scatter part (the simulated spread is 40 % above it at 450 µS)
    assert np.all(np.abs(check.tuning_sim / check.tuning_paper_total - 1) < 0.25)
    # devices land below their targets on average, as the authors' offset says (-0.589 %),
    # though by less (-0.18 % over 40 sessions; +0.03 % in the lowest bin)
    assert float(np.mean(check.tuning_mean_sim)) < 0
