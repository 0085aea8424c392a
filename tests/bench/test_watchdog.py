"""The supervisor's protocol: a goodbye ends it without touching the bench, an end-of-file (the
session died) or an unsafe goodbye makes it run the rescue once and note it; the session side
refuses to go on when its supervisor is gone."""

from __future__ import annotations

import io
import json
import os
import signal
import time
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


def _supervise(commands: str, rescue: Rescue, **kwargs: Any) -> tuple[int, str]:
    replies = io.StringIO()
    code = supervise(rescue, CONFIG, io.StringIO(commands), replies, session_pid=1234,
                     **{"retry_for": 0.0, **kwargs})
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


class Recovering(Rescue):
    """Instruments that answer only from the third attempt (a network switch rebooting)."""

    def __call__(self, config: Mapping[str, Any]) -> list[str]:
        super().__call__(config)
        return (["smu FAILED (TransportError: connection refused)"] if self.calls < 3
                else ["smu safe (outputs off, 3 ms)"])


def test_instruments_that_do_not_answer_are_tried_again(tmp_path: Path) -> None:
    """Links down at the moment the session died must not leave the bench switched on: the
    supervisor tries again, with growing pauses, until every instrument is safe."""
    log = tmp_path / "run.h5"
    pauses: list[float] = []
    rescue = Recovering([])
    code, _ = _supervise(f"log {log}\n", rescue, retry_for=600.0, sleep=pauses.append)
    assert code == 0 and rescue.calls == 3 and pauses == [1.0, 2.0]
    note = safety_log_path(log).read_text(encoding="utf-8").splitlines()
    assert "NOT reached" in note[0] and "trying again for up to 10 min" in note[0]
    assert "safe state reached at attempt 3" in note[1] and len(note) == 2


def test_the_retries_end_and_say_so(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "run.h5"
    rescue = Rescue(["smu FAILED (TransportError: connection refused)"])
    code, _ = _supervise(f"log {log}\nunsafe\n", rescue, retry_for=0.2,
                         sleep=lambda s: time.sleep(0.05))
    assert code == 1 and rescue.calls >= 2
    note = safety_log_path(log).read_text(encoding="utf-8")
    assert f"gave up after {rescue.calls} attempts" in note
    assert "gave up" in capfd.readouterr().err  # said on the terminal, even after "unsafe"


def test_a_new_session_on_the_bench_is_left_alone(tmp_path: Path) -> None:
    log = tmp_path / "run.h5"
    rescue = Rescue(["smu (GPIB0::24::INSTR) is in use by another xbarlab session (`xbarlab "
                     "run ...`, pid 7, since 10:00:00): not touched (a new session has the "
                     "bench)"])
    pauses: list[float] = []
    code, _ = _supervise(f"log {log}\n", rescue, retry_for=600.0, sleep=pauses.append)
    assert code == 1 and rescue.calls == 1 and pauses == []
    assert "not touched" in safety_log_path(log).read_text(encoding="utf-8")
