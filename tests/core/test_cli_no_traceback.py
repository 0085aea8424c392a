"""Every command, fed bad arguments and files: the documented exit code, one clear error line,
never a traceback, and no file of another kind overwritten."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from xbarlab.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BENCH = EXAMPLES / "bench" / "two_smu_707b.yaml"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
runner = CliRunner()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connection is refused at once
    return int(port)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    log = d / "map.h5"
    res = runner.invoke(app, ["run", "read_map", "-c", str(EXAMPLES / "session-read-map.yaml"),
                              "--out", str(log)])
    assert res.exit_code == 0, res.output
    (d / "pic.png").write_bytes(PNG_BYTES)
    (d / "empty.yaml").write_text("")
    (d / "folder").mkdir()
    (d / "text.h5").write_text("not HDF5")
    bench = yaml.safe_load(BENCH.read_text())
    for k, inst in enumerate(bench["instruments"].values()):
        inst["address"] = f"TCPIP::127.0.0.1::{_closed_port() + k * 0}::SOCKET"
        inst["timeout"] = 0.5
    (d / "bench.yaml").write_text(yaml.safe_dump(bench))
    (d / "bench-session.yaml").write_text(
        f"backend: bench\nbench: {d / 'bench.yaml'}\nprotocol: {{kind: read_map}}\n")
    (d / "high-limits.yaml").write_text(
        f"backend: bench\nbench: {d / 'bench.yaml'}\nlimits: {{v_max: 60, pulse_v_max: 50}}\n"
        "protocol: {kind: write_verify_array, params: {set_max: 50}}\n")
    (d / "short-pulses.yaml").write_text(  # the bench config allows 100 µs .. 1 ms
        f"backend: bench\nbench: {d / 'bench.yaml'}\nprotocol: {{kind: write_verify_array}}\n")
    (d / "set-max-50.yaml").write_text(
        "protocol: {kind: write_verify_array, params: {set_max: 50}}\n")
    (d / "absurd-targets.yaml").write_text(
        "protocol: {kind: write_verify_array, target: {pattern: checkerboard, g_low: 1.0e-9, "
        "g_high: 1.0}}\n")
    return {p.name: p for p in d.iterdir()} | {"dir": d}


# (arguments with {name} placeholders for the fixture files, exit code, text of the error line)
CASES: list[tuple[str, int, str]] = [
    ("demo --out {dir}/run.png", 2, "must end in .h5"),
    ("demo --out {dir}/folder", 2, "is a folder"),
    ("demo --out {dir}/folder --overwrite", 2, "is a folder"),
    ("demo --out {dir}/pic.png --overwrite", 2, "must end in .h5"),
    ("demo --out {dir}/text.h5 --overwrite --size 2", 2, "not replaced"),
    ("demo --pattern spiral", 2, "'spiral' is not one of"),
    ("demo --device nope", 2, "choose one of: simple, tio2-o921c"),
    ("demo --size 1", 2, "--size"),
    ("demo --bogus", 2, "No such option"),
    ("run read_map -c {dir}/nofile.yaml --out {dir}/a.h5", 2, "cannot read"),
    ("run read_map -c {dir}/empty.yaml --out {dir}/a.h5", 2, "the file is empty"),
    ("run read_map -c {dir}/pic.png --out {dir}/a.h5", 2, "pic.png"),
    ("run write_verify_array -c {dir}/set-max-50.yaml --out {dir}/a.h5", 2,
     "set_max: 50 V is above limits.pulse_v_max"),
    ("run write_verify_array -c {dir}/absurd-targets.yaml --out {dir}/a.h5", 2,
     "leave the range device 'tio2-o921c' can reach"),
    ("run write_verify_array -c {dir}/high-limits.yaml --out {dir}/a.h5", 2,
     "is beyond what the bench config"),
    ("run read_map -c {dir}/bench-session.yaml --out {dir}/b.h5", 1, "cannot open the bench"),
    ("run write_verify_array -c {dir}/short-pulses.yaml --out {dir}/b.h5", 2,
     "width: 1 µs is outside the limits of the bench config"),
    ("run read_map -c " + str(EXAMPLES / "session-read-map.yaml") + " --out {dir}/pic.png", 2,
     "must end in .h5"),
    ("run read_map -c " + str(EXAMPLES / "session-read-map.yaml") + " --backend cloud "
     "--out {dir}/c.h5", 2, "'cloud' is not one of"),
    ("run nope -c {dir}/empty.yaml --out {dir}/a.h5", 2, "unknown protocol 'nope'"),
    ("run read_map -c " + str(EXAMPLES / "session-read-map.yaml") + " --out {dir}/nodir/x.h5",
     0, ""),
    ("log summary {dir}/nofile.h5", 2, "nofile.h5"),
    ("log summary {dir}/pic.png", 2, "pic.png"),
    ("log summary {dir}/text.h5", 2, "text.h5"),
    ("log plot {dir}/map.h5 --out {dir}/p.h5", 2, "must end in .png or .svg or .pdf"),
    ("log plot {dir}/map.h5 --out {dir}/folder", 2, "is a folder"),
    ("log plot {dir}/map.h5 --out {dir}/map.png --overwrite", 0, ""),
    ("log plot {dir}/nofile.h5 --out {dir}/q.png", 2, "nofile.h5"),
    ("log export {dir}/map.h5 --csv {dir}/map.h5", 2, "must end in .csv"),
    ("log export {dir}/map.h5 --csv {dir}/x.csv --table nope", 2, "'nope' is not one of"),
    ("device plot nope --out {dir}/d.png", 2, "unknown device preset"),
    ("device plot simple --out {dir}/d.h5", 2, "must end in .png"),
    ("bench check {dir}/nofile.yaml", 2, "cannot read"),
    ("bench check {dir}/pic.png", 2, "pic.png"),
    ("bench check {dir}/bench.yaml", 1, "instruments failed the check"),
    ("emulate {dir}/bench.yaml --device nope", 2, "choose one of"),
    ("emulate {dir}/bench.yaml --fidelity exact", 2, "'exact' is not one of"),
    ("emulate {dir}/bench.yaml --out {dir}/pic.png", 2, "must end in .yaml"),
    ("reproduce nope", 2, "'nope' is not one of"),
    ("reproduce drolet2023 --mapping diagonal", 2, "'diagonal' is not one of"),
    ("reproduce drolet2023 --out {dir}/pic.png", 2, "is a file"),
    ("sweep run {dir}/nofile.yaml --out {dir}/sw", 2, "cannot read"),
    ("sweep run {dir}/empty.yaml --out {dir}/sw", 2, "empty sweep file"),
    ("sweep run {dir}/pic.png --out {dir}/sw", 2, "pic.png"),
    ("sweep check {dir}/bench.yaml", 2, "command: Field required"),
    ("sweep report {dir}/folder", 2, "no results.parquet"),
    ("nope", 2, "No such command"),
]


def _check(res_output: str, code: int, got: int, text: str) -> None:
    assert "Traceback" not in res_output, res_output
    assert got == code, res_output
    errors = [line for line in res_output.splitlines() if line.startswith("error:")]
    if code == 0:
        assert errors == [], res_output
        return
    assert len(errors) == 1, res_output
    assert text in errors[0], res_output


@pytest.mark.parametrize(("args", "code", "text"), CASES, ids=[c[0][:60] for c in CASES])
def test_bad_input_gives_one_line_and_the_exit_code(
    files: dict[str, Path], args: str, code: int, text: str
) -> None:
    d = files["dir"]
    before = {p: p.read_bytes() for p in d.iterdir() if p.is_file()}
    argv = [a.format(dir=d) for a in args.split()]
    res = runner.invoke(app, argv)
    _check(res.output, code, res.exit_code, text)
    for path, content in before.items():  # nothing of another kind was overwritten
        if path.suffix != ".png" or code != 0:
            assert path.read_bytes() == content, path


def test_out_in_a_missing_folder_creates_it(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "x.h5"
    res = runner.invoke(app, ["demo", "--size", "2", "--out", str(out), "--no-plot"])
    assert res.exit_code in (0, 3), res.output
    assert out.is_file()
    png = tmp_path / "plots" / "x.png"
    assert runner.invoke(app, ["log", "plot", str(out), "--out", str(png)]).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reproduce_without_torch_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("torch", "xbarlab.nn.reproduce", "xbarlab.nn.crossbar_transfer"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    for paper in ("drolet2023", "drolet2023-crossbar"):
        res = runner.invoke(app, ["reproduce", paper])
        _check(res.output, 2, res.exit_code, "needs the nn extra")


def test_an_unexpected_exception_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import xbarlab.cli.session as session

    def boom(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("deep inside")

    monkeypatch.setattr(session, "execute", boom)
    res = runner.invoke(app, ["demo", "--size", "2", "--out", "/tmp/never-written.h5"])
    _check(res.output, 1, res.exit_code, "unexpected ZeroDivisionError: deep inside")


UNWRITABLE = Path("/sys/xbarlab-test.h5")  # refused to every user, root included


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys (Linux)")
@pytest.mark.parametrize("args", [
    ["run", "read_map", "-c", str(EXAMPLES / "session-read-map.yaml")],
    ["run", "forming", "-c", str(EXAMPLES / "protocols" / "forming.yaml")],
    ["demo", "--size", "4"],
])
def test_a_log_that_cannot_be_created_is_bad_input(args: list[str]) -> None:
    """Before: exit 1 and "cannot write F: cannot create HDF5 log F: [Errno 13] Unable to
    synchronously create file (unable to open file: name = ..., flags = 15, o_flags = c2)"."""
    res = runner.invoke(app, [*args, "--out", str(UNWRITABLE)])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"error: cannot create the log {UNWRITABLE}: Permission denied")
    assert "Traceback" not in res.output


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys (Linux)")
@pytest.mark.parametrize("args, out", [
    (["log", "plot", "{log}", "--out"], "/sys/xbarlab-test.png"),
    (["log", "export", "{log}", "--csv"], "/sys/xbarlab-test.csv"),
    (["log", "recover", "{log}", "--out"], "/sys/xbarlab-test.h5"),
    (["device", "plot", "simple", "--out"], "/sys/xbarlab-test.png"),
    (["emulate", str(BENCH), "--duration", "1", "--out"], "/sys/xbarlab-test.yaml"),
])
def test_an_output_the_system_refuses_is_bad_input(files: dict[str, Path], args: list[str],
                                                   out: str) -> None:
    """Before: "unexpected PermissionError ... (a bug: please report it)" and exit 1, and
    `log recover` called the log's structure damaged."""
    argv = [a.replace("{log}", str(files["map.h5"])) for a in args] + [out]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and out in lines[0] and "Permission denied" in lines[0], lines
    assert "unexpected" not in res.output and "damaged" not in res.output
