"""The commands a sweep point can run, each as a picklable task and a config validator.

- `run <protocol>`: a simulated session of any protocol `xbarlab run` knows, logged to HDF5;
  the row carries the run's status and the protocol's outcome (write-verify: converged and
  in-tolerance cells, pulses, errors; read map: conductance statistics; per-cell protocols:
  shares and medians of their outcome fields).
- `program-network`: a trained network (`.npz`, the point's `net:` field, so networks are an
  axis like any other) programmed onto simulated arrays (`xbarlab program-network`); the row
  carries the test accuracy through the MVM after programming and after compensation, the
  devices in tolerance and the pulses each stage cost.
- `reproduce drolet2023`: the paper's statistical transfers (needs the nn extra); the row
  carries the share of test points >= 95 % correct per network kind, the file is an HDF5
  results file.

Tasks run on Dask workers: they import what they need inside the call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.config import ConfigError, validate_config
from xbarlab.protocol_configs import ProtocolSession, protocol_kinds, session_from_data
from xbarlab.sweep.spec import Point, Validator


@dataclass(frozen=True, slots=True)
class Command:
    """A sweepable command: how to check a point's config and how to run it."""

    name: str
    validate: Validator
    task: Any  # xbarlab.sweep.execute.Task (a module-level function, so it pickles)


def _session_validator(protocol: str) -> Validator:
    def validate(cfg: dict[str, Any]) -> dict[str, Any]:
        session = session_from_data(protocol, cfg, "sweep point")
        if session.backend == "bench":
            raise ConfigError("sweep point: backend 'bench': a sweep runs simulated sessions "
                              "(points run in parallel; one bench cannot)")
        return session.model_dump(mode="json")

    return validate


def session_task(point: Point, log: Path) -> dict[str, Any]:
    """Run a session point quietly, logged to `log`; its status and outcome as row fields."""
    from xbarlab.analysis.physics_checks import circuit_gains, circuit_tracking
    from xbarlab.engine import RunEngine
    from xbarlab.log.writer import HDF5Writer
    from xbarlab.protocols.registry import plan_for
    from xbarlab.sessions import build_backend

    cfg = ProtocolSession.model_validate(point.config)
    backend = build_backend(cfg)
    try:
        plan = plan_for(cfg.protocol, backend.shape, gains=circuit_gains(cfg),
                        tracking=circuit_tracking(cfg))
        with HDF5Writer(log, overwrite=True) as writer:
            result = RunEngine(backend, cfg.limits, [writer]).run(
                plan, protocol=cfg.protocol.kind, config=point.config, seed=cfg.seed)
    finally:
        close = getattr(backend, "close", None)
        close() if callable(close) else backend.safe_state()
    fields = outcome_fields(result.value)
    # the protocol ran to its end (a verdict, even "failed": no cell in tolerance), not a
    # fault or an abort: a result of the sweep
    completed = result.ok or (bool(fields) and result.status.value == "failed"
                              and not result.reason.startswith(("refused", "safe state")))
    return {"status": result.status.value, "reason": result.reason, "run_id": result.run_id,
            "operations": result.n_events, "completed": completed, **fields}


def outcome_fields(value: Any) -> dict[str, Any]:
    """Numbers a sweep compares, from a protocol's return value.

    Write-verify: cells in tolerance, pulses, errors. A read map: conductance statistics. A list
    of per-cell outcomes (forming, converge, multistate, ...): the share of each yes/no field
    (`formed_share`) and the median of each numeric one (`n_pulses_median`)."""
    from xbarlab.protocols.write_verify import ArrayOutcome

    if isinstance(value, ArrayOutcome):
        n = len(value.cells)
        err = np.abs(value.final - value.targets) / value.targets
        return {
            "cells": n,
            "converged": value.converged,
            "in_tolerance_final": value.in_tolerance_final,
            "in_tolerance_share": value.in_tolerance_final / n if n else float("nan"),
            "pulses": value.n_pulses,
            "pulses_per_cell": value.n_pulses / n if n else float("nan"),
            "median_error": float(np.median(err)),
            "max_error": float(np.max(err)),
        }
    if isinstance(value, np.ndarray) and value.size:
        return {"g_min": float(np.nanmin(value)), "g_median": float(np.nanmedian(value)),
                "g_max": float(np.nanmax(value))}
    if isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
        return per_cell_fields(value)
    return {}


def per_cell_fields(outcomes: list[Any]) -> dict[str, Any]:
    """Shares of the yes/no fields and medians of the numeric fields of per-cell outcomes
    (a numeric field that is None for some cells, e.g. the forming voltage of a cell that did
    not form, has the median of the cells that have one)."""
    fields: dict[str, Any] = {"cells": len(outcomes)}
    for f in dataclasses.fields(outcomes[0]):
        values = [getattr(o, f.name) for o in outcomes]
        if all(isinstance(v, (bool, np.bool_)) for v in values):
            fields[f"{f.name}_share"] = float(np.mean(values))
            continue
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (int, float, np.integer, np.floating))
                           and not isinstance(v, (bool, np.bool_)) for v in present):
            fields[f"{f.name}_median"] = float(np.median(np.asarray(present, dtype=float)))
    return fields


def _reproduce_validator(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        from xbarlab.nn.reproduce import ReproduceConfig
    except ImportError as exc:
        raise ConfigError(f"reproduce needs the nn extra (torch, scikit-learn): {exc}") from None
    return validate_config(cfg, ReproduceConfig, "sweep point").model_dump(mode="json")


def reproduce_task(point: Point, log: Path) -> dict[str, Any]:
    """Run the Drolet 2023 reproduction for one point; results to `log` (HDF5 results)."""
    from xbarlab.log.results import write_results
    from xbarlab.nn import reproduce as rp

    rep = rp.reproduce_drolet2023(rp.make_reproduce_config(point.config))
    write_results(log, rp.results_tree(rep), overwrite=True)
    fields: dict[str, Any] = {"status": "success", "reason": "", "data": rep.data_source}
    for kind in rp.KINDS:
        mean, std, _ = rep.share_95(kind)
        key = kind.replace("-", "_")
        fields[f"share_95.{key}"] = mean
        fields[f"share_95_std.{key}"] = std
        fields[f"nominal.{key}"] = float(np.mean([r.metrics.acc_nominal for r in rep.of(kind)]))
    return fields


def _network_validator(cfg: dict[str, Any]) -> dict[str, Any]:
    from xbarlab.network.config import NetworkSessionConfig
    from xbarlab.network.model import load_npz

    data = dict(cfg)
    net = data.pop("net", None)
    if not isinstance(net, str) or not net:
        raise ConfigError("sweep point: net: the network file (.npz) each point programs is "
                          "missing (a field of the base config or an axis)")
    path = Path(net).expanduser().resolve()
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise ConfigError(f"sweep point: net: {net}: no such .npz network file (a sweep takes "
                          ".npz networks; paths are relative to the working folder)")
    try:
        load_npz(path)
    except ValueError as exc:
        raise ConfigError(f"sweep point: net: {exc}") from None
    session = validate_config(data, NetworkSessionConfig, "sweep point")
    if session.backend == "bench":
        raise ConfigError("sweep point: backend 'bench': a sweep runs simulated sessions "
                          "(points run in parallel; one bench cannot)")
    return {"net": str(path), **session.model_dump(mode="json", exclude={"protocol"})}


def network_task(point: Point, log: Path) -> dict[str, Any]:
    """Program the point's network onto simulated arrays (`xbarlab program-network`)."""
    from xbarlab.network.config import NetworkSessionConfig
    from xbarlab.network.datasets import load_dataset
    from xbarlab.network.model import load_npz
    from xbarlab.network.plan import NetworkOutcome
    from xbarlab.network.session import run_session

    data = dict(point.config)
    net = load_npz(Path(data.pop("net")))
    cfg = NetworkSessionConfig.model_validate(data)
    evalset = load_dataset(cfg.network.dataset or net.dataset or "moons")
    res = run_session(cfg, net, evalset, log, overwrite=True).result
    out = res.value
    evaluated = isinstance(out, NetworkOutcome) and bool(out.evaluations)
    fields: dict[str, Any] = {"status": res.status.value, "reason": res.reason,
                              "run_id": res.run_id, "operations": res.n_events,
                              # scored through the MVM: a result even when devices missed
                              "completed": res.ok or (res.status.value == "failed" and evaluated)}
    if isinstance(out, NetworkOutcome):
        used = int(out.used().sum())
        fields.update(devices=used, in_tolerance=int(out.in_band().sum()),
                      stuck=int((out.stuck & out.used()).sum()),
                      software_test_acc=out.software_test_acc)
        for e in out.evaluations:
            stage = e.stage.split("/")[0]  # "programmed", "compensated/2" -> last of a kind
            fields[f"test_acc.{stage}"] = e.test_acc
            fields[f"cal_acc.{stage}"] = e.cal_acc
        if out.evaluations:
            fields["test_acc"] = out.evaluations[-1].test_acc
        for prefix in ("program", "compensate"):
            pulses, seconds, devices = out.cost(prefix)
            fields[f"pulses.{prefix}"] = pulses
            fields[f"seconds.{prefix}"] = seconds
            fields[f"devices.{prefix}"] = devices
    return fields


def command(name: str) -> Command:
    """The sweepable command called `name`; `ConfigError` listing the known ones otherwise."""
    words = name.split()
    kinds = protocol_kinds()
    if len(words) == 2 and words[0] == "run" and words[1] in kinds:
        return Command(name, _session_validator(words[1]), session_task)
    if words == ["reproduce", "drolet2023"]:
        return Command(name, _reproduce_validator, reproduce_task)
    if words == ["program-network"]:
        return Command(name, _network_validator, network_task)
    known = [f"run {p}" for p in kinds] + ["program-network", "reproduce drolet2023"]
    raise ConfigError(f"command: unknown '{name}'; sweepable: {', '.join(known)}")
