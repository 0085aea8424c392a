"""The pulse-generator bench used by the tests: a 2636B reads (a drives, b senses), a 2450
biases unselected lines, a 33522B pulses, a 707B routes."""

from __future__ import annotations

from typing import Any

from tests.emulators.benches import LIMITS, PINS

PULSE_BENCH: dict[str, Any] = {
    "kind": "pulse", "name": "emulated-pulse-8x8", "rows": 8, "cols": 8, "settle": 0.0,
    "instruments": {
        "smu": {"driver": "keithley2600", "address": "-", "identity": "Model 2636B"},
        "bias": {"driver": "keithley2450", "address": "-", "identity": "MODEL 2450"},
        "fgen": {"driver": "keysight33500", "address": "-", "identity": "33522B"},
        "matrix": {"driver": "keithley707b", "address": "-", "identity": "Model 707B"},
    },
    "roles": {"drive": "smu.a", "sense": "smu.b", "bias_row": "bias", "matrix": "matrix",
              "pulse": "fgen"},
    "pins": {**PINS, "bias_col": None, "pulse": "E"},
    "limits": {**LIMITS, "pulse_width_min": 2e-8},
    "pulse_edge": 1e-8,
}
