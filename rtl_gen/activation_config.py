"""Design-point parameters of the activation unit (GELU / SiLU approximator)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.golden_models import activation as golden
from lowbit.golden_models.activation import FUNCTIONS, METHODS, TABLE_MAX_INPUT_BITS
from lowbit.golden_models.fixedpoint import QFormat

from .config import DesignConfig
from .params import REQUIRED, choice, integer, qformat

#: inputs up to this width are measured exhaustively by ``metrics()``
EXHAUSTIVE_MAX_BITS = 16
_POLY = ("method", ("poly",))


@dataclass(frozen=True)
class ActivationConfig(DesignConfig):
    """``params`` of ``family: activation``: declared on the fields below
    (``lowbit params activation`` lists them)."""

    family = "activation"
    generator = "lowbit.rtl_gen.activation:ActivationUnit"
    bench = "lowbit.testbenches.tb_activation"
    golden_module = "lowbit.golden_models.activation"
    approximator = True
    package_throughput = "one beat per cycle per stream when neither side stalls"

    function: str = choice(FUNCTIONS, REQUIRED, "the function approximated")
    method: str = choice(METHODS, "poly", "piecewise polynomial fit, I-BERT's i-GELU, or a full table")
    input: QFormat = qformat(REQUIRED, "input format", signed=True, max_width=24)
    output: QFormat = qformat(None, "output format", signed=True, max_width=24, default_from="input")
    order: int = integer(1, 3, 2, "polynomial degree per segment (1: piecewise linear)", when=_POLY)
    segments: int = integer(2, 1024, 32, "the most segments the fitter may use", when=_POLY)
    guard_bits: int = integer(0, 12, 4, "extra fractional bits of the Horner evaluation", when=_POLY)

    def check(self) -> None:
        if self.method == "ibert" and self.function != "gelu":
            raise self.error("method", "'ibert' is I-BERT's i-GELU and computes GELU only; "
                                       "for silu use poly or table")
        if self.method == "table" and self.input.width > TABLE_MAX_INPUT_BITS:
            raise self.error("method", f"'table' needs an input of at most {TABLE_MAX_INPUT_BITS} bits "
                                       f"(input {self.input} is {self.input.width}); use poly")
        if self.method == "poly" and self.input.width > 20:
            raise self.error("input", f"{self.input} is {self.input.width} bits; the poly fitter allows at most 20")

    def throughput_unit(self) -> str:
        return "results/cycle"

    def metrics(self) -> dict:
        """Error of the golden model (= the RTL) in output LSBs against the correctly rounded
        function, over every input code (or 65536 random ones), and the coefficient bits."""
        exhaustive = self.input.width <= EXHAUSTIVE_MAX_BITS
        if exhaustive:
            codes = self.input.all_values()
        else:
            codes = np.random.default_rng(1).integers(self.input.min_int, self.input.max_int + 1, 1 << 16)
        out = golden.model(self, codes)
        ref = golden.correctly_rounded(self.function, self.input, self.output, codes)
        worst, mean = golden.error_lsb(out, ref)
        return {"max_err_lsb": worst, "mean_err_lsb": round(mean, 5),
                "cost_bits": golden.coefficient_bits(self),
                "accuracy_inputs": "every input code" if exhaustive else "65536 random"}

    def host_vectors(self, rng, count: int) -> list:
        """Host-adapter stimulus: corners plus ``count`` random codes (``rng``: a
        ``random.Random``), in vectors of random length, as ``[(input beats, expected output
        beats)]`` with beats as field dicts."""
        fmt = self.input
        corners = [fmt.min_int, fmt.min_int + 1, -1, 0, 1, fmt.max_int - 1, fmt.max_int]
        codes = corners + [rng.randint(fmt.min_int, fmt.max_int) for _ in range(count)]
        expected = golden.model(self, np.array(codes, dtype=np.int64)).tolist()
        vectors, start = [], 0
        for k in range(len(codes)):   # random framing: vectors of 1..16 samples
            if k == len(codes) - 1 or rng.random() < 0.15:
                vectors.append(([{"data": c, "last": int(j == k)} for j, c in
                                 enumerate(codes[start:k + 1], start)],
                                [{"data": y, "last": int(j == k)} for j, y in
                                 enumerate(expected[start:k + 1], start)]))
                start = k + 1
        return vectors
