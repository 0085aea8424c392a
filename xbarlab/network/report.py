"""What a `program-network` session did, in rows of text and as a figure: target vs
programmed conductances, accuracy at each stage, and the cost of compensation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xbarlab.network.plan import NetworkOutcome
from xbarlab.units import duration, percent, si


def summary_rows(o: NetworkOutcome) -> list[tuple[str, str]]:
    """(label, text) rows: programming quality, accuracy per stage, cost per phase."""
    used = o.used()
    n = int(used.sum())
    rows: list[tuple[str, str]] = []
    if n:
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(o.programmed[used] - o.nominal[used]) / o.nominal[used]
        finite = err[np.isfinite(err)]
        if finite.size:
            rows.append(("programming error", f"{n} devices; after programming median "
                         f"{percent(float(np.median(finite)))}, 90 % within "
                         f"{percent(float(np.percentile(finite, 90)))} of target"))
        rows.append(("final read", f"{int(o.in_band().sum())} / {n} within "
                     f"±{o.tolerance * 100:.3g} % of their final target; "
                     f"{int((o.stuck & used).sum())} stuck"))
    rows.append(("software accuracy", f"{percent(o.software_test_acc)} (test split, digital)"))
    for e in o.evaluations:
        rows.append((f"accuracy: {e.stage}",
                     f"test {percent(e.test_acc)} through the MVM ({percent(e.readback_test_acc)} "
                     f"from the read-back, digitally); calibration {percent(e.cal_acc)}, "
                     f"loss {e.cal_loss:.4f}" + (f"; {e.clamped} outputs clamped by compliance"
                                                 if e.clamped else "")))
    pulses, secs, cells = o.cost("program")
    rows.append(("cost: programming", f"{pulses} pulses, {cells} device programmings, "
                 f"{duration(secs)}"))
    c_pulses, c_secs, c_cells = o.cost("compensate")
    if any(j.name.startswith("compensate") for j in o.jobs):
        gain = o.evaluations[-1].test_acc - o.evaluations[0].test_acc
        rows.append(("cost: compensation",
                     f"{c_pulses} extra pulses ({percent(c_pulses / max(pulses, 1))} of the "
                     f"programming), {c_cells} devices reprogrammed, {duration(c_secs)}; "
                     f"test accuracy {gain * 100:+.1f} points"))
    return rows


def plot_outcome(o: NetworkOutcome, path: Path) -> Path:
    """Target vs programmed conductance (after programming, and at the end) and the accuracy
    of each stage; saved to `path` (PNG, SVG or PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = o.used()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    t_nom = o.nominal[used] * 1e6
    ax1.plot(t_nom, o.programmed[used] * 1e6, ".", ms=4, label="after programming")
    if any(j.name.startswith("compensate") for j in o.jobs):
        ax1.plot(o.targets[used] * 1e6, o.final[used] * 1e6, "x", ms=4,
                 label="after compensation (vs re-tuned target)")
    stuck = used & o.stuck
    if stuck.any():
        ax1.plot(o.nominal[stuck] * 1e6, o.programmed[stuck] * 1e6, "o", mfc="none", ms=8,
                 color="red", label="stuck")
    lo, hi = float(np.nanmin(t_nom)), float(np.nanmax(t_nom))
    ax1.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax1.set_xlabel("target conductance (µS)")
    ax1.set_ylabel("read conductance (µS)")
    ax1.set_title(f"{int(used.sum())} devices, tolerance ±{o.tolerance * 100:.3g} %")
    ax1.legend(fontsize=8)
    labels = ["software"] + [e.stage for e in o.evaluations]
    test = [o.software_test_acc] + [e.test_acc for e in o.evaluations]
    x = np.arange(len(labels))
    ax2.bar(x - 0.2, np.array(test) * 100, 0.4, label="test, through the MVM")
    ax2.bar(x[1:] + 0.2, [e.cal_acc * 100 for e in o.evaluations], 0.4,
            label="calibration, through the MVM")
    ax2.set_xticks(x, labels, rotation=20, fontsize=8)
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(min(50.0, min(test) * 100 - 5), 100)
    pulses, _, _ = o.cost("program")
    c_pulses, _, _ = o.cost("compensate")
    ax2.set_title(f"{pulses} programming pulses, {c_pulses} for compensation")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def window_text(g_min: float, g_max: float) -> str:
    return f"{si(g_min, 'S')} to {si(g_max, 'S')}"
