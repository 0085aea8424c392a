"""xbarlab: program passive TiO2 ReRAM crossbars on the bench and in simulation, one code path."""

__all__ = ["__version__"]

_VERSION: list[str] = []


def __getattr__(name: str) -> str:
    """`__version__`, looked up on first use: importing xbarlab imports nothing, so a Ctrl-C
    while the command line starts lands in code that handles it."""
    if name != "__version__":
        raise AttributeError(f"module 'xbarlab' has no attribute {name!r}")
    if not _VERSION:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _VERSION.append(version("xbarlab"))
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            _VERSION.append("0.0.0+unknown")
    return _VERSION[0]
