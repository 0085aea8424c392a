"""A rich progress bar as a run-engine subscriber, driven by checkpoints with `progress`."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from xbarlab.documents import Document, Event, EventKind, RunStop


class ProgressSubscriber:
    """Advances on every checkpoint carrying ``progress = (done, total)``; counts pulses."""

    def __init__(self, console: Console, description: str = "programming") -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[pulses]} pulses"), TimeRemainingColumn(),
            console=console, transient=False, disable=not console.is_terminal,
        )
        self._task = self._progress.add_task(description, total=None, pulses=0)
        self._pulses = 0

    def __enter__(self) -> ProgressSubscriber:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, doc: Document) -> None:
        if isinstance(doc, Event):
            if doc.kind is EventKind.PULSE:
                self._pulses += 1
            elif doc.kind is EventKind.CHECKPOINT and doc.data and "progress" in doc.data:
                done, total = doc.data["progress"]
                self._progress.update(self._task, completed=done, total=total, pulses=self._pulses)
        elif isinstance(doc, RunStop):
            self._progress.update(self._task, pulses=self._pulses)
