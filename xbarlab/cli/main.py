"""The `xbarlab` command line. Each command group lives in its own module of this package.

No traceback reaches a user: usage errors (an unknown option, a value not among the choices)
print one line and exit 2; an unexpected exception prints one line naming it and exits 1
(``XBARLAB_TRACEBACK=1`` shows the traceback for a bug report).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import Abort

try:  # recent typer vendors click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - typer that still uses click itself
    from click.exceptions import (  # type: ignore[no-redef,assignment,unused-ignore]
        ClickException,
        UsageError,
    )

from xbarlab import __version__
from xbarlab.cli.common import ExitCode, err_console
from xbarlab.interrupts import swallowed

PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR,
                         errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST})
"""Errors of a path the user gave (exit 2, bad input); others (a full disk, an I/O error) are
failures (exit 1)."""


class XbarlabGroup(TyperGroup):
    """The root command: one-line errors instead of usage boxes and tracebacks."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        complete_var: str | None = None, standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except ClickException as exc:
            if not exc.format_message():  # no arguments: click printed the help
                rv = exc.exit_code
                return rv if not standalone_mode else sys.exit(rv)
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, UsageError) and ctx is not None:
                hint = f" (see: {ctx.command_path} --help)"
            err_console.print(f"[bold red]error:[/] {escape(exc.format_message() + hint)}",
                              highlight=False, soft_wrap=True)
            rv = ExitCode.BAD_INPUT if isinstance(exc, UsageError) else exc.exit_code
        except Abort:
            err_console.print("[bold red]aborted[/]", highlight=False)
            rv = ExitCode.ABORTED
        except Exception as exc:
            if os.environ.get("XBARLAB_TRACEBACK"):
                raise
            if swallowed():  # a Ctrl-C Python swallowed broke what it landed in
                err_console.print("[bold red]interrupted[/] (Ctrl-C)", highlight=False)
                rv = ExitCode.ABORTED
                return rv if not standalone_mode else sys.exit(rv)
            if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
                # a file the system refuses (a folder not writable, a read-only disk): said
                # as such, not as a bug; a path to change is bad input
                err_console.print(f"[bold red]error:[/] {escape(str(exc.filename))}: "
                                  f"{escape(exc.strerror)}", highlight=False, soft_wrap=True)
                rv = (ExitCode.BAD_INPUT if exc.errno in PATH_ERRNOS else ExitCode.FAILED)
                return rv if not standalone_mode else sys.exit(rv)
            err_console.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))} (a "
                "bug: please report it; XBARLAB_TRACEBACK=1 shows where it happened)",
                highlight=False, soft_wrap=True)
            rv = ExitCode.FAILED
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        """Parse the command line; a Ctrl-C meanwhile is said in one line (no command ran)."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/] while starting; nothing was done",
                              highlight=False)
            raise

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a Ctrl-C it did not handle itself is said in one line (typer
        turns it into exit 130 without a word)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/] (Ctrl-C)", highlight=False)
            raise


app = typer.Typer(
    name="xbarlab",
    cls=XbarlabGroup,
    help="Program passive TiO2 ReRAM crossbars, on the bench or in simulation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"xbarlab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_show_version, help="print the version and exit")
    ] = False,
) -> None:
    """Program passive TiO2 ReRAM crossbars, on the bench or in simulation.

    Exit codes: 0 done, 1 failed, 2 bad input (nothing run), 3 partial (write-verify with
    cells out of tolerance), 130 aborted."""


def _register() -> None:
    """Attach the command groups (imported here so `--help` stays fast and torch stays lazy)."""
    from xbarlab.cli import (
        bench,
        calibrate,
        device,
        digits,
        emulate,
        log,
        program_network,
        reproduce,
        session,
        sweep,
        watch,
    )

    session.register(app)
    log.register(app)
    device.register(app)
    bench.register(app)
    reproduce.register(app)
    emulate.register(app)
    sweep.register(app)
    watch.register(app)
    calibrate.register(app)
    digits.register(app)
    program_network.register(app)


_register()


if __name__ == "__main__":  # pragma: no cover
    app()
