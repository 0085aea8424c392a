"""Child process of the damaged-file tests: runs every reader and `xbarlab log` command on a
file and reports, per operation, what it returned (a hash), how it refused, and how long it took.

Reads one JSON request per line on stdin ({"path", "orig", "work"}), answers one JSON line.
Run in a child so that the parent can kill it if anything hangs.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import h5py
import numpy as np
from numpy.lib.recfunctions import repack_fields
from typer.testing import CliRunner

from xbarlab.cli.main import app
from xbarlab.log.reader import LogError, LogReader

ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
runner = CliRunner()


def _h(data: Any) -> str:
    if isinstance(data, np.ndarray):
        raw = data.tobytes() + str(data.dtype).encode() + str(data.shape).encode()
    elif hasattr(data, "to_csv"):
        raw = data.to_csv(index=False).encode()
    else:
        raw = repr(data).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _reader(path: str, get: Callable[[LogReader], Any]) -> Any:
    with LogReader(path) as log:
        return get(log)


def _follow(log: LogReader) -> Any:
    blocks = list(log.follow(poll_interval=0.01, timeout=0.2))
    return np.concatenate(blocks) if blocks else np.zeros(0)


READERS: dict[str, Callable[[LogReader], Any]] = {
    "info": lambda log: (log.info, log.end, log.status, log.counts()),
    "measurements": lambda log: log.measurements(),
    "events": lambda log: log.events(),
    "mvm": lambda log: tuple(_h(a) for a in (log.mvm().inputs, log.mvm().outputs,
                                            log.mvm().event)),
    "final": lambda log: log.final_conductances(),
    "annotations": lambda log: log.annotations(),
    "follow": _follow,
}


def _cli(args: list[str]) -> dict[str, Any]:
    res = runner.invoke(app, args, env=ENV)
    out: dict[str, Any] = {"code": res.exit_code, "stdout": _h(res.stdout),
                           "stderr": res.stderr.strip()}
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        out["etype"] = type(res.exception).__name__
        out["trace"] = "".join(traceback.format_exception(res.exception))[-600:]
    return out


def _salvaged_rows_are_original(recovered: Path, orig: str) -> bool:
    """Every salvaged measurement row (event index aside) is an original row, in order."""
    with h5py.File(orig, "r", swmr=True) as f:
        want = f["measurements"][()]
    with LogReader(recovered) as log:
        got = log.measurements_array()
    fields = [n for n in want.dtype.names if n not in ("event", "protocol", "step")]
    w = [bytes(r) for r in repack_fields(want[fields])]
    pos = 0
    for row in repack_fields(got[fields]):
        b = bytes(row)
        while pos < len(w) and w[pos] != b:
            pos += 1
        if pos == len(w):
            return False
        pos += 1
    return True


def run(req: dict[str, Any]) -> dict[str, Any]:
    path, work = req["path"], Path(req["work"])
    results: dict[str, Any] = {}
    for name, get in READERS.items():
        t0 = time.monotonic()
        try:
            results[name] = {"ok": True, "hash": _h(_reader(path, get))}
        except (LogError, FileNotFoundError) as exc:
            results[name] = {"ok": False, "err": str(exc), "etype": type(exc).__name__}
        except BaseException as exc:  # a traceback would reach the user
            results[name] = {"ok": False, "err": str(exc), "etype": type(exc).__name__,
                             "trace": traceback.format_exc()[-600:]}
        results[name]["t"] = time.monotonic() - t0
    for name, args in (
        ("summary", ["log", "summary", path]),
        ("export", ["log", "export", path, "--csv", str(work / "m.csv"), "--force"]),
        ("export-events", ["log", "export", path, "--csv", str(work / "e.csv"), "--force",
                           "--table", "events"]),
        ("verify", ["log", "verify", path]),
        ("recover", ["log", "recover", path, "--out", str(work / "r.h5"), "--force"]),
    ):
        t0 = time.monotonic()
        r = _cli(args)
        r["t"] = time.monotonic() - t0
        if name.startswith("export") and r["code"] == 0:
            csv = work / ("m.csv" if name == "export" else "e.csv")
            r["stdout"] = _h(csv.read_bytes())
        if name == "recover" and r["code"] == 0:
            try:
                r["subset"] = _salvaged_rows_are_original(work / "r.h5", req["orig"])
                r["verified"] = _cli(["log", "verify", str(work / "r.h5")])["code"]
            except BaseException as exc:
                r["subset"] = False
                r["trace"] = traceback.format_exc()[-600:]
                r["etype"] = type(exc).__name__
        results[name] = r
    return results


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        print(json.dumps({"id": request["id"], **run(request)}), flush=True)


if __name__ == "__main__":
    main()
