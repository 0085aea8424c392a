"""Run progress as a run-engine subscriber, driven by checkpoints with ``progress``.

In a terminal: a rich progress bar. Anywhere else (nohup, CI logs, a pipe): one plain line
every `interval` seconds and one at the end, so a long run shows it is alive.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from xbarlab.cli.console import Console
from xbarlab.documents import Document, Event, EventKind, RunStop
from xbarlab.units import duration


class ProgressSubscriber:
    """Advances on every checkpoint carrying ``progress = (done, total)``; counts pulses."""

    def __init__(self, console: Console, description: str = "programming", *,
                 plain: bool | None = None, interval: float = 10.0) -> None:
        self.console = console
        self.plain = (not console.is_terminal) if plain is None else plain
        self.interval = interval
        self._description = description
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[pulses]} pulses"), TimeRemainingColumn(),
            console=console, transient=False, disable=self.plain,
        )
        self._task = self._progress.add_task(description, total=None, pulses=0)
        self._pulses = 0
        self.compliance: dict[str, int] = {"pulse": 0, "read": 0}  # operations that hit it
        self.operations: dict[str, int] = {"pulse": 0, "read": 0}
        self._done: tuple[int, int] | None = None
        self._pass: int | None = None
        self._t0 = time.monotonic()
        self._last_line = self._t0

    def __enter__(self) -> ProgressSubscriber:
        self._t0 = self._last_line = time.monotonic()
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def line(self) -> str:
        """The plain progress line: what is done so far."""
        parts = [self._description]
        if self._done is not None:
            done, total = self._done
            parts.append(f"{done}/{total} cells")
            if self._pass is not None:
                parts.append(f"pass {self._pass}")
        parts.append(f"{self._pulses} pulses")
        parts.append(f"{duration(time.monotonic() - self._t0)} elapsed")
        return ": ".join(parts[:1]) + ": " + ", ".join(parts[1:])

    def _plain_tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(self.line(), highlight=False, soft_wrap=True)

    def __call__(self, doc: Document) -> None:
        if isinstance(doc, Event):
            if doc.kind in (EventKind.PULSE, EventKind.READ):
                self.operations[doc.kind.value] += 1
                if doc.compliance.any():
                    self.compliance[doc.kind.value] += 1
            if doc.kind is EventKind.PULSE:
                self._pulses += 1
            elif doc.kind is EventKind.CHECKPOINT and doc.data and "progress" in doc.data:
                done, total = doc.data["progress"]
                self._done = (int(done), int(total))
                if "pass" in doc.data:
                    self._pass = int(doc.data["pass"])
                self._progress.update(self._task, completed=done, total=total, pulses=self._pulses)
            if self.plain:
                self._plain_tick()
        elif isinstance(doc, RunStop):
            self._progress.update(self._task, pulses=self._pulses)
            if self.plain:
                self._plain_tick(force=True)
