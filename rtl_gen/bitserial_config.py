"""Design-point parameters of the bit-serial mixed-precision MAC array (``family: bitserial``)."""
from __future__ import annotations

from dataclasses import dataclass

from lowbit.golden_models.bitserial import MAX_RESULT_BITS, MODES, plan

from .config import DesignConfig
from .params import boolean, choice, integer


@dataclass(frozen=True)
class BitserialConfig(DesignConfig):
    """``params`` of ``family: bitserial``: declared on the fields below (``lowbit params
    bitserial`` lists them). Modes: weight_serial (weights one bit-plane per cycle,
    activations bit-parallel), both_serial (both bit-serial, AND + popcount), parallel
    (bit-parallel multiplier baseline)."""

    family = "bitserial"
    generator = "lowbit.rtl_gen.bitserial:BitSerialArray"
    bench = "lowbit.testbenches.tb_bitserial"
    golden_module = "lowbit.golden_models.bitserial"

    mode: str = choice(MODES, "weight_serial", "weight_serial, both_serial or the bit-parallel baseline")
    rows: int = integer(1, 64, 8, "processing elements along the output rows (R)")
    cols: int = integer(1, 16, 1, "processing elements along the activation columns (C; 1: GEMV)")
    lanes: int = integer(1, 256, 8, "products each PE reduces per cycle (L)")
    group_size: int = integer(1, 4096, 64, "weights per scale group along K (G), a multiple of lanes")
    k_max: int = integer(1, 1 << 24, 4096, "the longest K a tile may have (sizes the totals)")
    wbits_max: int = integer(1, 8, 8, "the widest run-time weight precision")
    abits: int = integer(1, 16, 8, "activation width (both_serial: the widest run-time "
                                   "activation precision; at least 2 otherwise)")
    asigned: bool = boolean(True, "activations are signed")
    scale_bits: int = integer(0, 16, 8, "width of the unsigned per-group scale (0: no scales)")
    zero_point: bool = boolean(False, "weights carry a per-group zero point")

    def check(self) -> None:
        if self.mode != "both_serial" and self.abits < 2:
            raise self.error("abits", f"{self.abits!r} is not allowed; expected an integer from 2 to 16")
        if self.group_size % self.lanes:
            raise self.error("group_size", f"{self.group_size} is not a multiple of lanes ({self.lanes})")
        if self.k_max % self.group_size:
            raise self.error("k_max", f"{self.k_max} is not a multiple of group_size ({self.group_size})")
        bits = plan(self).result_bits
        if bits > MAX_RESULT_BITS:
            raise self.error("k_max", f"results would need {bits} bits (at most "
                                      f"{MAX_RESULT_BITS}); lower k_max, scale_bits or the widths")

    @property
    def steps(self) -> int:
        """Cycles per ``lanes`` products at the widest precisions."""
        return {"weight_serial": self.wbits_max, "both_serial": self.wbits_max * self.abits,
                "parallel": 1}[self.mode]

    def throughput_per_cycle(self) -> float:
        return self.rows * self.cols * self.lanes / self.steps

    def host_vectors(self, rng, count: int) -> list:
        """Host-adapter stimulus and golden results per stream (:mod:`rtl_gen.host_adapters`)."""
        from .host_adapters import bitserial_vectors

        return bitserial_vectors(self, rng, count)

    def throughput_unit(self) -> str:
        return f"MAC/cycle at {self.wbits_max}-bit weights"
