"""Design-point parameters of the multiplier-based GEMV baseline (``family: gemv_mult``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .config import DesignConfig
from .lutgemv_config import GEMV_PARAMS, check_gemv_common
from .params import integer


@dataclass(frozen=True)
class GemvMultConfig(DesignConfig):
    """``params`` of ``family: gemv_mult``: declared on the fields below (``lowbit params
    gemv_mult`` lists them). Same ports and golden model as ``lutgemv``; peak (and steady)
    throughput ``rows * group * batch`` MACs per cycle at every precision."""

    family = "gemv_mult"
    generator = "lowbit.rtl_gen.gemv_mult:GemvMult"
    bench = "lowbit.testbenches.tb_lutgemv"
    golden_module = "lowbit.golden_models.lutgemv"
    #: no ternary tables (the golden model asks both GEMV families)
    ternary: ClassVar[bool] = False

    group: int = integer(1, 8, 4, "activations per beat (g)")
    rows: int = GEMV_PARAMS["rows"].field()
    wbits: int = integer(1, 8, 4, "weight code width; run-time precisions up to it use the same fields")
    act_bits: int = GEMV_PARAMS["act_bits"].field()
    k_max: int = GEMV_PARAMS["k_max"].field()
    scale_bits: int = GEMV_PARAMS["scale_bits"].field()
    batch: int = GEMV_PARAMS["batch"].field()
    exp_bits: int = GEMV_PARAMS["exp_bits"].field()
    qgroup: int = GEMV_PARAMS["qgroup"].field()
    qscale_bits: int = GEMV_PARAMS["qscale_bits"].field()

    def check(self) -> None:
        check_gemv_common(self)

    @property
    def span(self) -> int:
        """Activations per ``x`` beat (``group``)."""
        return self.group

    @property
    def bits_max(self) -> int:
        return self.wbits

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.rows * self.group * self.batch

    def throughput_per_cycle(self) -> float:
        return float(self.peak_macs_per_cycle)

    def host_vectors(self, rng, count: int) -> list:
        """Host-adapter stimulus and golden results per stream (:mod:`rtl_gen.host_adapters`)."""
        from .host_adapters import gemv_vectors

        return gemv_vectors(self, rng, count)

    def throughput_unit(self) -> str:
        return f"MAC/cycle at {self.wbits}-bit weights"
