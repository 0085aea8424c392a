"""Fits that rest on relations the logs did not check are not called determined.

The switching rates are fitted through the read I-V law and the window clip levels: a read G
becomes a state resistance R = k / G with the read factor k of ``iv.b`` (`tio2.read_factor`),
and a pulse's change is clipped to [``r_on``, ``r_off``]. When the logs hold no I-V sweep (so
``iv.b`` comes from the base) or no cycling into saturation (``r_on`` / ``r_off`` from the
base), every R the rate fit sees is scaled by the base's k and clipped at the base's levels.
A base off by tens of percent then moves the rates by tens of percent while their
statistical standard errors stay a few percent (measured on write-verify logs alone of two
truths perturbed by up to +-40 %: rates 36-58 % off, one ``set.t`` -24 % at a 1.3 % standard
error). So a fit in `RESTS_ON_LAW` is *estimated*, not determined, unless ``iv.b``, ``r_on``
and ``r_off`` are all determined by the same logs; the reason is written into its method and
a warning says which relations were not checked.
"""

from __future__ import annotations

from typing import Any

from xbarlab.analysis.calibrate_data import Estimate

LAW = ("iv.b", "r_on", "r_off")  # the read I-V law and the clip levels
RESTS_ON_LAW = ("set.a", "set.t", "reset.a", "reset.t", "variability.d2d_rate")
_WHAT = {"iv.b": "the read I-V law (iv.b, from I-V sweeps)",
         "r_on": "the LRS clip level (r_on, from cycling into saturation)",
         "r_off": "the HRS clip level (r_off, from cycling into saturation)"}


def unchecked_law(determined: list[Estimate]) -> list[str]:
    """The names of `LAW` that the logs did not determine (kept from the base or loose)."""
    have = {e.name for e in determined}
    return [n for n in LAW if n not in have]


def flag_unchecked(determined: list[Estimate], estimated: list[Estimate], warnings: list[str],
                   rates: list[dict[str, Any]], base: str
                   ) -> tuple[list[Estimate], list[Estimate]]:
    """(determined, estimated) with every fit of `RESTS_ON_LAW` moved to the estimated ones
    (reason in its method) when `unchecked_law` is not empty; the rates at the median
    amplitude are then marked not determined too (with the reason). One warning whenever
    rates were fitted through the unchecked law, even if none was determined."""
    missing = unchecked_law(determined)
    if not missing:
        return determined, estimated
    moved = [e for e in determined if e.name in RESTS_ON_LAW]
    if not moved and not rates:
        return determined, estimated
    why = ("rests on " + ", ".join(_WHAT[n] for n in missing)
           + f" kept from {base}, which the logs do not check")
    keep = [e for e in determined if e.name not in RESTS_ON_LAW]
    out = list(estimated)
    for e in moved:
        out.append(Estimate(e.name, e.value, e.stderr, e.n, e.unit,
                            f"estimated, not determined: {why} (statistical std error "
                            f"{e.stderr / abs(e.value):.1%}); {e.method}"))
    for r in rates:
        if r.get("determined"):
            r["determined"] = False
            r["not_determined_because"] = why
    names = [e.name for e in moved] + [f"rate {r['polarity']}" for r in rates
                                       if r.get("not_determined_because")]
    head = ", ".join(names) if names else "switching rates"
    warnings.append(f"{head}: not determined: the rate fit {why} (a base off by "
                    "tens of percent moves the rates by as much, whatever their statistical "
                    "std error); written as estimated. Add I-V sweeps (curve tracer, read_at: "
                    "both) and a cycling run into saturation (endurance) to determine them")
    return keep, out
