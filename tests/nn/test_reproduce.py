"""`xbarlab reproduce drolet2023` at toy scale: table, CDF plot, HDF5 results, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xbarlab.cli.main import app
from xbarlab.config import ConfigError
from xbarlab.log.results import read_results, write_results

pytest.importorskip("torch")
from xbarlab.nn import reproduce as rp
from xbarlab.nn.training import paper_config

runner = CliRunner()


def test_results_file_round_trip(tmp_path: Path) -> None:
    tree = {"a": {"x": np.arange(3.0), "n": 2, "name": "text", "cfg": {"k": [1, "b"]}},
            "flag": True}
    p = write_results(tmp_path / "r.h5", tree)
    back = read_results(p)
    assert np.array_equal(back["a"]["x"], np.arange(3.0)) and back["a"]["n"] == 2
    assert back["a"]["name"] == "text" and back["flag"] is True
    with pytest.raises(FileExistsError, match="exists"):
        write_results(p, tree)


def test_toy_reproduction_writes_table_plot_and_results(tmp_path: Path) -> None:
    cfg = rp.make_reproduce_config({"seeds": 2, "transfers": 64, "epochs": 15})
    seen: list[tuple[str, int, int]] = []
    rep = rp.reproduce_drolet2023(cfg, lambda s, d, n: seen.append((s, d, n)))
    assert [(r.kind, r.seed) for r in rep.results] == [
        ("regular", 0), ("hardware-aware", 0), ("regular", 1), ("hardware-aware", 1)]
    assert seen[-1] == ("hardware-aware seed 1", 15, 15)
    mean, std, per = rep.share_95("regular")
    assert len(per) == 2 and mean == pytest.approx(np.mean(per)) and std >= 0
    rows = rp.table_rows(rep)
    assert rows[0][0].startswith("points >= 95 %") and "18.5 %" in rows[0][3]
    assert rp.plot_cdf(rep, tmp_path / "cdf.png").stat().st_size > 1000
    back = read_results(write_results(tmp_path / "r.h5", rp.results_tree(rep)))
    assert back["regular"]["seed1"]["point_fraction"].shape == (200,)
    assert back["hardware_aware"]["share_95"] == pytest.approx(rep.share_95("hardware-aware")[2])
    # every figure: mean [95 % t-interval over the 2 seeds] (per seed), nominal next to it
    share = rep.interval("hardware-aware")
    low, high = max(share.low, 0.0), min(share.high, 1.0)  # a share's bounds shown clipped
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in rows[0][2]
    assert share.low <= share.mean <= share.high
    labels = [r[0] for r in rows]
    assert "nominal accuracy" in labels and any("threshold-free" in x for x in labels)
    assert back["hardware_aware"]["share_95_ci95"] == pytest.approx([share.low, share.high])
    # authors' mapping: single-column by default, the same nets and transfers on pairs too
    assert rep.config.uses_single_column and back["regular"]["single_column"] is True
    assert any(x.startswith("same nets, pairs only") for x in labels)
    r = rep.of("hardware-aware")[0]
    assert r.other_scheme is not None and r.other_scheme.acc_nominal == r.metrics.acc_nominal


def test_toy_reproduction_with_compensation(tmp_path: Path) -> None:
    base = {"seeds": 1, "transfers": 32, "epochs": 10, "mapping": "physical"}
    plain = rp.reproduce_drolet2023(rp.make_reproduce_config(base))
    cfg = rp.make_reproduce_config({**base, "compensate": True,
                                    "compensation": {"steps": 5}})
    rep = rp.reproduce_drolet2023(cfg)
    for a, b in zip(plain.results, rep.results, strict=True):  # same nets, same transfers
        np.testing.assert_array_equal(a.metrics.point_fraction, b.metrics.point_fraction)
        assert b.compensated is not None and b.compensated.n_transfers == 32
    labels = [r[0] for r in rp.table_rows(rep)]
    assert any("read-back compensation" in label for label in labels)
    assert not any("compensation" in r[0] for r in rp.table_rows(plain))
    assert rp.plot_cdf(rep, tmp_path / "cdf.png").stat().st_size > 1000
    back = read_results(write_results(tmp_path / "r.h5", rp.results_tree(rep)))
    c = back["hardware_aware"]["seed0"]["compensated"]
    assert c["point_fraction"].shape == (200,) and c["seconds"] > 0
    assert back["regular"]["compensated_share_95"] == pytest.approx(
        rep.share_95("regular", compensated=True)[2])


def test_reproduce_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="transfers"):
        rp.make_reproduce_config({"transfers": 0})
    with pytest.raises(ConfigError, match="mapping"):
        rp.make_reproduce_config({"mapping": "ideal"})
    with pytest.raises(ConfigError, match="steps"):
        rp.make_reproduce_config({"compensation": {"steps": -1}})


def test_modes_use_their_recipes() -> None:
    a = rp.make_reproduce_config({"mapping": "authors"})
    assert a.recipe_name == "paper" and "paper recipe" in a.title
    ha, reg = a.train_config("hardware-aware", 2), a.train_config("regular", 2)
    # the paper: Adam lr 0.1 constant, batch 256, 10 000 epochs, wd 1e-4 on HA only
    assert (ha.epochs, ha.lr, ha.lr_schedule, ha.batch_size, ha.weight_decay, ha.stuck_scale,
            ha.samples, ha.mapping, ha.init, ha.seed) == (10_000, 0.1, "constant", 256, 1e-4,
                                                          1.0, 1, "authors", "authors", 2)
    assert (reg.epochs, reg.weight_decay, reg.mapping, reg.hardware_aware) == (
        10_000, 0.0, "authors", False)
    x = rp.make_reproduce_config({"mapping": "authors", "recipe": "xbarlab"})
    assert "xbarlab recipe" in x.title
    # xbarlab's recipe changes the hardware-aware training only
    assert x.train_config("regular", 2) == reg
    xha = x.train_config("hardware-aware", 2)
    assert (xha.weight_decay, xha.samples, xha.lr_schedule, xha.mapping, xha.init) == (
        0.0, 8, "cosine", "authors", "authors")
    p = rp.make_reproduce_config({"mapping": "physical"})
    assert p.recipe_name == "xbarlab"
    pha = p.train_config("hardware-aware", 0)
    assert (pha.mapping, pha.samples, pha.lr_schedule, pha.weight_decay) == (
        "physical", 8, "cosine", 0.0)
    pp = rp.make_reproduce_config({"mapping": "physical", "recipe": "paper", "epochs": 7})
    assert pp.train_config("hardware-aware", 0).model_dump() == paper_config(
        "hardware-aware", epochs=7, init="authors", mapping="physical").model_dump()
    with pytest.raises(ConfigError, match="recipe"):
        rp.make_reproduce_config({"recipe": "mine"})


def test_cli_runs_and_refuses_to_overwrite(tmp_path: Path) -> None:
    args = ["reproduce", "drolet2023", "--seeds", "1", "--transfers", "40", "--epochs", "10",
            "--out", str(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "points >= 95 %" in res.output and "79.5 %" in res.output
    assert "authors' mapping" in res.output and "xbarlab physical mapping" in res.output
    for mode in ("authors", "physical"):
        assert (tmp_path / f"cdf_{mode}.png").is_file()
        assert (tmp_path / f"histogram_{mode}.png").is_file()
    assert "test points with a copy in training" in res.output
    back = read_results(tmp_path / "results.h5")
    assert {"authors", "physical"} <= set(back)
    assert back["authors"]["hardware_aware"]["seed0"]["train_config"]["mapping"] == "authors"
    assert back["physical"]["regular"]["seed0"]["train_config"]["mapping"] == "physical"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output


def test_cli_unknown_result() -> None:
    res = runner.invoke(app, ["reproduce", "nobody2020"])
    assert res.exit_code == 2 and "drolet2023" in res.output


def test_cli_single_column_refused_on_the_physical_mapping(tmp_path: Path) -> None:
    res = runner.invoke(app, ["reproduce", "drolet2023", "--mapping", "physical",
                              "--single-column", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "authors" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["reproduce", "drolet2023-crossbar", "--full",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "drolet2023 only" in res.output
    for bad in (["drolet2023-crossbar", "--ablations"], ["drolet2023-crossbar", "--dedup"],
                ["drolet2023", "--chips", "200"], ["drolet2023", "--workers", "2"]):
        res = runner.invoke(app, ["reproduce", *bad, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and "only" in res.output and "Traceback" not in res.output


def test_toy_reproduction_with_ablations_on_the_dedup_split(tmp_path: Path) -> None:
    cfg = rp.make_reproduce_config({"seeds": 2, "transfers": 48, "epochs": 8,
                                    "ablations": True, "dedup": True})
    rep = rp.reproduce_drolet2023(cfg)
    assert "de-duplicated" in rep.data_source
    for r in rep.results:
        assert r.linearity is not None and 0 <= r.linearity.agreement <= 1
        assert set(r.ablations) >= {"all", "none", "only stuck", "without stuck"}
        # "all" is the main evaluation (same model, same seeded draws); "none" the nominal net
        assert r.ablations["all"].share_95 == r.metrics.share_95
        assert r.ablations["none"].acc_mean == pytest.approx(r.metrics.acc_nominal)
    rows = rp.ablation_rows(rep)
    assert len(rows) == 10 and rows[0][0] == "all" and rows[-1][0] == "without stuck devices"
    assert any(r[0].startswith("near-linear nets") for r in rp.table_rows(rep))
    edges, share = rp.point_histogram(rep, "regular")
    below, full = rp.edge_shares(rep, "regular")
    assert len(share) == len(edges) - 1 and share.sum() + below + full == pytest.approx(1.0)
    assert rp.plot_point_histogram(rep, tmp_path / "h.png").stat().st_size > 1000
    back = read_results(write_results(tmp_path / "r.h5", rp.results_tree(rep)))
    assert "only_stuck" in back["regular"]["seed0"]["ablations"]
    assert back["hardware_aware"]["point_histogram"]["share"] == pytest.approx(
        rp.point_histogram(rep, "hardware-aware")[1])


def test_compensation_rows_say_they_use_pairs_under_the_single_column_scheme() -> None:
    cfg = rp.make_reproduce_config({"seeds": 1, "transfers": 16, "epochs": 5, "compensate": True,
                                    "compensation": {"steps": 2}})
    rep = rp.reproduce_drolet2023(cfg)
    labels = [r[0] for r in rp.table_rows(rep) if "compensation" in r[0]]
    assert labels and all("pairs only" in label for label in labels if "correct" in label)
