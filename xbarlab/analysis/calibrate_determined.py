"""Which fits a calibration calls determined, and what it does with the rest.

A parameter is *determined* when its standard error is at most `DETERMINED_REL_SE` of its
value: the required accuracy (10 %) over `CONFIDENCE_Z` (3), so that a determined value lies
within 10 % of the truth unless it is more than 3 standard errors off. A fit with a larger
standard error, but within its value, is *estimated*: written into the preset (it is still
the logs' best figure, and a base 40 % off would predict a session worse), listed apart from
the determined ones and marked "estimated, not determined to 10 %". A standard error above
the value: kept from the base (`drop_undetermined`). Each case says so in a warning.

The switching rate s(|V|) = a (exp(|V|/t) - 1) of each polarity is settled first
(`settle_rates`). The pulse steps (and the half-select disturb) measure the rate at the
steps' median amplitude, s(v_ref), and how fast it grows with |V|, t. The prefactor a is that
rate extrapolated to 0 V, a = s(v_ref) / (exp(v_ref/t) - 1): v_ref/t is ~4.5 e-folds below
the data (1.1 V over 0.25 V), so a relative error e on t becomes ~(v_ref/t) e on a (1 % on t,
~5 % on a). Write-verify logs of a 32 x 32 array pin t to 1-6 %, so a to 5-40 %: a is not
determined, and no refit of these data makes it so (the information is not in them). So:

- s(v_ref) with a standard error above its value: the polarity's a and t kept from the base;
- t estimated (or, with a standard error above its value, kept from the base and the rate
  at v_ref refitted at that t);
- a not determined (the usual case): a is *derived*: written into the preset as
  s(v_ref) / (exp(v_ref/t) - 1), so that the model reproduces the measured rate at v_ref
  with the fitted (or kept) t, and listed with the estimated ones, with its standard error.
  Keeping the base's a beside a fitted t would contradict the measured rate. a counts as
  determined only when its own standard error, t's and the rate's all pass the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xbarlab.analysis.calibrate_data import Estimate, LogData
from xbarlab.sim.presets import CompactPreset

REQUIRED_REL_ACCURACY = 0.10  # the round trip's bar: within 10 % of the true value
CONFIDENCE_Z = 3.0  # standard errors that must fit within it
DETERMINED_REL_SE = REQUIRED_REL_ACCURACY / CONFIDENCE_Z
LOOSE_REL_SE = 1.0  # a standard error above the value: not measured at all, kept from the base


def rel_se(e: Estimate) -> float:
    """Standard error over |value| (inf for a zero value or an unknown error)."""
    if e.value == 0 or not np.isfinite(e.stderr) or not np.isfinite(e.value):
        return float("inf")
    return float(e.stderr / abs(e.value))


def is_determined(e: Estimate) -> bool:
    return rel_se(e) <= DETERMINED_REL_SE


def _why(e: Estimate) -> str:
    return (f"fit {e.value:.4g}, std error {e.stderr:.3g} = {rel_se(e):.1%} of it, above "
            f"{DETERMINED_REL_SE:.1%} = {REQUIRED_REL_ACCURACY:.0%}/{CONFIDENCE_Z:g}")


def _se(var: float) -> float:
    return float(np.sqrt(var)) if np.isfinite(var) and var >= 0 else float("inf")


Refit = Callable[..., Any]  # calibrate.fit_rates(p, logs, setting, fix_t=True)


def _estimated(e: Estimate, what: str) -> Estimate:
    return Estimate(e.name, e.value, e.stderr, e.n, e.unit, f"{what}; {e.method}")


def settle_rates(p: CompactPreset, logs: list[LogData], fits: list[Any],
                 estimates: list[Estimate], warnings: list[str], rates: list[dict[str, Any]],
                 base: str, refit: Refit) -> list[Estimate]:
    """Apply the rules of the module docstring to each polarity's fit (`calibrate.RateFit`,
    replaced in `fits` when refitted at the base's t); `estimates`, `warnings` and `rates`
    are updated in place. Returns the estimated ones (written, not determined)."""
    out: list[Estimate] = []
    for i, f in enumerate(list(fits)):
        q = "set" if f.setting else "reset"
        entry = next(r for r in rates if r["polarity"] == q)
        by_name = {e.name: e for e in estimates}
        a_e, t_e = by_name.get(f"{q}.a"), by_name.get(f"{q}.t")
        rate_rse = _se(f.cov_ref[0, 0])
        entry["determined"] = bool(rate_rse <= DETERMINED_REL_SE)
        if not rate_rse <= LOOSE_REL_SE:
            estimates[:] = [e for e in estimates if e.name not in (f"{q}.a", f"{q}.t")]
            warnings.append(f"{q}.a: not determined by the logs (the rate at "
                            f"{f.v_ref:.3g} V is known to {rate_rse:.0%}); {q}.a and {q}.t kept "
                            f"from {base}")
            continue
        t_kept = t_e is None
        if t_e is not None and not is_determined(t_e):
            estimates[:] = [e for e in estimates if e.name != t_e.name]
            if rel_se(t_e) <= LOOSE_REL_SE:
                out.append(_estimated(t_e, "estimated, not determined to "
                                           f"{REQUIRED_REL_ACCURACY:.0%}"))
                warnings.append(f"{q}.t: not determined to {REQUIRED_REL_ACCURACY:.0%} "
                                f"({_why(t_e)}); written as estimated")
            else:
                new = refit(p, logs, f.setting, fix_t=True)
                if new is None:  # cannot happen: the same steps were fitted before
                    continue
                warnings.append(f"{q}.t: not determined by the logs ({_why(t_e)}); kept from "
                                f"{base}, the rate at {new.v_ref:.3g} V refitted at that t")
                fits[i] = f = new
                a_e = Estimate(f"{q}.a", new.a, new.a * _se(new.cov_ref[0, 0]), len(new.g0),
                               "1/(ohm s)", f"pulse steps at {base}'s t")
                entry.update(rate=new.rate_ref, rel_stderr=_se(new.cov_ref[0, 0]), t_from=base)
                entry["determined"] = bool(_se(new.cov_ref[0, 0]) <= DETERMINED_REL_SE)
                t_kept = True
        if a_e is None:
            continue
        t_ok = not t_kept and t_e is not None and is_determined(t_e)
        if t_ok and entry["determined"] and is_determined(a_e):
            continue  # a determined: stays among the fitted
        estimates[:] = [e for e in estimates if e.name != a_e.name]
        t_from = (f"{base}'s t" if t_kept else "the fitted t" if t_ok
                  else "the estimated t")
        method = (f"derived, not determined: s({f.v_ref:.3g} V) / (exp({f.v_ref:.3g} V / t) - 1) "
                  f"with {t_from} (reproduces the rate measured at {f.v_ref:.3g} V, std error "
                  f"{rate_rse:.1%}; a extrapolates it to 0 V, v_ref/t = {f.v_ref / f.t:.2g} "
                  "e-folds below the data)")
        out.append(Estimate(a_e.name, a_e.value, a_e.stderr, a_e.n, a_e.unit, method))
        warnings.append(f"{q}.a: not determined to {REQUIRED_REL_ACCURACY:.0%} (std error "
                        f"{rel_se(a_e):.0%} of it: the rate extrapolated from {f.v_ref:.3g} V to "
                        f"0 V); written as derived, the value that reproduces the rate measured "
                        f"at {f.v_ref:.3g} V")
    return out


def drop_undetermined(estimates: list[Estimate], warnings: list[str], base: str
                      ) -> tuple[list[Estimate], list[Estimate]]:
    """(determined, estimated): an estimate whose standard error is within its value but
    above `DETERMINED_REL_SE` of it is written as estimated, not determined; one whose
    standard error exceeds its value is kept from the base. Each with a warning."""
    out, estimated = [], []
    for e in estimates:
        if is_determined(e):
            out.append(e)
        elif rel_se(e) <= LOOSE_REL_SE:
            estimated.append(_estimated(e, "estimated, not determined to "
                                           f"{REQUIRED_REL_ACCURACY:.0%}"))
            warnings.append(f"{e.name}: not determined to {REQUIRED_REL_ACCURACY:.0%} "
                            f"({_why(e)}); written as estimated")
        else:
            warnings.append(f"{e.name}: not determined by the logs ({_why(e)}); kept from "
                            f"{base}")
    return out, estimated
