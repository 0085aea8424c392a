"""Find instruments: list the VISA resources a library sees and ask each for its identity.

Only ``*IDN?`` is sent (IEEE 488.2 common command, section 10.14), and only to the resources
listed or named. Every step has a deadline, so a silent address, a port that opens slowly or a
library that blocks while listing cannot hang the caller: listing runs in a helper thread
abandoned after `list_timeout`; each resource is opened and queried by `VisaTransport` (its own
open deadline and the VISA I/O timeout) in a helper thread abandoned after twice `timeout`.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from xbarlab.bench.lock import BenchInUse, instrument_locks
from xbarlab.drivers.transports import TransportError, VisaTransport

T = TypeVar("T")
IDN = "*IDN?"


class DiscoveryError(RuntimeError):
    """The VISA library cannot be loaded or cannot list its resources."""


@dataclass(frozen=True)
class Found:
    """One resource: its identity, or why it has none."""

    resource: str
    identity: str | None
    problem: str = ""


def _bounded(what: str, work: Callable[[], T], seconds: float) -> T:
    """`work()` in a daemon thread; `TimeoutError` naming `what` if it has not returned after
    `seconds` (the thread is abandoned, its late result dropped)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"discover {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"{what}: no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def list_resources(visa_library: str = "@py", list_timeout: float = 10.0) -> list[str]:
    """The resources `visa_library` lists (``?*``: every interface it knows)."""

    def work() -> list[str]:
        import pyvisa

        with warnings.catch_warnings():  # pyvisa-py: "install psutil / zeroconf to scan more"
            warnings.simplefilter("ignore")
            rm = pyvisa.ResourceManager(visa_library)
            return sorted(str(r) for r in rm.list_resources("?*"))

    path, at, backend = visa_library.rpartition("@")
    if at and backend == "sim" and path and not Path(path).is_file():
        raise DiscoveryError(f"VISA library {visa_library!r}: pyvisa-sim definitions file "
                             f"{path} not found")
    try:
        return _bounded("listing VISA resources", work, list_timeout)
    except TimeoutError as exc:
        raise DiscoveryError(f"VISA library {visa_library!r}: {exc}") from None
    except Exception as exc:  # pyvisa raises ValueError, OSError, LibraryError ...
        raise DiscoveryError(f"VISA library {visa_library!r} cannot list resources: "
                             f"{type(exc).__name__}: {_first_line(str(exc))}") from None


def _first_line(text: str) -> str:
    """A library's message without the traceback some of them embed."""
    text = text.split("Traceback (most recent call last)")[0].strip().rstrip("'\"").strip()
    return text.splitlines()[0] if text else "(no message)"


def identify(resource: str, visa_library: str = "@py", timeout: float = 1.0) -> Found:
    """Open `resource`, send ``*IDN?``, close; never raises, never takes much longer than
    twice `timeout`."""

    def work() -> str:
        link = VisaTransport(resource, visa_library=visa_library, timeout=timeout)
        try:
            link.open()
            return link.query(IDN)
        finally:
            link.close()

    # a query into a running session's link could take its reply (pyvisa-sim's instruments
    # are nobody's: not locked)
    lock = instrument_locks({} if visa_library.endswith("@sim") else {resource: resource})
    try:
        lock.acquire()
    except BenchInUse as exc:
        return Found(resource, None, "not queried: " + str(exc).removeprefix(
            f"{resource} ({resource}) is "))
    try:
        idn = _bounded(resource, work, 2 * timeout + 0.5)
    except TransportError as exc:  # the link's own timeouts included
        text = str(exc)
        prefix = f"{resource}: "
        return Found(resource, None, text[len(prefix):] if text.startswith(prefix) else text)
    except TimeoutError as exc:
        return Found(resource, None, str(exc))
    except Exception as exc:
        return Found(resource, None, f"{type(exc).__name__}: {exc}")
    finally:  # (an abandoned query's thread may still hold the link: as a timed-out one does)
        lock.release()
    if not idn or not idn.isprintable() or len(idn.split(",")) < 4:
        return Found(resource, None, f"replied {idn!r} to {IDN}: not an IEEE 488.2 identity "
                                     "(maker, model, serial, firmware)")
    return Found(resource, idn)


def discover(visa_library: str = "@py", timeout: float = 1.0,
             addresses: Iterable[str] = (), list_all: bool = True) -> Iterator[Found]:
    """Every listed resource (when `list_all`) and every address given, with its identity,
    one by one as they answer (listing errors raise `DiscoveryError` before the first)."""
    listed = list_resources(visa_library) if list_all else []
    for resource in dict.fromkeys([*listed, *addresses]):
        yield identify(resource, visa_library, timeout)
