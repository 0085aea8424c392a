"""The exceptions of the driver layer (re-exported by `xbarlab.drivers.base`)."""

from __future__ import annotations


class InstrumentError(RuntimeError):
    """The instrument reported an error, or talks in a way the driver cannot accept."""


class ReplyError(InstrumentError):
    """A garbage, truncated or unexpected reply. The message names instrument and command."""


class IdentityMismatch(InstrumentError):
    """The instrument at the address is not the one the configuration expects."""


class SettingError(ValueError):
    """A setting outside what the driver (or the bench) accepts. Nothing was sent."""


class SafeStateFailed(InstrumentError):
    """The safe state could not be confirmed, even after reopening the link once."""
