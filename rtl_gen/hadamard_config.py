"""Design-point parameters of the Hadamard rotation unit (streaming Walsh-Hadamard transform)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.golden_models import hadamard as golden

from .config import DesignConfig
from .params import choice, integer

#: the vector lengths the unit is built for
LENGTHS = tuple(1 << k for k in range(2, 13))


@dataclass(frozen=True)
class HadamardConfig(DesignConfig):
    """``params`` of ``family: hadamard``: declared on the fields below (``lowbit params
    hadamard`` lists them). The unit computes ``round_half_even(H_N x / 2**shift)`` over
    vectors of ``length`` signed ``width``-bit integers (``golden_models.hadamard``)."""

    family = "hadamard"
    generator = "lowbit.rtl_gen.hadamard:HadamardUnit"
    bench = "lowbit.testbenches.tb_hadamard"
    golden_module = "lowbit.golden_models.hadamard"
    package_throughput = ("one vector element per cycle when neither side stalls (vectors "
                          "back to back; the first result of a vector leaves after its last input)")

    length: int = choice(LENGTHS, 64, "vector length N (a power of two); vectors are N beats, the last one marked `last`")
    width: int = integer(2, 24, 8, "signed input width")
    shift: int = integer(0, 12, 0, "normalisation: results divided by 2**shift, rounded half to even (at most log2 N)")

    @property
    def log2_length(self) -> int:
        return self.length.bit_length() - 1

    @property
    def out_width(self) -> int:
        """Signed result width: exact, ``width + log2 N - shift`` (+1 when shift = log2 N)."""
        return golden.output_width(self.width, self.log2_length, self.shift)

    def check(self) -> None:
        if self.shift > self.log2_length:
            raise self.error("shift", f"{self.shift} is more than log2 of the length {self.length} "
                                      f"({self.log2_length}); allowed 0..{self.log2_length}")
        if self.width + self.log2_length > 32:
            raise self.error("width", f"{self.width} bits grow by {self.log2_length} to "
                                      f"{self.width + self.log2_length}; at most 32 (narrow width or length)")

    def throughput_unit(self) -> str:
        return "vector elements/cycle"

    def metrics(self) -> dict:
        """Exactness against the float reference on random vectors (seed 1), the growth and
        the storage of the delay lines (bits)."""
        rng = np.random.default_rng(1)
        lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        x = rng.integers(lo, hi + 1, (16, self.length))
        err = np.abs(golden.model(self, x) - golden.wht_float(x, self.shift))
        storage = sum((self.length >> (k + 1)) * w for k, w in
                      enumerate(golden.stage_widths(self.width, self.log2_length)))
        return {"max_err_lsb": round(float(err.max()), 4), "growth_bits": self.log2_length,
                "out_width": self.out_width, "delay_line_bits": storage,
                "accuracy_inputs": "16 random vectors (seed 1)"}

    def formal_spec(self, component) -> dict:
        """What a stream proof checks (``testbenches.formal_families``): beats conserved
        ``i`` -> ``o``, bounded by the unit's exact capacity (tight), on a length-8 variant
        (a memory delay line and two register stages); k-induction closes with
        ``component.invariant``; depth: fill to capacity and drain."""
        return {"counts": [("beats", {"i": 1, "o": 1}, component.capacity, True)],
                "depth": 2 * component.capacity + 6, "invariant": component.invariant,
                "small": {"length": 8, "width": 3, "shift": min(self.shift, 3)}}

    def host_vectors(self, rng, count: int) -> list:
        """Host-adapter stimulus: corner vectors (all max, all min, alternating, one impulse)
        plus random ones, ``count`` elements or more in whole vectors (``rng``: a
        ``random.Random``), as ``[(input beats, expected output beats)]``, beats as field dicts."""
        n = self.length
        lo, hi = -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        vectors = [[hi] * n, [lo] * n, [hi, lo] * (n // 2), [lo] + [0] * (n - 1)]
        while len(vectors) * n < count + 4 * n:
            vectors.append([rng.randint(lo, hi) for _ in range(n)])
        out = golden.model(self, np.array(vectors, dtype=np.int64)).tolist()
        return [([{"data": v, "last": int(j == n - 1)} for j, v in enumerate(x)],
                 [{"data": v, "last": int(j == n - 1)} for j, v in enumerate(y)])
                for x, y in zip(vectors, out)]
