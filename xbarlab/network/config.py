"""The session config of `xbarlab program-network`: a session config (backend, sim, bench,
limits, log, metadata) with a ``network:`` section instead of a ``protocol:``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from xbarlab.config import SessionConfig, WriteVerifyArrayProtocol, WriteVerifyParams, _Strict
from xbarlab.crossbar import BiasScheme


class CompensationSettings(_Strict):
    """Chip-in-the-loop compensation after the read-back (`xbarlab.network.compensation`)."""

    rounds: int = Field(0, ge=0, le=20, description="re-tune / reprogram rounds at most "
                        "(0: off); stops early when the calibration accuracy stops improving")
    steps: int = Field(200, ge=1, le=20_000, description="gradient steps of each re-tune")
    lr: float = Field(0.01, gt=0, le=1, description="Adam step, in units of the window span")
    noise: float | None = Field(
        None, ge=0, lt=1, description="relative programming error the re-tune makes its "
        "targets robust to; None: measured on the chip (spread of read-back vs target)")
    samples: int = Field(4, ge=1, le=64, description="noise draws per re-tune step")
    min_gain: float = Field(0.1, ge=0, lt=1, description="reprogram only when the expected "
                            "calibration loss after reprogramming is this much (relative) "
                            "below the present one")
    tolerance: float | None = Field(
        None, gt=0, lt=1, description="a device is reprogrammed when its re-tuned target is "
        "this far (relative) from its measured conductance; None: the write-verify tolerance")


class NetworkSettings(_Strict):
    """How a network is mapped, programmed and evaluated."""

    dataset: str = Field("", description="evaluation set (`xbarlab.network.datasets`): a "
                         "name or module:function; empty: the network file's, else moons")
    g_min: float = Field(100e-6, gt=0, description="conductance window, low end (S)")
    g_max: float = Field(500e-6, gt=0, description="conductance window, high end (S)")
    single_column: bool = Field(False, description="one device per value for single-sign "
                                "tensors (the authors' scheme)")
    order: Literal["row-major", "column-major"] = "column-major"
    pack: bool = Field(True, description="several tiles per array (shelves); off: one tile "
                       "per array")
    max_arrays: int = Field(64, ge=1, le=4096, description="simulator: most arrays a network "
                            "may take (a bench has its one array)")
    passes: int = Field(1, ge=1, le=20, description="write-verify passes over devices that "
                        "later programming disturbed out of tolerance")
    v_read: float = Field(0.2, gt=0, description="largest MVM input voltage (V)")
    write_verify: WriteVerifyParams = WriteVerifyParams()
    verify: Literal["auto", "raw", "circuit"] = Field(
        "auto", description="what a verify read aims at: 'raw' the target (the read is taken "
        "for the device's conductance); 'circuit' the read a device at its target gives in "
        "the circuit model of the sim section (wires, source and sense resistance; grounded "
        "reads), pulse amplitudes scaled by the share a cell receives, read-backs "
        "deconvolved through the model (`xbarlab.network.aim`); 'auto': circuit when the "
        "model has any wire, source or sense resistance and reads are grounded")
    max_cal: int | None = Field(400, ge=1, description="calibration points used (None: all)")
    max_test: int | None = Field(None, ge=1, description="test points scored (None: all)")
    compensation: CompensationSettings = CompensationSettings()
    calibrate_outputs: bool = Field(
        False, description="after programming and compensation, fit a gain and an offset per "
        "output of every layer in the digital periphery (calibration split) so that each "
        "layer computes what its programmed targets say; kept when the calibration accuracy "
        "improves")

    @model_validator(mode="after")
    def _window(self) -> NetworkSettings:
        if self.g_min >= self.g_max:
            raise ValueError("g_min must be below g_max")
        return self


class NetworkSessionConfig(SessionConfig):
    """A `program-network` session: the backend sections of a session config and ``network``.

    ``protocol:`` is refused: the write-verify settings are ``network.write_verify``."""

    network: NetworkSettings = NetworkSettings()

    @model_validator(mode="after")
    def _no_protocol(self) -> NetworkSessionConfig:
        if "protocol" in self.model_fields_set:
            raise ValueError("program-network takes no `protocol:`; put the write-verify "
                             "settings under network.write_verify")
        return self

    def aims_through_circuit(self) -> bool:
        """Whether the verify reads aim through the circuit model (``network.verify``)."""
        v = self.network.verify
        if v != "auto":
            return v == "circuit"
        from xbarlab.network.aim import wired

        return (wired(self.sim)
                and self.network.write_verify.read_scheme is BiasScheme.GROUNDED)

    @model_validator(mode="after")
    def _circuit_reads_grounded(self) -> NetworkSessionConfig:
        if (self.network.verify == "circuit"
                and self.network.write_verify.read_scheme is not BiasScheme.GROUNDED):
            raise ValueError("network.verify 'circuit' models grounded reads; set "
                             "network.write_verify.read_scheme: grounded")
        return self

    def as_write_verify_session(self) -> SessionConfig:
        """The equivalent write-verify session (for the bench checks and the physics checks
        every write-verify session passes)."""
        n = self.network
        proto = WriteVerifyArrayProtocol(params=n.write_verify, order=n.order, passes=n.passes,
                                         compensate=self.aims_through_circuit())
        data = self.model_dump(exclude={"network", "protocol"})
        return SessionConfig.model_validate({**data, "protocol": proto.model_dump()})
