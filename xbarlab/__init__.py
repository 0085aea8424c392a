"""xbarlab: program passive TiO2 ReRAM crossbars on the bench and in simulation, one code path."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xbarlab")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
