"""Serve the watch page with Bokeh's server on a loopback port."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from xbarlab.watch.page import build_document


class WatchServer:
    """A Bokeh server with one application, the watch page of `path`, at ``/``.

    The server binds at construction (`port` 0: a free port, see `url`); `run()` serves until
    `stop()` (or Ctrl-C). Only loopback: the page shows lab data.
    """

    def __init__(self, path: Path, port: int = 5006, poll_ms: int = 500,
                 address: str = "127.0.0.1") -> None:
        from bokeh.application import Application
        from bokeh.application.handlers.function import FunctionHandler
        from bokeh.server.server import Server

        if port:
            _check_port(address, port)  # tornado leaks its socket when the bind fails
        app = Application(FunctionHandler(partial(build_document, path=path, poll_ms=poll_ms)))
        self.server = Server({"/": app}, port=port, address=address, num_procs=1)
        tornado = getattr(self.server, "_tornado", None)
        origins = getattr(tornado, "websocket_origins", None)
        if isinstance(origins, set):  # the default allows localhost:<port> only
            origins.add(f"{address}:{self.server.port}")
        self.port: int = int(self.server.port or port)
        self.url = f"http://localhost:{self.port}/"

    def run(self, on_start: Callable[[], Any] | None = None) -> None:
        """Serve until `stop()`; `on_start` runs on the server's loop once it listens."""
        self.server.start()
        loop = self.server.io_loop
        if on_start is not None:
            loop.add_callback(on_start)
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C and SIGTERM stop the loop between callbacks (a KeyboardInterrupt raised
            # inside a session callback could be swallowed on the way)
            aio = getattr(loop, "asyncio_loop", None)
            for sig in (signal.SIGINT, signal.SIGTERM):
                if aio is not None:
                    aio.add_signal_handler(sig, loop.stop)
                else:  # pragma: no cover - tornado always runs on asyncio since 5.0
                    signal.signal(sig, lambda signum, frame: loop.add_callback(loop.stop))
        with contextlib.suppress(KeyboardInterrupt):
            loop.start()
        self.server.stop()

    def stop(self) -> None:
        """Stop serving (thread-safe)."""
        loop = self.server.io_loop
        loop.add_callback(loop.stop)


def _check_port(address: str, port: int) -> None:
    """Raise `OSError` if `port` cannot be bound on `address` (the socket is closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tornado binds
        s.bind((address, port))
