"""Normals drawn in a compiled kernel from a wrapped numpy Generator (`normal_source`): the
numbers numpy draws, from the same stream, for every bit generator numpy ships."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.sim import normal_source

pytestmark = pytest.mark.skipif(not normal_source.AVAILABLE, reason="numba missing")


@pytest.mark.parametrize("bits", [np.random.PCG64, np.random.PCG64DXSM, np.random.Philox,
                                  np.random.MT19937, np.random.SFC64])
def test_kernel_draws_continue_numpys_stream(bits: type) -> None:
    rng, twin = np.random.Generator(bits(11)), np.random.Generator(bits(11))
    source = normal_source.source_of(rng)
    got, want = [], []
    for n in (0, 1, 7, 100_000, 3):
        got.append(rng.standard_normal(2))  # draws from Python in between
        want.append(twin.standard_normal(2))
        got.append(normal_source.standard_normals(source, n))
        want.append(twin.standard_normal(n))
    assert np.array_equal(np.concatenate(got), np.concatenate(want))
    assert rng.standard_normal() == twin.standard_normal()  # the stream went on as numpy's


def test_only_numpy_generators_are_wrapped() -> None:
    assert normal_source.source_of(np.random.RandomState(0)) is None
    assert normal_source.source_of(None) is None
    assert normal_source.source_of(np.random.default_rng(0)) is not None
