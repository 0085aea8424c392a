"""Running sweeps: rows and logs per point, resume, failures, the merged table, the report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from xbarlab.analysis.many_logs import measurements, summarise_logs
from xbarlab.cli.main import app
from xbarlab.config import ConfigError
from xbarlab.log.reader import LogReader
from xbarlab.sweep.commands import command
from xbarlab.sweep.execute import read_row, read_table, run_sweep
from xbarlab.sweep.spec import Point, SweepFile, expand, validate_config

distributed = pytest.importorskip("distributed")
runner = CliRunner()


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """An in-process Dask cluster (threads): fast to start, same scheduler semantics."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _points(grid: dict, seeds: int | None = None, cmd: str = "run read_map") -> list[Point]:
    spec = validate_config({"command": cmd, "grid": grid, "seeds": seeds}, SweepFile, "t")
    base = {"sim": {"rows": 4, "cols": 4, "device": "simple"}}
    return expand(spec, base, command(cmd).validate)


def failing_task(point: Point, log: Path) -> dict:
    """A task that fails for odd rows counts (module level: it pickles by reference)."""
    if point.config["sim"]["rows"] % 2:
        raise RuntimeError("instrument on fire")
    log.write_bytes(b"not really a log")
    return {"status": "success", "reason": "", "answer": 42}


def test_every_point_gets_a_row_and_a_readable_log(tmp_path: Path, scheduler: str) -> None:
    pts = _points({"sim.rows": [3, 4], "protocol.params.v_read": [0.1, 0.2]}, seeds=2)
    rep = run_sweep(pts, command("run read_map").task, tmp_path, scheduler=scheduler)
    assert sorted(rep.ran) == sorted(p.point_id for p in pts) and not rep.failed
    table = read_table(tmp_path)
    assert len(table) == 8 and table["point"].is_unique
    for p in pts:
        row = table[table["point"] == p.point_id].iloc[0]
        assert row["param.sim.rows"] == p.config["sim"]["rows"]
        with LogReader(tmp_path / row["log"]) as log:
            assert log.status == "success" and log.info.run_id == row["run_id"]
            assert log.info.shape == (p.config["sim"]["rows"], 4)
            g = log.final_conductances()
        assert row["g_median"] == pytest.approx(float(np.median(g)))
    assert not list((tmp_path / "points").glob("*.part")), "no half-written log left"


def test_rerun_skips_finished_points_and_reruns_lost_ones(tmp_path: Path, scheduler: str) -> None:
    pts = _points({"sim.rows": [2, 3, 4]})
    task = command("run read_map").task
    run_sweep(pts, task, tmp_path, scheduler=scheduler)
    first = {p.point_id: read_row(tmp_path, p.point_id) for p in pts}
    (tmp_path / "points" / f"{pts[1].point_id}.json").unlink()  # as if killed before its row
    rep = run_sweep(pts, task, tmp_path, scheduler=scheduler)
    assert rep.ran == [pts[1].point_id]
    assert sorted(rep.skipped) == sorted([pts[0].point_id, pts[2].point_id])
    assert read_row(tmp_path, pts[0].point_id) == first[pts[0].point_id]  # untouched
    assert len(read_table(tmp_path)) == 3


def test_failed_points_are_recorded_and_retried_only_when_asked(
    tmp_path: Path, scheduler: str
) -> None:
    pts = _points({"sim.rows": [2, 3, 4, 5]})
    rep = run_sweep(pts, failing_task, tmp_path, scheduler=scheduler)
    bad = {p.point_id for p in pts if p.config["sim"]["rows"] % 2}
    assert set(rep.failed) == bad
    table = read_table(tmp_path).set_index("point")
    assert set(table.index[table["status"] == "error"]) == bad
    assert all("instrument on fire" in table.loc[b, "reason"] for b in bad)
    assert (table.loc[list(set(table.index) - bad), "answer"] == 42).all()
    again = run_sweep(pts, failing_task, tmp_path, scheduler=scheduler)
    assert again.ran == [] and set(again.failed) == bad
    retried = run_sweep(pts, failing_task, tmp_path, scheduler=scheduler, retry_failed=True)
    assert set(retried.ran) == bad


def test_unreachable_scheduler_is_one_line_and_starts_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xbarlab.sweep.execute import dask_client

    # a closed port refuses at once; Dask retries until the connect timeout (10 s by
    # default), so the test waits 1 s instead: the same error path, 9 s sooner
    monkeypatch.setattr(dask_client.__wrapped__, "__defaults__", (1.0,))  # type: ignore[attr-defined]
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"command": "run read_map", "base": {"sim": {"rows": 2}},
                                     "grid": {"sim.cols": [2, 3]}}))
    out = tmp_path / "out"
    res = runner.invoke(app, ["sweep", "run", str(sweep), "--out", str(out),
                              "--scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code == 2, res.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in res.output
    assert "Traceback" not in res.output
    assert not list((out / "points").glob("*")), "no point started"


def test_cli_run_report_and_plot(tmp_path: Path, scheduler: str) -> None:
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "command": "run write_verify_array",
        "base": {"sim": {"rows": 3, "cols": 3, "device": "simple"},
                 "protocol": {"kind": "write_verify_array", "params": {"max_pulses": 40}}},
        "grid": {"protocol.params.tolerance": [0.02, 0.05], "sim.rows": [2, 3]},
        "seeds": 2,
    }))
    out = tmp_path / "sw"
    res = runner.invoke(app, ["sweep", "run", str(sweep), "--out", str(out),
                              "--scheduler", scheduler])
    assert res.exit_code == 0, res.output
    assert "8 points run, 0 skipped, 8/8 finished" in res.output
    assert res.output.count("point ") >= 8  # a plain line per point outside a terminal
    table = read_table(out)
    png = tmp_path / "sw.png"
    res = runner.invoke(app, ["sweep", "report", str(out), "--x", "protocol.params.tolerance",
                              "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000
    # the printed table pools the seeds: its means are the means of the rows
    sub = table[(table["param.protocol.params.tolerance"] == 0.05)
                & (table["param.sim.rows"] == 3)]
    mean = sub["in_tolerance_share"].mean()
    assert f"{mean:.4g}" in res.output
    res = runner.invoke(app, ["sweep", "report", str(out), "--metric", "nope"])
    assert res.exit_code == 2 and "--metric nope: not in the table" in res.output
    res = runner.invoke(app, ["sweep", "report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no results.parquet" in res.output
    # rerun: everything finished, nothing runs
    res = runner.invoke(app, ["sweep", "run", str(sweep), "--out", str(out),
                              "--scheduler", scheduler])
    assert res.exit_code == 0 and "0 points run, 8 skipped" in res.output


def test_many_logs_summary_matches_each_log(tmp_path: Path, scheduler: str) -> None:
    pts = _points({"sim.rows": [2, 3, 4]})
    run_sweep(pts, command("run read_map").task, tmp_path, scheduler=scheduler)
    (tmp_path / "points" / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    frame = summarise_logs([tmp_path])
    assert len(frame) == 4
    junk = frame[frame["path"].str.endswith("junk.h5")].iloc[0]
    assert junk["error"], "a damaged file is a row with its error, not an exception"
    good = frame[frame["error"] == ""].set_index("run_id")
    table = read_table(tmp_path).set_index("run_id")
    assert set(good.index) == set(table.index)
    for run_id, row in good.iterrows():
        assert row["rows"] == table.loc[run_id, "param.sim.rows"]
        assert row["g_final_median"] == pytest.approx(table.loc[run_id, "g_median"])
        assert row["status"] == "success" and row["config.protocol.kind"] == "read_map"
    lazy = measurements([tmp_path])  # the damaged file contributes no rows
    counted = lazy.groupby("run_id").size().compute()
    assert set(counted.index) == set(table.index)
    for run_id, n in counted.items():
        with LogReader(tmp_path / table.loc[run_id, "log"]) as log:
            assert n == len(log.measurements())
    assert isinstance(lazy.head(2), pd.DataFrame)
    assert json.loads((tmp_path / "points" / f"{pts[0].point_id}.json").read_text())["log"]


def test_zipped_axes_collapse_into_one() -> None:
    from xbarlab.analysis.sweep_plots import choose_columns, summary_table

    frame = pd.DataFrame({
        "param.sim.rows": [8, 8, 16, 16] * 2, "param.sim.cols": [8, 8, 16, 16] * 2,
        "param.sim.r_wire_row": [0.0, 1.0] * 4, "param.seed": [0] * 4 + [1] * 4,
        "status": ["success"] * 8, "in_tolerance_share": np.arange(8) / 10,
    })
    cols = choose_columns(frame, None, "sim.r_wire_row", None)
    assert cols.metric == "in_tolerance_share" and cols.hue == "param.sim.rows"
    assert cols.axes == ["param.sim.r_wire_row", "param.sim.rows"]  # cols rides with rows
    table = summary_table(frame, cols)
    assert list(table.columns[:2]) == ["r_wire_row", "rows"] and len(table) == 4
    first = table[(table["r_wire_row"] == "0.0") & (table["rows"] == "8")].iloc[0]
    assert first["mean"] == pytest.approx((0.0 + 0.4) / 2) and first["points"] == 2


def test_a_write_verify_that_ends_failed_is_a_result_not_a_failed_point(
    tmp_path: Path, scheduler: str
) -> None:
    # a tolerance no cell can meet in 3 pulses: every run ends with status "failed"
    spec = validate_config({"command": "run write_verify_array",
                            "grid": {"sim.rows": [2, 3]}}, SweepFile, "t")
    base = {"sim": {"rows": 2, "cols": 2},
            "protocol": {"kind": "write_verify_array",
                         "params": {"tolerance": 1e-6, "max_pulses": 3}}}
    pts = expand(spec, base, command(spec.command).validate)
    rep = run_sweep(pts, command(spec.command).task, tmp_path, scheduler=scheduler)
    table = read_table(tmp_path)
    assert set(table["status"]) == {"failed"} and table["completed"].all()
    assert rep.failed == [], "the runs ran to their end: their outcome is the result"
    again = run_sweep(pts, command(spec.command).task, tmp_path, scheduler=scheduler,
                      retry_failed=True)
    assert again.ran == []


def test_any_protocol_of_run_is_sweepable(tmp_path: Path, scheduler: str) -> None:
    """Forming swept over its maximum amplitude: a higher ramp ceiling forms more cells."""
    cmd = "run forming"
    spec = validate_config({"command": cmd, "grid": {"protocol.v_max": [1.2, 2.5]}},
                           SweepFile, "t")
    base = {"sim": {"rows": 4, "cols": 4, "pristine": True, "seed": 1},
            "protocol": {"v_start": 1.0, "v_step": 0.1, "width_min": 1e-4,
                         "r_threshold": 20000.0}}
    pts = expand(spec, base, command(cmd).validate)
    rep = run_sweep(pts, command(cmd).task, tmp_path, scheduler=scheduler)
    assert not rep.failed
    table = read_table(tmp_path).set_index("param.protocol.v_max")
    assert set(table["cells"]) == {16}
    low, high = table.loc[1.2], table.loc[2.5]
    assert high["formed_share"] >= 0.75 and high["formed_share"] > low["formed_share"]
    assert high["v_formed_median"] <= 2.5 and high["n_pulses_median"] >= 1
    for log in table["log"]:
        with LogReader(tmp_path / log) as reader:
            assert reader.info.protocol == "forming" and reader.info.shape == (4, 4)


def test_a_sweep_never_drives_a_bench() -> None:
    with pytest.raises(ConfigError, match="simulated sessions"):
        command("run read_map").validate({"backend": "bench", "bench": "bench.yaml"})


def test_larger_arrays_start_first(tmp_path: Path) -> None:
    """One worker runs the points one at a time: in order of decreasing array size."""
    pts = _points({"sim.rows": [2, 5, 3]})
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        run_sweep(pts, command("run read_map").task, tmp_path, scheduler=cluster.scheduler_address)
    rows = read_table(tmp_path).sort_values("started")
    assert list(rows["param.sim.rows"]) == [5, 3, 2]


def test_networks_are_an_axis_of_program_network_sweeps(tmp_path: Path, scheduler: str) -> None:
    """Two networks x two simulated chips: each point programs its network and scores it."""
    from tests.network.nets import WV, moons_net
    from xbarlab.network.model import save_npz

    nets = []
    for hidden in (3, 4):
        nets.append(str(tmp_path / f"net{hidden}.npz"))
        save_npz(moons_net(hidden), Path(nets[-1]))
    base = {"backend": "sim", "seed": 1,
            "sim": {"rows": 8, "cols": 8, "device": "simple", "noise": False},
            "limits": {"pulse_width_max": 1e-3},
            "network": {"write_verify": WV, "max_cal": 60, "max_test": 50}}
    cmd = "program-network"
    spec = validate_config({"command": cmd, "points": [{"net": n} for n in nets],
                            "grid": {"sim.seed": [5, 6]}}, SweepFile, "t")
    pts = expand(spec, base, command(cmd).validate)
    rep = run_sweep(pts, command(cmd).task, tmp_path / "sw", scheduler=scheduler)
    assert not rep.failed
    table = read_table(tmp_path / "sw")
    assert len(table) == 4 and table["completed"].all()
    for _, row in table.iterrows():
        hidden = 3 if row["param.net"].endswith("net3.npz") else 4
        assert row["devices"] == 2 * ((2 + 1) * hidden + (hidden + 1))  # pairs, bias rows
        assert 0.5 <= row["test_acc.programmed"] <= 1.0
        with LogReader(tmp_path / "sw" / row["log"]) as log:
            assert log.info.protocol == "program_network" and log.info.run_id == row["run_id"]
    with pytest.raises(ConfigError, match=r"no such \.npz"):
        command(cmd).validate({**base, "net": str(tmp_path / "missing.npz")})
    with pytest.raises(ConfigError, match="net: the network file"):
        command(cmd).validate(base)


def _worker_settings() -> tuple[bool, str]:
    import dask

    return (bool(dask.config.get("distributed.worker.profile.enabled")),
            str(dask.config.get("distributed.admin.system-monitor.interval")))


def test_local_workers_run_without_the_sampling_profiler() -> None:
    """The local cluster's worker processes get the sweep's settings: no 10 ms profiler
    thread taking the GIL from the points (it cost 28 % of each point's CPU time)."""
    from xbarlab.sweep.execute import dask_client

    with dask_client(None, 1) as client:
        settings = set(client.run(_worker_settings).values())
    assert settings == {(False, "2s")}
