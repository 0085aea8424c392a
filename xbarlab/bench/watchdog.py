"""The session supervisor: a second process that makes the bench safe when the session dies.

Instruments keep their last state when the host stops talking to them (none of the bench's
SMUs or matrices turns its output off on a lost link), so a session killed by SIGKILL, the OOM
killer or a crash would leave outputs on and relays closed. Every bench session therefore
starts a `Supervisor`:

- a separate Python process (its own session id: Ctrl-C and a closed terminal do not reach
  it; it ignores SIGINT, SIGTERM and SIGHUP while it guards),
- connected to the session by a pipe on its stdin. The session never writes to it except to
  say goodbye, so the supervisor learns of the session's death, whatever killed it, from the
  end-of-file the kernel delivers the moment the last copy of the write end is closed: no
  heartbeat period to wait for,
- which then opens its own links to every instrument of the bench config (the dead process's
  sockets and serial ports were freed by the kernel), puts each in its safe state (abort, 0 V,
  outputs off; then relays open; then boards off), logs what it did and how long it took (a
  line on stderr and in `<log>.safety.txt` next to the HDF5 log), and exits; instruments
  that did not answer (links down when the session died) are tried again with growing
  pauses for up to `RETRY_FOR` (10 min), unless a new session takes the bench meanwhile.

A clean session end sends ``bye`` (the session reached the safe state itself: the supervisor
exits without touching anything) or ``unsafe`` (the session could not confirm the safe state:
the supervisor tries again on fresh links, for up to `RETRY_FOR`).

The rescue itself (opening links, driver safe states) lives above this layer; the opener names
it as ``"module:function"`` (`xbarlab.drivers.rescue:rescue_bench`), a function of the bench
config (a dict) that returns one line per instrument and raises nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from xbarlab.bench.lock import IN_USE  # in a rescue's line: a new session has the bench

READY = "ready"
BYE = "bye"
UNSAFE = "unsafe"
LOG = "log "


_DETACHED: list[subprocess.Popen[str]] = []
"""Supervisors left working on their own after an unsafe end (kept referenced, not waited)."""


class SupervisorError(RuntimeError):
    """The supervisor could not be started or is gone: the bench is not guarded."""


def safety_log_path(log: Path) -> Path:
    """Where the supervisor notes what it did, next to the HDF5 log `log`."""
    return log.with_name(log.name + ".safety.txt")


class Supervisor:
    """The session side: starts the supervisor process, checks it lives, says goodbye."""

    def __init__(self, config: Mapping[str, Any], rescue: str, *,
                 start_timeout: float = 60.0) -> None:
        self.config = dict(config)
        self.rescue = rescue
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self._ready = False

    def start(self) -> Supervisor:
        """Start the process (returns at once; `wait_ready` waits for it to be armed)."""
        if self.proc is not None:
            return self
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xbarlab.bench.watchdog", self.rescue],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True, close_fds=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(self.config) + "\n")
        self.proc.stdin.flush()
        return self

    def wait_ready(self) -> None:
        """Block until the supervisor reports it guards the bench (imports done, links known);
        raises `SupervisorError` if it does not within `start_timeout`."""
        if self._ready:
            return
        proc = self.start().proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                self.stop(safe=True)
                raise SupervisorError("the safety supervisor did not start "
                                      f"(exit code {proc.returncode}); refusing to run the bench "
                                      "unguarded")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
            if ready:
                line = proc.stdout.readline().strip()
                if line == READY:
                    self._ready = True
                    return

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise `SupervisorError` unless the supervisor is armed and alive."""
        self.wait_ready()
        if not self.alive:
            raise SupervisorError("the safety supervisor process is gone; the bench would be "
                                  "unguarded if this session died: stopping")

    def log_to(self, log: Path) -> None:
        """Tell the supervisor where the session's HDF5 log is (its note goes next to it)."""
        self._send(LOG + str(Path(log).resolve()))

    def stop(self, safe: bool) -> None:
        """End of session. `safe`: the bench is in its safe state (the supervisor exits without
        acting); otherwise it tries the safe state again on its own links."""
        proc = self.proc
        if proc is None:
            return
        self._send(BYE if safe else UNSAFE)
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        self.proc = None
        if not safe:  # it works on alone (its own session), the session need not wait
            _DETACHED.append(proc)
            return
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # it had nothing left to do
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            assert proc.stdout is not None
            proc.stdout.close()

    def _send(self, line: str) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.closed:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.write(line + "\n")
            proc.stdin.flush()


# -- the supervisor process -----------------------------------------------------------------------
Rescue = Callable[[Mapping[str, Any]], list[str]]


def _load(target: str) -> Rescue:
    module, _, name = target.partition(":")
    mod = importlib.import_module(module)
    prepare = getattr(mod, "prepare", None)
    if callable(prepare):
        prepare()  # warm up (imports, VISA resource manager) so the rescue itself is fast
    fn: Rescue = getattr(mod, name)
    return fn


def _note(message: str, log: Path | None, stderr: bool = True) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    line = f"{stamp} xbarlab supervisor: {message}"
    if stderr or log is None:
        with contextlib.suppress(OSError):
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    if log is not None:
        with contextlib.suppress(OSError), safety_log_path(log).open("a", encoding="utf-8") as f:
            f.write(line + "\n")


RETRY_FOR = 600.0
"""s: how long the supervisor keeps trying instruments that did not answer its rescue (a
network switch rebooting, a LAN cable out for a minute): the bench must not stay switched on
because its links were down at the moment the session died."""


RETRY_ENV = "XBARLAB_SAFETY_RETRY_S"
"""Environment variable: `RETRY_FOR` in seconds (0: one attempt only)."""


def _retrying(rescue: Rescue, config: Mapping[str, Any], lines: list[str], t0: float,
              retry_for: float, sleep: Callable[[float], None]) -> tuple[bool, list[str], int]:
    """Run the rescue again, with growing pauses (1, 2, 4, 8, then 15 s), until every
    instrument is safe, a new session holds the bench, or `retry_for` s have passed since `t0`.
    Returns (safe, the last lines, attempts)."""
    attempts = 1
    while time.monotonic() - t0 < retry_for and not any(IN_USE in ln for ln in lines):
        sleep(min(2.0 ** (attempts - 1), 15.0))
        attempts += 1
        lines, ok = _attempt(rescue, config)
        if ok:
            return True, lines, attempts
    return False, lines, attempts


def _attempt(rescue: Rescue, config: Mapping[str, Any]) -> tuple[list[str], bool]:
    try:
        lines = rescue(config)
        return lines, all(" safe" in ln and "FAILED" not in ln for ln in lines)
    except Exception as exc:  # the rescue reports per instrument; this is a bug guard
        return [f"rescue failed: {type(exc).__name__}: {exc}"], False


def supervise(rescue: Rescue, config: Mapping[str, Any], commands: IO[str],
              replies: IO[str], session_pid: int, *, retry_for: float = RETRY_FOR,
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Guard until the session says goodbye or dies; 0 when nothing had to be done."""
    with contextlib.suppress(OSError, ValueError):  # a session already dead reads no reply
        replies.write(READY + "\n")
        replies.flush()
    log: Path | None = None
    while True:
        line = commands.readline()
        if line.startswith(LOG):
            log = Path(line[len(LOG):].strip())
            continue
        word = line.strip()
        if word == BYE:
            return 0
        if word and word != UNSAFE:
            continue  # unknown words are ignored; only EOF or UNSAFE make it act
        t0 = time.monotonic()
        why = ("ended without confirming the safe state" if word == UNSAFE
               else "died (its pipe closed without a goodbye)")
        lines, ok = _attempt(rescue, config)
        dt = time.monotonic() - t0
        verdict = "safe state reached" if ok else "safe state NOT reached for every instrument"
        retry = not ok and retry_for > 0 and not any(IN_USE in ln for ln in lines)
        # after an unsafe end the session already told its user where to look: file only
        _note(f"session pid {session_pid} {why}; {verdict} in {dt * 1e3:.0f} ms: "
              + "; ".join(lines)
              + (f"; trying again for up to {retry_for / 60:g} min" if retry else ""),
              log, stderr=word != UNSAFE)
        if not retry:
            return 0 if ok else 1
        ok, lines, attempts = _retrying(rescue, config, lines, t0, retry_for, sleep)
        dt = time.monotonic() - t0
        if ok:
            _note(f"safe state reached at attempt {attempts}, {dt:.0f} s after the session "
                  "ended: " + "; ".join(lines), log, stderr=word != UNSAFE)
        elif any(IN_USE in ln for ln in lines):
            _note("a new session holds the bench now (it sets its instruments up itself); "
                  "left to it: " + "; ".join(lines), log, stderr=word != UNSAFE)
        else:
            _note(f"gave up after {attempts} attempts over {dt:.0f} s: safe state NOT reached; "
                  "check the bench by hand before touching it: " + "; ".join(lines), log,
                  stderr=True)
        return 0 if ok else 1


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # only the session's end may stop the guard
    session_pid = os.getppid()
    config = json.loads(sys.stdin.readline() or "null")
    if not isinstance(config, dict) or len(argv) != 1:
        sys.stderr.write("xbarlab supervisor: started without a bench config\n")
        return 2
    rescue = _load(argv[0])
    try:
        retry_for = float(os.environ.get(RETRY_ENV, RETRY_FOR))
    except ValueError:
        retry_for = RETRY_FOR
    return supervise(rescue, config, sys.stdin, sys.stdout, session_pid, retry_for=retry_for)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: the session waiting for a goodbye is not held up
