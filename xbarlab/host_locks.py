"""Host-wide exclusive locks by name: one holder on this computer at a time, freed by the
kernel when the holder dies.

`HostLock(key, what)` is an `flock(2)` lock on a small file named after `key` in a folder shared
by every user of the host (``$XBARLAB_LOCK_DIR``, default ``<tmp>/xbarlab-locks``). The kernel
releases it when the holder's file descriptor is closed, so a killed process never leaves a
stale lock. The file records who holds it (pid, command, since when) for the refusal's message
(`Held`). Used for instrument addresses (`xbarlab.bench.lock`: one session per instrument) and
for the log a writer is filling (`xbarlab.log.writer`: one writer per log).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

LOCK_DIR_ENV = "XBARLAB_LOCK_DIR"


class Held(RuntimeError):
    """The lock is held by another holder; `holder` says who, as a phrase."""

    def __init__(self, key: str, holder: str) -> None:
        super().__init__(f"{key} is held by {holder}")
        self.key, self.holder = key, holder


def lock_dir(shared: bool = True) -> Path:
    """The folder of the lock files (created, writable by every user of the host); with
    `shared` False, this user's own (when another user's folder cannot be written)."""
    folder = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "xbarlab-locks")
    if not shared:
        folder = Path(tempfile.gettempdir()) / f"xbarlab-locks-{os.getuid()}"
    if not folder.is_dir():
        if folder.exists():
            raise NotADirectoryError(errno.ENOTDIR, f"the lock folder {folder} "
                                     f"({LOCK_DIR_ENV}) is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # shared like /tmp: every user, sticky
            folder.chmod(0o1777 if shared else 0o700)
    return folder


def _file_of(key: str, shared: bool = True) -> Path:
    readable = re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")[-60:]
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return lock_dir(shared) / f"{readable}-{digest}.lock"


def _open_lock_file(key: str) -> tuple[int, Path]:
    """The lock file of `key`, opened. In the shared folder if it can be: another user's
    file can still be locked (read-only); a folder another user made unwritable falls back
    to this user's own (which keeps this user's sessions apart, not other users')."""
    path = _file_of(key)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666), path
    except PermissionError:
        pass
    with contextlib.suppress(OSError):
        return os.open(path, os.O_RDONLY), path
    try:
        path = _file_of(key, shared=False)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600), path
    except OSError as exc:
        own = Path(tempfile.gettempdir()) / f"xbarlab-locks-{os.getuid()}"
        raise OSError(exc.errno, f"cannot take the lock of {key}: neither {lock_dir()} nor "
                                 f"{own} can be written ({exc.strerror}); set "
                                 f"{LOCK_DIR_ENV} to a folder every xbarlab user can write"
                      ) from None


def _holder_text(path: Path) -> str:
    """Who holds the lock of `path`, as a phrase (what the holder wrote there)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    who = "this process" if info.get("pid") == os.getpid() else f"pid {info.get('pid')}"
    command, since = info.get("command"), str(info.get("since") or "")
    if since.startswith(time.strftime("%Y-%m-%d ")):
        since = since.split(" ", 1)[1]  # today: the time says it
    return (f"`{command}`, " if command else "") + who + (f", since {since}" if since else "")


def _command() -> str:
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    text = " ".join(argv)
    return text if len(text) <= 80 else text[:77] + "..."


class HostLock:
    """The host-wide lock named `key` (see the module doc); `acquire` never waits."""

    def __init__(self, key: str, holder: str = "") -> None:
        self.key = key
        self.holder = holder  # who takes it, for a refusal's message (default: the command)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> HostLock:
        """Take the lock now; `Held` naming the holder if another one has it."""
        if self._fd is not None:
            return self
        fd, path = _open_lock_file(self.key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Held(self.key, _holder_text(path)) from None
        except BaseException:
            os.close(fd)
            raise
        with contextlib.suppress(OSError):  # who holds it, for the message of a refusal
            if path.parent == lock_dir():
                os.fchmod(fd, 0o666)
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "command": self.holder or _command(), "key": self.key,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")})
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (idempotent). The file stays: deleting one another process has
        just opened would let two processes lock two different files."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            os.close(fd)  # closing releases the flock

    def __enter__(self) -> HostLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
