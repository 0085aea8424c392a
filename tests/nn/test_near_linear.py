"""The near-linear classifier on networks built to be linear or not."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.nn.near_linear import linearity

GRID = np.stack(np.meshgrid(np.linspace(0, 1, 21), np.linspace(0, 1, 21)), -1).reshape(-1, 2)


def test_small_preactivations_are_near_linear() -> None:
    # every hidden unit stays within |z| < 0.3 on [0, 1]^2: the sigmoid is almost a line there
    rng = np.random.default_rng(0)
    w1 = rng.uniform(-0.1, 0.1, (8, 2))
    b1 = rng.uniform(-0.1, 0.1, 8)
    net = [(w1, b1), (rng.normal(0, 5, (1, 8)), np.array([0.1]))]
    lin = linearity(net, GRID)
    assert lin.near_linear and lin.logit_r2 > 0.999 and lin.unit_linearity > 0.99


def test_a_bump_is_not_near_linear() -> None:
    # two steep units make a ridge along x1 = 0.5: class 1 on a band, a curved function
    w1 = np.array([[20.0, 0.0], [-20.0, 0.0]])
    b1 = np.array([-6.0, 14.0])  # steps at x1 = 0.3 and x1 = 0.7
    net = [(w1, b1), (np.array([[10.0, 10.0]]), np.array([-15.0]))]
    lin = linearity(net, GRID)
    assert not lin.near_linear
    assert lin.logit_r2 < 0.5 and lin.agreement < 0.9 and lin.unit_linearity < 0.9


def test_saturated_but_straight_boundary_is_judged_on_the_logit() -> None:
    # one steep unit: a straight boundary, but the logit is a step, not affine
    net = [(np.array([[30.0, 30.0]]), np.array([-30.0])), (np.array([[8.0]]), np.array([-4.0]))]
    lin = linearity(net, GRID)
    assert lin.agreement > 0.9 and lin.logit_r2 < 0.98 and not lin.near_linear


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="one hidden layer"):
        linearity([(np.ones((1, 2)), np.ones(1))], GRID)
    with pytest.raises(ValueError, match="at least 3"):
        linearity([(np.ones((2, 2)), np.ones(2)), (np.ones((1, 2)), np.ones(1))], GRID[:2])
