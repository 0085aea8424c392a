"""The bias check's rule: a rate's bias enters its standard error in quadrature, and a rate
called determined is withdrawn (with a warning) when that exceeds the determined rule."""

from __future__ import annotations

import pytest

from xbarlab.analysis.calibrate_bias import apply_bias
from xbarlab.analysis.calibrate_determined import DETERMINED_REL_SE


def test_bias_enters_the_standard_error() -> None:
    rates = [{"polarity": "set", "rel_stderr": 0.02, "determined": True},
             {"polarity": "reset", "rel_stderr": 0.01, "determined": True},
             {"polarity": "other", "rel_stderr": 0.01, "determined": True}]
    warnings: list[str] = []
    apply_bias(rates, {"set": -0.06, "reset": 0.01}, warnings)
    assert rates[0]["rel_stderr_with_bias"] == pytest.approx((0.02**2 + 0.06**2) ** 0.5)
    assert rates[0]["rel_stderr_with_bias"] > DETERMINED_REL_SE
    assert rates[0]["determined"] is False and rates[0]["bias_check"] == -0.06
    assert rates[1]["determined"] is True  # 1.4 %: still within the rule
    assert "bias_check" not in rates[2] and rates[2]["determined"] is True
    assert len(warnings) == 1 and warnings[0].startswith("rate set: the bias check")
    assert "-6.0%" in warnings[0]
