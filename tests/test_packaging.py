"""A built wheel carries what an installed xbarlab needs outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_every_device_preset(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("xbarlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted(p.name for p in (ROOT / "data" / "devices").glob("*.yaml"))
    assert presets
    for name in presets:
        assert f"xbarlab/presets/{name}" in names
    assert "xbarlab/drivers/base.py" in names and "xbarlab/protocols/write_verify.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_build_requirements_match_the_license_metadata() -> None:
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requires = meta["build-system"]["requires"]
    # an SPDX expression in project.license (PEP 639) needs setuptools >= 77
    assert isinstance(meta["project"]["license"], str)
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    assert int(setuptools.split(">=")[1].split(".")[0]) >= 77
    for name in meta["project"]["license-files"]:
        assert "MIT License" in (ROOT / name).read_text(encoding="utf-8")


def test_presets_resolve_without_a_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xbarlab.sim import presets

    fake_pkg = tmp_path / "site" / "xbarlab"
    (fake_pkg / "sim").mkdir(parents=True)
    (fake_pkg / "presets").mkdir()
    monkeypatch.delenv(presets.PRESET_DIR_ENV, raising=False)
    monkeypatch.setattr(presets, "__file__", str(fake_pkg / "sim" / "presets.py"))
    assert presets.preset_dir() == fake_pkg / "presets"
    monkeypatch.setenv(presets.PRESET_DIR_ENV, str(tmp_path))
    assert presets.preset_dir() == tmp_path
