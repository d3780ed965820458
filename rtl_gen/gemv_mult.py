"""Multiplier-based GEMV baseline: dequantised weights times activations, adder trees.

The comparison point for ``rtl_gen.lutgemv``: the same ports (``rtl_gen.gemv_common``), the
same golden function ``y = (Q - z) @ x`` (exact), the same weight bits per beat when built
with ``rows * wbits`` equal to LUT-GEMV's ``rows``, and so the same peak MACs per cycle at
that precision.

Weight stream ``w``: ``rows * g`` codes of ``wbits`` bits per beat, field ``r*g + l`` (from
the low bits) = code of row ``r`` of the tile, column ``j*g + l``; beats ordered by row tile,
then group ``j``; ``last`` on the pass's final beat. The run-time ``bits`` of ``cmd`` only
bounds the codes (``< 2**bits``); throughput does not depend on it.

Datapath per beat, one carry chain or one multiplier per stage: dequantise
``d = q - z`` (``wbits + 1`` bits signed), multiply ``d * a`` (``rows * g`` multipliers,
fabric or DSP as the flow decides), an adder tree of ``ceil(log2 g)`` stages per row, and the
row accumulator. The activation store keeps two vectors (``g * act_bits`` bits per group).

Group scales (``qgroup`` G): the codes enter the multipliers as they are (``d = q``) and the
row accumulator holds ``Q_s @ x_s`` of one quantisation group; the shared group epilogue
(``rtl_gen.gemv_common``) makes ``v = acc - Z * sum(x_s)`` and ``total += S * v`` per row, so
the baseline pays the same epilogue as LUT-GEMV.

Timing: one beat per cycle (``rows * g`` MACs per cycle); a pass of ``M x K`` takes
``(M/rows) * (K/g)`` cycles plus ``restart_cycles`` between passes. Latency
(``self.latency``): a tile's final weight beat to its first result,
``7 + ceil(log2 g)`` cycles.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const

from .gemv_common import GemvStreamUnit
from .gemv_mult_config import GemvMultConfig


class GemvMult(GemvStreamUnit):
    """Multiplier GEMV for one ``GemvMultConfig`` (see the module docstring)."""

    def __init__(self, config: GemvMultConfig):
        assert isinstance(config, GemvMultConfig)
        self.weight_beat_bits = config.rows * config.group * config.wbits
        self.tree_levels = (config.group - 1).bit_length()
        self.row_stages = 2 + self.tree_levels
        self.restart_cycles = self.row_stages + 5
        super().__init__(config)

    def planes_of(self, bits):
        return Const(1, 2)

    def _store(self, m, lanes):
        total = self._sreg(m, sum(lanes), "lane_sum_store") if self.qgroup else None
        return self._sreg(m, Cat(*lanes), "lanes_store"), total, 1, 1

    group_shift = 0

    def _group_coef(self, bits, zero):
        return -zero.as_unsigned()

    def _rows(self, m, pipe, stored, weights, plane):
        cfg = self.config
        g, a_w, w_w, batch = cfg.group, self.lane_w, cfg.wbits, len(stored)
        lanes = [(r, l) for r in range(cfg.rows) for l in range(g)]
        prods = [(v, r, l) for v in range(batch) for r, l in lanes]
        # with group zero points the codes enter as they are (the epilogue takes Z * sum(x_s))
        zero = Const(0, 1) if self.qgroup else Cat(self.zero, Const(0, 1)).as_signed()
        s = pipe.stage("dequantise", **{
            f"a{v}_{l}": word[l * a_w:(l + 1) * a_w].as_signed()
            for v, word in enumerate(stored) for l in range(g)}, **{
            f"d{r}_{l}": Cat(weights[(r * g + l) * w_w:(r * g + l + 1) * w_w], Const(0, 1)).as_signed() - zero
            for r, l in lanes})  # one dequantised weight, shared by the batch
        s = pipe.stage("multiply", **{f"p{v}_{r}_{l}": getattr(s, f"d{r}_{l}") * getattr(s, f"a{v}_{l}")
                                      for v, r, l in prods})
        terms = {(v, r): [getattr(s, f"p{v}_{r}_{l}") for l in range(g)]
                 for v in range(batch) for r in range(cfg.rows)}
        for level in range(self.tree_levels):
            pairs = {f"s{v}_{r}_{k}": t[2 * k] + t[2 * k + 1] if 2 * k + 1 < len(t) else t[2 * k]
                     for (v, r), t in terms.items() for k in range((len(t) + 1) // 2)}
            s = pipe.stage(f"tree{level}", **pairs)
            terms = {(v, r): [getattr(s, f"s{v}_{r}_{k}") for k in range((len(t) + 1) // 2)]
                     for (v, r), t in terms.items()}
        return [[(terms[v, r][0], Const(0, 1)) for r in range(cfg.rows)] for v in range(batch)]
