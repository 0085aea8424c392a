"""Pluggable evaluation sets: built in, registered, module:function, duck-typed."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from xbarlab.network.datasets import EvalSet, as_evalset, load_dataset, register


def test_moons_calibration_split_holds_no_test_point() -> None:
    d = load_dataset("moons")
    test = {tuple(p) for p in d.x_test.tolist()}
    assert not any(tuple(p) in test for p in d.x_cal.tolist())
    assert d.n_inputs == 2 and set(np.unique(d.y_test)) == {0, 1}


def test_module_function_returning_a_plain_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("fake_digits")
    rng = np.random.default_rng(0)
    mod.load = lambda: {"x_cal": rng.uniform(size=(5, 64)), "y_cal": [0, 1, 2, 3, 4],  # type: ignore[attr-defined]
                        "x_test": rng.uniform(size=(3, 64)), "y_test": [9, 8, 7]}
    monkeypatch.setitem(sys.modules, "fake_digits", mod)
    d = load_dataset("fake_digits:load")
    assert isinstance(d, EvalSet) and d.n_inputs == 64 and d.y_test.tolist() == [9, 8, 7]
    assert d.limited(2, 1).x_cal.shape == (2, 64)


def test_registered_loader_and_clear_errors() -> None:
    register("tiny", lambda: EvalSet(np.zeros((2, 3)), np.array([0, 1]), np.ones((1, 3)),
                                     np.array([1]), "tiny"))
    assert load_dataset("tiny").name == "tiny"
    with pytest.raises(ValueError, match="without y_test"):
        as_evalset({"x_cal": [[0.0]], "y_cal": [0], "x_test": [[1.0]]}, "bad")
    with pytest.raises(ValueError, match="cannot load"):
        load_dataset("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="must be inputs"):
        EvalSet(np.zeros((2, 3)), np.array([0]), np.ones((1, 3)), np.array([1]), "x")
