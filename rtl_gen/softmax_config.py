"""Design-point parameters of the streaming softmax unit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.golden_models import softmax as golden
from lowbit.golden_models.fixedpoint import QFormat

from .config import DesignConfig
from .params import REQUIRED, boolean, choice, integer, qformat

MAX_MODES = ("buffer", "online")
#: random rows ``metrics()`` measures (seed 1)
SOFTMAX_ROWS = 64


@dataclass(frozen=True)
class SoftmaxConfig(DesignConfig):
    """``params`` of ``family: softmax``: declared on the fields below (``lowbit params
    softmax`` lists them). ``max_mode``: buffer (row buffer: max pass, exp/sum pass, output
    pass) or online (one input pass with a running max; the partial sum is rescaled by shifts
    as the max rises)."""

    family = "softmax"
    generator = "lowbit.rtl_gen.softmax:SoftmaxUnit"
    bench = "lowbit.testbenches.tb_softmax"
    golden_module = "lowbit.golden_models.softmax"
    approximator = True

    input: QFormat = qformat(REQUIRED, "score format", signed=True, max_width=16)
    output: QFormat = qformat("UQ0.8", "probability format (at most 2 integer bits)",
                              signed=False, max_width=16)
    n_max: int = integer(2, 1024, 64, "longest row; rows of any length 1..n_max at run time")
    max_mode: str = choice(MAX_MODES, "buffer", "row maximum from a row buffer or online (running max)")
    mask: bool = boolean(False, "adds a `mask` bit to every input beat (masked: output 0, not counted)")
    exp_order: int = integer(0, 2, 2, "degree of the exp2-fraction polynomial (0: a table)")
    exp_segments: int = integer(2, 1024, 16, "segments of the fraction, a power of two")
    guard_bits: int = integer(1, 8, 3, "extra fraction bits of every intermediate")

    def check(self) -> None:
        out_fmt, segments = self.output, self.exp_segments
        if out_fmt.int_bits > 2:
            raise self.error("output", f"{out_fmt} has {out_fmt.int_bits} integer bits; a probability "
                                       f"needs at most 1 (UQ0.x or UQ1.x; 2 allowed)")
        if out_fmt.frac_bits + self.guard_bits < 2:
            # the reciprocal's numerator 2**numerator_log2 must reach its QB quotient bits
            raise self.error("guard_bits", f"{self.guard_bits} with {out_fmt} leaves "
                                           f"{out_fmt.frac_bits + self.guard_bits} exponent fraction "
                                           "bits (output fraction + guard_bits); the reciprocal "
                                           "needs at least 2")
        if segments & (segments - 1):
            raise self.error("exp_segments", f"{segments} is not a power of two")
        if segments > 1 << (out_fmt.frac_bits + self.guard_bits):
            raise self.error("exp_segments", f"{segments} segments exceed the "
                                             f"{1 << (out_fmt.frac_bits + self.guard_bits)} exponent "
                                             f"fraction codes (output fraction + guard_bits)")

    def host_vectors(self, rng, count: int) -> list:
        """Host-adapter stimulus and golden results per stream (:mod:`rtl_gen.host_adapters`)."""
        from .host_adapters import softmax_vectors

        return softmax_vectors(self, rng, count)

    def throughput_unit(self) -> str:
        return "probabilities/cycle (rows >= row_overhead)"

    def metrics(self) -> dict:
        """Error of the golden model (= the RTL) against the float softmax of the quantised
        inputs, over random rows of random length (seed 1), and the worst row-sum error."""
        rng = np.random.default_rng(1)
        fmt = self.input
        rows = [rng.integers(fmt.min_int, fmt.max_int + 1, int(rng.integers(1, self.n_max + 1)))
                for _ in range(SOFTMAX_ROWS)]
        outs = golden.model(self, rows)
        metrics = [golden.row_metrics(self, x, y) for x, y in zip(rows, outs)]
        return {"max_err_lsb": round(max(m["max_err"] for m in metrics), 4),
                "mean_err_lsb": round(float(np.mean([m["mean_err"] for m in metrics])), 5),
                "max_row_sum_err_lsb": max(abs(m["sum_err"]) for m in metrics),
                "accuracy_inputs": f"{SOFTMAX_ROWS} random rows (seed 1)"}
