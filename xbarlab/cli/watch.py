"""`xbarlab watch LOG`: follow a session live in the browser (Bokeh server, loopback only)."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from xbarlab.cli.console import Console

err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the `watch` command to `app`."""

    @app.command()
    def watch(
        log: Annotated[Path, typer.Argument(help="HDF5 log of a running or finished session "
                                                 "(may not exist yet: the page waits)")],
        port: Annotated[int, typer.Option(min=0, max=65535,
                                          help="loopback port (0: any free port)")] = 5006,
        no_browser: Annotated[bool, typer.Option("--no-browser",
                                                 help="do not open a browser tab")] = False,
        poll: Annotated[float, typer.Option(min=0.05, max=60.0,
                                            help="seconds between looks at the log")] = 0.5,
    ) -> None:
        """A local web page following LOG live: conductance map (last read per cell), traces
        of the cells you click, progress (operations, cells read, cells in tolerance when the
        protocol has targets) and events (refusals, faults, compliance hits). Ctrl-C stops."""
        from xbarlab.watch.paths import log_path_problem

        problem = log_path_problem(log)
        if problem is not None:
            raise _fail(problem)
        try:
            from xbarlab.watch.server import WatchServer
        except ImportError:
            raise _fail("xbarlab watch needs Bokeh: pip install 'xbarlab[watch]'") from None
        try:
            server = WatchServer(log, port, poll_ms=max(50, round(poll * 1000)))
        except OSError as exc:
            raise _fail(f"cannot listen on 127.0.0.1 port {port}: "
                        f"{exc.strerror or exc}") from None
        typer.echo(f"watching {log} at {server.url} (Ctrl-C to stop)")

        def opened() -> None:
            if not no_browser:
                webbrowser.open(server.url)

        server.run(opened)
