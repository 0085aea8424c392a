"""The commands a sweep point can run, each as a picklable task and a config validator.

- `run <protocol>`: a session (`xbarlab run`) on the simulator or a bench, logged to HDF5;
  the row carries the run's status and the protocol's outcome (write-verify: converged and
  in-tolerance cells, pulses, errors; read map: conductance statistics).
- `reproduce drolet2023`: the paper's statistical transfers (needs the nn extra); the row
  carries the share of test points >= 95 % correct per network kind, the file is an HDF5
  results file.

Tasks run on Dask workers: they import what they need inside the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xbarlab.config import ConfigError, SessionConfig, validate_config
from xbarlab.sweep.spec import Point, Validator

RUN_PROTOCOLS = ("write_verify_array", "read_map")


@dataclass(frozen=True, slots=True)
class Command:
    """A sweepable command: how to check a point's config and how to run it."""

    name: str
    validate: Validator
    task: Any  # xbarlab.sweep.execute.Task (a module-level function, so it pickles)


def _session_validator(protocol: str) -> Validator:
    def validate(cfg: dict[str, Any]) -> dict[str, Any]:
        data = dict(cfg)
        proto = data.setdefault("protocol", {})
        if isinstance(proto, dict):
            data["protocol"] = {"kind": protocol, **proto}
        session = validate_config(data, SessionConfig, "sweep point")
        if session.protocol.kind != protocol:
            raise ConfigError(f"sweep point: protocol.kind: is '{session.protocol.kind}', the "
                              f"command runs '{protocol}'")
        return session.model_dump(mode="json")

    return validate


def session_task(point: Point, log: Path) -> dict[str, Any]:
    """Run a session point quietly, logged to `log`; its status and outcome as row fields."""
    from xbarlab.engine import RunEngine
    from xbarlab.log.writer import HDF5Writer
    from xbarlab.sessions import build_backend, build_plan

    cfg = SessionConfig.model_validate(point.config)
    backend = build_backend(cfg)
    try:
        plan = build_plan(cfg, backend.shape)
        with HDF5Writer(log, overwrite=True) as writer:
            result = RunEngine(backend, cfg.limits, [writer]).run(
                plan, protocol=cfg.protocol.kind, config=point.config, seed=cfg.seed)
    finally:
        close = getattr(backend, "close", None)
        close() if callable(close) else backend.safe_state()
    fields = outcome_fields(result.value)
    return {"status": result.status.value, "reason": result.reason, "run_id": result.run_id,
            "operations": result.n_events,
            # the protocol ran to its end (a verdict, even "failed"), not a fault or an abort
            "completed": bool(fields) and result.status.value != "aborted", **fields}


def outcome_fields(value: Any) -> dict[str, Any]:
    """Numbers a sweep compares, from a protocol's return value."""
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
        return {"g_min": float(value.min()), "g_median": float(np.median(value)),
                "g_max": float(value.max())}
    return {}


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


def command(name: str) -> Command:
    """The sweepable command called `name`; `ConfigError` listing the known ones otherwise."""
    words = name.split()
    if len(words) == 2 and words[0] == "run" and words[1] in RUN_PROTOCOLS:
        return Command(name, _session_validator(words[1]), session_task)
    if words == ["reproduce", "drolet2023"]:
        return Command(name, _reproduce_validator, reproduce_task)
    known = [f"run {p}" for p in RUN_PROTOCOLS] + ["reproduce drolet2023"]
    raise ConfigError(f"command: unknown '{name}'; sweepable: {', '.join(known)}")
