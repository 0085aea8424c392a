"""`xbarlab program-network`: exit codes, no traceback, .npz without torch, .pt with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.network.logs import programmed_cells, status
from tests.network.nets import WV, moons_net
from xbarlab.cli.main import app
from xbarlab.network.model import save_npz

ROOT = Path(__file__).resolve().parents[2]


def _config(path: Path, **extra: object) -> Path:
    data = {"backend": "sim", "seed": 1,
            "sim": {"rows": 16, "cols": 16, "device": "simple", "noise": False, "seed": 5},
            "network": {"write_verify": WV, "max_cal": 60, "max_test": 60}, **extra}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_npz_network_runs_without_torch(tmp_path: Path) -> None:
    net = save_npz(moons_net(8), tmp_path / "net.npz")
    cfg = _config(tmp_path / "s.yaml")
    code = ("import atexit, sys\n"
            "class NoTorch:\n"  # any import of torch fails, as if it were not installed
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('no torch here')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "atexit.register(lambda: print('torch imported' if 'torch' in sys.modules "
            "else 'torch not imported'))\n"
            "from xbarlab.cli.main import app\n"
            "app(prog_name='xbarlab')\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, "program-network", str(net), "--config", str(cfg),
         "--out", str(tmp_path / "n.h5"), "--plot", str(tmp_path / "n.png")],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"})
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.rstrip().endswith("torch not imported")
    assert "program-network: run" in proc.stdout and "accuracy: programmed" in proc.stdout
    assert (tmp_path / "n.png").stat().st_size > 1000
    assert status(tmp_path / "n.h5") in ("programmed", "partial")
    assert len(programmed_cells(tmp_path / "n.h5")) == 66


def test_torch_state_dict_of_the_paper_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from xbarlab.nn.model import MLP

    mlp = MLP((2, 8, 1))
    mlp.load_numpy_params([(w, b) for w, b in moons_net(8).layers])
    torch.save(mlp.state_dict(), tmp_path / "net.pt")
    cfg = _config(tmp_path / "s.yaml")
    res = CliRunner().invoke(app, ["program-network", str(tmp_path / "net.pt"), "--config",
                                   str(cfg), "--out", str(tmp_path / "n.h5")])
    assert res.exit_code in (0, 3), res.output
    assert "2-8-1 (sigmoid)" in res.output  # sizes inferred from the data set's dimensions


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "no such network file"),
    ("suffix", "a network is an .npz"),
    ("protocol", "takes no `protocol:`"),
    ("dataset", "unknown data set 'nope'"),
    ("too_big", "needs 2 arrays of 8 x 8"),
    ("empty", "the file is empty"),
    ("resume", "no such log file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    net = save_npz(moons_net(8), tmp_path / "net.npz")
    cfg = _config(tmp_path / "s.yaml")
    args = [str(net), "--config", str(cfg), "--out", str(tmp_path / "o.h5")]
    if setup == "missing":
        args[0] = str(tmp_path / "nothing.npz")
    elif setup == "suffix":
        (tmp_path / "net.txt").write_text("x")
        args[0] = str(tmp_path / "net.txt")
    elif setup == "protocol":
        _config(cfg, protocol={"kind": "write_verify_array"})
    elif setup == "dataset":
        args += ["--dataset", "nope"]
    elif setup == "too_big":
        data = yaml.safe_load(cfg.read_text())
        data["sim"].update(rows=8, cols=8)
        data["network"]["max_arrays"] = 1
        cfg.write_text(yaml.safe_dump(data))
    elif setup == "empty":
        cfg.write_text("")
    elif setup == "resume":
        args += ["--resume", str(tmp_path / "old.h5")]
    res = CliRunner().invoke(app, ["program-network", *args])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o.h5").exists()
