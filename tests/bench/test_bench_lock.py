"""One session per instrument: a second session on a bench that is in use is refused before
it sends a single command, and a killed session never leaves its bench locked.

Before the lock, a second `xbarlab run` on a running emulated bench sent a pulse through the
first session's routing and then switched that session's outputs off (its safe state)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.emulators.benches import K2600_707B, SIM, bench_config, emulated
from xbarlab.bench.lock import BenchInUse, instrument_locks, lock_key
from xbarlab.config import ConfigError
from xbarlab.crossbar import BiasScheme
from xbarlab.drivers.discover import identify
from xbarlab.drivers.emulators.bench import EmulatedBench
from xbarlab.drivers.registry import check_identities, open_bench
from xbarlab.host_locks import LOCK_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))


@pytest.mark.parametrize("a, b", [
    ("TCPIP::192.168.0.12::INSTR", "tcpip0::192.168.0.12::inst0::INSTR"),
    ("GPIB::24::INSTR", "GPIB0::24::INSTR"),
    ("USB::0x05E6::0x2450::04400002::INSTR", "usb0::0x05e6::0x2450::04400002::instr"),
    ("TCPIP::10.0.0.5::5025::SOCKET", "TCPIP0::10.0.0.5::5025::SOCKET"),
])
def test_two_spellings_of_one_visa_address_are_one_instrument(a: str, b: str) -> None:
    assert lock_key(a) == lock_key(b)


def test_different_instruments_are_different_keys() -> None:
    keys = {lock_key(a) for a in ("GPIB0::24::INSTR", "GPIB1::24::INSTR", "GPIB0::25::INSTR",
                                   "TCPIP::10.0.0.5::INSTR", "TCPIP::10.0.0.5::inst1::INSTR")}
    assert len(keys) == 5


def test_a_device_path_and_its_symlink_are_one_instrument(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB0"
    port.touch()
    link = tmp_path / "usb-FTDI_XBL-if00"
    link.symlink_to(port)
    assert lock_key(str(link)) == lock_key(str(port))
    assert lock_key(f"ASRL{link}::INSTR") == lock_key(f"ASRL{port}::INSTR")


def test_a_held_instrument_refuses_a_second_holder_until_released() -> None:
    first = instrument_locks({"smu": "GPIB0::24::INSTR"}).acquire()
    with pytest.raises(BenchInUse, match=r"smu2 \(GPIB::24::INSTR\) is in use .*this process"):
        instrument_locks({"smu2": "GPIB::24::INSTR"}).acquire()
    first.release()
    with instrument_locks({"smu2": "GPIB::24::INSTR"}) as again:
        assert again.held


def test_all_or_none() -> None:
    """A bench of which one instrument is busy takes none of its locks."""
    busy = instrument_locks({"matrix": "GPIB0::16::INSTR"}).acquire()
    bench = instrument_locks({"smu": "GPIB0::24::INSTR", "matrix": "GPIB0::16::INSTR"})
    with pytest.raises(BenchInUse, match="matrix"):
        bench.acquire()
    assert not bench.held
    with instrument_locks({"smu": "GPIB0::24::INSTR"}):  # free: the failed attempt gave it back
        pass
    busy.release()


HOLDER = textwrap.dedent("""
    import sys
    from xbarlab.bench.lock import instrument_locks
    instrument_locks({"smu": "GPIB0::24::INSTR"}).acquire()
    print("held", flush=True)
    sys.stdin.read()
""")


def test_another_process_is_named_and_its_death_frees_the_instrument() -> None:
    with subprocess.Popen([sys.executable, "-c", HOLDER, "run", "read_map"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        _refused_then_freed(holder)


def _refused_then_freed(holder: subprocess.Popen[str]) -> None:
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(BenchInUse) as refused:
            instrument_locks({"smu": "GPIB::24::INSTR"}).acquire()
        assert f"pid {holder.pid}" in str(refused.value) and "run read_map" in str(refused.value)
        holder.send_signal(signal.SIGKILL)  # no clean-up at all: the kernel frees the lock
        holder.wait(timeout=30)
        with instrument_locks({"smu": "GPIB::24::INSTR"}) as mine:
            assert mine.held
    finally:
        holder.kill()
        holder.wait(timeout=30)


def _served(emu: EmulatedBench) -> int:
    return sum(srv.lines_served for srv in emu.servers.values())


def test_a_second_session_on_a_running_bench_sends_nothing() -> None:
    cfg = bench_config(K2600_707B)
    with emulated(cfg, SIM) as (emu, bench):
        xbar = bench.crossbar
        before = xbar.read([(2, 3)], 0.2, BiasScheme.GROUNDED)
        served = _served(emu)
        with pytest.raises(BenchInUse, match="in use by another xbarlab session"):
            open_bench(emu.config(timeout=5.0))
        reports = check_identities(emu.config(timeout=5.0))
        assert [r.ok for r in reports] == [False] * 4
        assert all(r.problem.startswith("not queried: ") for r in reports)
        smu = emu.config().instruments["smu"].address
        found = identify(smu, "@py", timeout=1.0)
        assert found.identity is None and "in use" in found.problem
        assert _served(emu) == served  # not one command reached an instrument
        after = xbar.read([(2, 3)], 0.2, BiasScheme.GROUNDED)  # the first session goes on
        assert after.currents == pytest.approx(before.currents, rel=1e-6)
        bench.close()
        assert emu.safe
        again = open_bench(emu.config(timeout=5.0))  # closed: free again
        again.close()


def test_the_cli_refuses_a_busy_bench_in_one_line(tmp_path: Path) -> None:
    cfg = bench_config(K2600_707B)
    with EmulatedBench(cfg, SIM) as emu:
        bench_file = tmp_path / "bench.yaml"
        bench_file.write_text(yaml.safe_dump(emu.config(timeout=5.0).model_dump(mode="json")))
        session = yaml.safe_load((ROOT / "examples" / "session-read-map.yaml").read_text())
        session["sim"].update(rows=8, cols=8)
        session.update(backend="bench", bench=str(bench_file))
        session_file = tmp_path / "session.yaml"
        session_file.write_text(yaml.safe_dump(session))
        held = instrument_locks({"matrix": emu.config().instruments["matrix"].address})
        with held:
            proc = subprocess.run(
                [sys.executable, "-m", "xbarlab.cli.main", "run", "read_map", "-c",
                 str(session_file),
                 "--out", str(tmp_path / "r.h5")], capture_output=True, text=True,
                timeout=120, env={**os.environ})
        assert proc.returncode == 1, proc.stderr
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        assert len(lines) == 1 and "matrix" in lines[0] and "in use" in lines[0], lines
        assert "Traceback" not in proc.stderr and not (tmp_path / "r.h5").exists()
        assert _served(emu) == 0


def test_two_instruments_of_a_config_at_one_address_are_refused() -> None:
    """Two 2450s at one (copy-pasted) address would pass the identity check, and the session
    would drive one instrument as both."""
    instruments = {name: {**inst, "address": f"GPIB0::{k + 10}::INSTR"}
                   for k, (name, inst) in enumerate(K2600_707B["instruments"].items())}
    bench_config(K2600_707B, instruments=instruments)  # distinct: fine
    instruments["bias_cols"]["address"] = "gpib::11::instr"  # bias_rows', spelt otherwise
    with pytest.raises(ConfigError, match="'bias_rows' and 'bias_cols' have one address"):
        bench_config(K2600_707B, instruments=instruments)


def test_a_lock_folder_this_user_cannot_write_falls_back_to_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared lock folder another user created without write access for others (umask 022,
    no sticky bit) must not stop this user's sessions: their locks go to a folder of their own
    (which still keeps this user's sessions apart). Root cannot be refused a write, so the
    refusal is the file system's answer, stood in for here."""
    import tempfile

    from xbarlab import host_locks
    from xbarlab.host_locks import Held, HostLock

    shared = tmp_path / "locks"
    own = tmp_path / "tmp" / f"xbarlab-locks-{os.getuid()}"
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    real_open = os.open

    def refusing_open(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(path).parent == shared:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(host_locks.os, "open", refusing_open)
    first = HostLock("instrument GPIB0::5::INSTR").acquire()
    with pytest.raises(Held):
        HostLock("instrument GPIB0::5::INSTR").acquire()
    assert [p.parent for p in own.iterdir()] == [own] and not list(shared.iterdir())
    first.release()


def test_a_session_waits_while_the_supervisor_makes_a_dead_sessions_bench_safe(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor takes the dead session's locks for its rescue: a new session started in
    that moment is refused, and told why."""
    import threading

    from xbarlab.drivers import rescue

    inside, done = threading.Event(), threading.Event()

    def slow_rescue(cfg: object, name: str, channels: list[str]) -> str:
        inside.set()
        done.wait(30)
        return f"{name} safe"

    monkeypatch.setattr(rescue, "_rescue_one", slow_rescue)
    data = dict(K2600_707B, instruments={
        name: {**inst, "address": f"GPIB0::{k + 20}::INSTR"}
        for k, (name, inst) in enumerate(K2600_707B["instruments"].items())})
    cfg = bench_config(data)
    lines: list[str] = []
    worker = threading.Thread(target=lambda: lines.extend(
        rescue.rescue_bench(cfg.model_dump(mode="json"))))
    worker.start()
    try:
        assert inside.wait(30)
        with pytest.raises(BenchInUse, match="the safety supervisor, making a dead session"):
            instrument_locks({n: i.address for n, i in cfg.instruments.items()}).acquire()
    finally:
        done.set()
        worker.join(30)
    assert sorted(lines) == sorted(f"{n} safe" for n in cfg.instruments)
    with instrument_locks({n: i.address for n, i in cfg.instruments.items()}):
        pass  # the rescue is over: free


def test_the_rescue_leaves_a_bench_a_new_session_holds_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry minutes after a session died must not switch a new session's outputs off under
    it: a bench whose locks stay held is not touched (the dead session's own locks are freed
    by the kernel within milliseconds; the rescue waits that long)."""
    from xbarlab.drivers import rescue

    touched: list[str] = []
    monkeypatch.setattr(rescue, "_rescue_one", lambda cfg, name, ch: touched.append(name) or "")
    monkeypatch.setattr(rescue, "LOCKS_FREED_WITHIN", 0.2)
    data = dict(K2600_707B, instruments={
        name: {**inst, "address": f"GPIB0::{k + 30}::INSTR"}
        for k, (name, inst) in enumerate(K2600_707B["instruments"].items())})
    cfg = bench_config(data)
    with instrument_locks({"smu": "GPIB0::30::INSTR"}):  # the new session's
        lines = rescue.rescue_bench(cfg.model_dump(mode="json"))
    assert touched == [] and len(lines) == 1 and "not touched" in lines[0], lines


def test_a_lock_folder_that_is_a_file_is_said_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from xbarlab.cli.main import app

    not_a_folder = tmp_path / "locks"
    not_a_folder.write_text("")
    monkeypatch.setenv(LOCK_DIR_ENV, str(not_a_folder))
    res = CliRunner().invoke(app, ["run", "read_map", "-c",
                                   str(ROOT / "examples" / "session-read-map.yaml"),
                                   "--out", str(tmp_path / "r.h5")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].endswith(
        f"the lock folder {not_a_folder} ({LOCK_DIR_ENV}) is not a folder")
