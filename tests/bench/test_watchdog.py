"""The supervisor's protocol: a goodbye ends it without touching the bench, an end-of-file (the
session died) or an unsafe goodbye makes it run the rescue once and note it; the session side
refuses to go on when its supervisor is gone."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from xbarlab.bench.watchdog import READY, Supervisor, SupervisorError, safety_log_path, supervise

CONFIG = {"name": "b"}


class Rescue:
    def __init__(self, lines: list[str]) -> None:
        self.lines, self.calls = lines, 0

    def __call__(self, config: Mapping[str, Any]) -> list[str]:
        assert config == CONFIG
        self.calls += 1
        return self.lines


def _supervise(commands: str, rescue: Rescue) -> tuple[int, str]:
    replies = io.StringIO()
    code = supervise(rescue, CONFIG, io.StringIO(commands), replies, session_pid=1234)
    return code, replies.getvalue()


def test_goodbye_leaves_the_bench_alone() -> None:
    rescue = Rescue(["smu safe (outputs off, 3 ms)"])
    assert _supervise("bye\n", rescue) == (0, READY + "\n") and rescue.calls == 0


def test_end_of_file_means_the_session_died(tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.h5"
    rescue = Rescue(["smu safe (outputs off, 3 ms)", "matrix safe (relays open, 2 ms)"])
    code, _ = _supervise(f"log {log}\n", rescue)  # then EOF, no goodbye
    assert code == 0 and rescue.calls == 1
    note = safety_log_path(log).read_text(encoding="utf-8")
    assert "session pid 1234 died" in note and "safe state reached in" in note
    assert "matrix safe (relays open" in note and note.count("\n") == 1
    assert "safe state reached" in capfd.readouterr().err


def test_an_unsafe_goodbye_is_one_more_attempt_noted_in_the_file(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.h5"
    rescue = Rescue(["smu FAILED (TransportError: refused)"])
    code, _ = _supervise(f"log {log}\nunsafe\n", rescue)
    assert code == 1 and rescue.calls == 1
    assert "NOT reached" in safety_log_path(log).read_text(encoding="utf-8")
    assert capfd.readouterr().err == ""  # the session already told its user


def test_the_session_refuses_to_go_on_without_its_supervisor() -> None:
    sup = Supervisor(CONFIG, "tests.bench.test_watchdog:never_called").start()
    try:
        sup.wait_ready()
        sup.check()  # armed and alive
        assert sup.proc is not None
        os.kill(sup.proc.pid, signal.SIGKILL)
        sup.proc.wait()
        with pytest.raises(SupervisorError, match="gone"):
            sup.check()
    finally:
        sup.stop(safe=True)


def test_a_supervisor_that_cannot_start_is_an_error() -> None:
    sup = Supervisor(CONFIG, "tests.bench.no_such_module:rescue", start_timeout=30)
    with pytest.raises(SupervisorError, match="did not start"):
        sup.wait_ready()


def never_called(config: Mapping[str, Any]) -> list[str]:
    raise AssertionError(json.dumps(dict(config)))


class _BrokenPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_session_dead_before_the_supervisor_was_ready_still_gets_the_rescue() -> None:
    rescue = Rescue(["smu safe (outputs off, 3 ms)"])
    code = supervise(rescue, CONFIG, io.StringIO(""), _BrokenPipe(), session_pid=1)
    assert code == 0 and rescue.calls == 1
