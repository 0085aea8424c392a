"""`xbarlab bench discover`: VISA resources and their identities, one line each, bounded in
time, through pyvisa-sim and through the emulators over real sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.emulators.benches import K2600_707B, bench_config
from xbarlab.cli.main import app
from xbarlab.drivers.discover import discover, identify
from xbarlab.drivers.emulators.bench import EmulatedBench

runner = CliRunner()
SIM_DEVICES = {
    "spec": "1.1",
    "devices": {
        "good": {"eom": {"TCPIP INSTR": {"q": "\n", "r": "\n"}}, "error": "ERROR",
                 "dialogues": [{"q": "*IDN?", "r": "ACME,SMU-1,0042,1.0"}]},
        "silent": {"eom": {"TCPIP INSTR": {"q": "\n", "r": "\n"}}, "dialogues": []},
        "rude": {"eom": {"TCPIP INSTR": {"q": "\n", "r": "\n"}}, "error": "ERROR",
                 "dialogues": []},
    },
    "resources": {"TCPIP::10.0.0.1::INSTR": {"device": "good"},
                  "TCPIP::10.0.0.2::INSTR": {"device": "silent"},
                  "TCPIP::10.0.0.3::INSTR": {"device": "rude"}},
}


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_pyvisa_sim_resources_one_line_each(tmp_path: Path) -> None:
    defs = tmp_path / "lab.yaml"
    defs.write_text(yaml.safe_dump(SIM_DEVICES))
    t0 = time.monotonic()
    res = runner.invoke(app, ["bench", "discover", "--visa-library", f"{defs}@sim",
                              "--timeout", "0.3"])
    elapsed = time.monotonic() - t0
    assert res.exit_code == 0, res.output
    lines = _lines(res.output)
    assert len(lines) == 4 and "Traceback" not in res.output
    by_address = {line.split()[0]: line for line in lines[:3]}
    assert by_address["TCPIP0::10.0.0.1::inst0::INSTR"].endswith("ACME,SMU-1,0042,1.0")
    assert "no reply within 0.3 s" in by_address["TCPIP0::10.0.0.2::inst0::INSTR"]
    assert "not an IEEE 488.2 identity" in by_address["TCPIP0::10.0.0.3::inst0::INSTR"]
    assert lines[3] == "1 of 3 resources answered *IDN?"
    assert elapsed < 30  # bounded: a silent resource costs its timeout, not forever


def test_repository_sim_instruments_all_answer() -> None:
    defs = Path(__file__).resolve().parents[1] / "drivers" / "sim" / "instruments.yaml"
    expected = {}
    data = yaml.safe_load(defs.read_text())
    for address, spec in data["resources"].items():
        dialogue = data["devices"][spec["device"]]["dialogues"]
        expected[address] = next(d["r"] for d in dialogue if d.get("q") == "*IDN?")
    found = list(discover(f"{defs}@sim", 0.5))
    assert len(found) == len(expected)
    assert sorted(f.identity for f in found) == sorted(expected.values())


def test_emulators_over_sockets_and_a_silent_port() -> None:
    """Named TCPIP sockets (never listed): the emulated instruments answer with their
    identities; a port that accepts and never replies, and a closed port, get their line
    within the timeout."""
    cfg = bench_config(K2600_707B)
    with EmulatedBench(cfg) as emu, socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        quiet = f"TCPIP::127.0.0.1::{silent.getsockname()[1]}::SOCKET"
        refused = f"TCPIP::127.0.0.1::{closed.getsockname()[1]}::SOCKET"
        args = ["bench", "discover", "--no-list", "--timeout", "3"]
        for address in [*emu.addresses.values(), quiet, refused]:
            args += ["--address", address]
        t0 = time.monotonic()
        res = runner.invoke(app, args)
        elapsed = time.monotonic() - t0
        identities = {name: e.identity for name, e in emu.instruments.items()}
        addresses = dict(emu.addresses)
    assert res.exit_code == 0, res.output
    lines = _lines(res.output)
    assert len(lines) == len(addresses) + 3
    for name, address in addresses.items():
        assert f"{address}  {identities[name]}" in lines
    assert any(line.startswith(quiet) and "no reply within 3 s" in line for line in lines)
    assert any(line.startswith(refused) and "no identity" in line for line in lines)
    assert lines[-1] == f"{len(addresses)} of {len(addresses) + 2} resources answered *IDN?"
    assert elapsed < 60  # the silent port costs its timeout (3 s), nothing waits for ever


def test_identify_never_raises_on_a_bad_address() -> None:
    found = identify("NOT::A::RESOURCE", "@py", 0.2)
    assert found.identity is None and found.problem


def test_bad_libraries_are_one_line(tmp_path: Path) -> None:
    for args, needle in (
        (["--visa-library", "@nope"], "cannot list resources"),
        (["--visa-library", f"{tmp_path / 'missing.yaml'}@sim"], "not found"),
        (["--no-list"], "--address"),
    ):
        res = runner.invoke(app, ["bench", "discover", *args])
        assert res.exit_code == 2, res.output
        lines = _lines(res.output)
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
