"""The compiled kernels' disk cache follows every kernel module's source (xbarlab.sim.jit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xbarlab.sim import jit


def test_the_cache_folder_changes_with_any_kernel_source(tmp_path: Path) -> None:
    a, b = tmp_path / "a_kernels.py", tmp_path / "b_kernels.py"
    a.write_text("def f(x):\n    return x\n")
    b.write_text("def g(x):\n    return f(x)\n")
    first = jit.kernel_cache_dir([a, b], tmp_path)
    assert first == jit.kernel_cache_dir([b, a], tmp_path)  # order does not matter
    a.write_text("def f(x):\n    return x + 1\n")  # the callee changes, not the caller
    assert jit.kernel_cache_dir([a, b], tmp_path) != first
    assert first.parent == tmp_path and first.name.startswith("numba-")


@pytest.mark.skipif(not jit.AVAILABLE, reason="numba not installed")
def test_the_kernels_are_cached_under_their_sources_hash() -> None:
    import os

    import numba

    if os.environ.get("NUMBA_CACHE_DIR"):
        pytest.skip("NUMBA_CACHE_DIR set: numba's cache goes where it says")
    here = Path(jit.__file__).parent
    expected = jit.kernel_cache_dir((here / f"{m}.py" for m in jit.KERNEL_MODULES),
                                    here / "__pycache__")
    if not os.access(here, os.W_OK):
        pytest.skip("read-only install: numba's own cache locations")
    assert Path(numba.config.CACHE_DIR) == expected
    assert all((here / f"{m}.py").is_file() for m in jit.KERNEL_MODULES)


def test_every_module_with_kernels_is_hashed() -> None:
    """A new kernel module left out of `KERNEL_MODULES` would bring the stale cache back."""
    package = Path(jit.__file__).parent.parent
    with_kernels = {
        path.stem for path in package.rglob("*.py")
        if "njit" in path.read_text() or "compile_kernel" in path.read_text()
    }
    assert with_kernels <= set(jit.KERNEL_MODULES), with_kernels - set(jit.KERNEL_MODULES)
