"""Conventions every driver keeps: no I/O in constructors, roles implemented, every command
documented in the module docstring, strict validators."""

from __future__ import annotations

import math
import re
from types import ModuleType
from typing import Any

import pytest

from xbarlab.bench.roles import Board, SourceMeter, SwitchMatrix
from xbarlab.drivers import keithley707b, keithley2450, keithley2600, keysight_b2900, serial_board
from xbarlab.drivers.base import Setting, SettingError
from xbarlab.drivers.transports import TranscriptTransport

DRIVERS = [
    (keithley2450, lambda t: keithley2450.Keithley2450(t), SourceMeter),
    (keithley2600, lambda t: keithley2600.Keithley2600Channel(t, "b"), SourceMeter),
    (keysight_b2900, lambda t: keysight_b2900.KeysightB2900Channel(t, 2), SourceMeter),
    (keithley707b, lambda t: keithley707b.Keithley707B(t), SwitchMatrix),
    (serial_board, lambda t: serial_board.SerialBoard(t, (4, 4)), Board),
]
IDS = [m.__name__.rsplit(".", 1)[1] for m, _, _ in DRIVERS]


@pytest.mark.parametrize(("module", "make", "role"), DRIVERS, ids=IDS)
def test_constructor_does_no_io_and_implements_its_role(module: ModuleType, make: Any,
                                                        role: type) -> None:
    t = TranscriptTransport([])
    drv = make(t)
    assert isinstance(drv, role)
    assert t.sent == [] and not t.is_open


@pytest.mark.parametrize(("module", "make", "role"), DRIVERS, ids=IDS)
def test_every_command_is_documented(module: ModuleType, make: Any, role: type) -> None:
    doc = module.__doc__ or ""
    for name, template in vars(module.Cmd).items():
        if name.startswith("_"):
            continue
        head = re.split(r"\{(?!ch\})", template)[0]  # text before the first non-channel field
        assert head.strip() and head in doc, f"{module.__name__}.Cmd.{name} {head!r} not in doc"


SMUS = [(m, mk) for m, mk, role in DRIVERS if role is SourceMeter]


@pytest.mark.parametrize(("module", "make"), SMUS, ids=[m.__name__ for m, _ in SMUS])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, None, "1", 1e9, -1e9])
def test_settings_raise_and_never_clamp(module: ModuleType, make: Any, bad: Any) -> None:
    t = TranscriptTransport([])
    drv = make(t)
    for name, attr in vars(type(drv)).items():
        if isinstance(attr, Setting):
            with pytest.raises(SettingError, match=name):
                setattr(drv, name, bad)
            assert getattr(drv, name) is None
    assert t.sent == []
