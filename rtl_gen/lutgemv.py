"""LUT-based GEMV unit (T-MAC / LUT Tensor Core style): tables of signed activation sums,
indexed by weight bit-plane slices, ``rows`` output rows per lookup.

Algorithm (bit for bit ``golden_models.lutgemv.lut_gemv``)
---------------------------------------------------------
``y = (Q - z) @ x`` for unsigned weight codes ``Q`` of run-time precision ``bits``
(1..``bits_max``) and run-time zero point ``z`` (signed weights: ``z = 2**(bits-1)``).
T-MAC's ±1 encoding of bit-planes: for each group ``j`` of ``g`` activations the table is
``T_j[idx] = sum_l (bit_l(idx) ? +a_l : -a_l)``; per row
``acc = sum_i sum_j T_j[idx_ij] << i`` and ``y = (acc + (2**bits - 1 - 2z) * sum(x)) >> 1``
(always even before the shift: exact, no rounding, no saturation; the accumulator is sized
for ``bits_max``, ``act_bits`` and ``k_max``, so it cannot overflow).

Hardware
--------
* **Table precompute** from the ``x`` stream, one group per cycle: a ``g``-stage adder
  pipeline (one carry chain per stage) builds the table with shared partial sums
  (``a_{g-1} ± a_{g-2} ± ... ± a_0``: ``2 + 4 + ... `` adders), and writes one word per group
  (``entries x entry_width`` bits) into a two-vector table memory (block RAM): the table of
  vector ``v+1`` is built while vector ``v`` is looked up (double buffer).
* ``symmetric: true`` stores the half table with ``a_{g-1}`` positive; a row whose index has
  bit ``g-1`` clear reads entry ``~idx`` and negates it (``~e`` into its adder, ``+1`` as the
  adder's carry-in), so symmetrisation costs no extra carry chain.
* ``lookups: L``: a beat covers ``L * g`` activations (L tables side by side in one stored
  word, built by L table pipelines); each row looks up its L tables in the same cycle and a
  registered adder tree (``ceil(log2 L)`` levels, one carry chain per adder, the negations'
  +1 folded into the adders' carry-ins) sums them before the row accumulator, so the
  accumulator, the holding register and the drain serve ``L * g`` MACs per cycle instead of
  ``g``.
* **Elongated tiling**: every weight beat holds plane ``i`` of ``g`` weights for ``rows``
  rows; all ``rows`` rows index the same table word in the same cycle (each a
  ``entries:1`` multiplexer and one accumulator). The table word is shifted by the plane
  number once, shared by all rows, so the rows never shift.
* ``batch: B`` (SAIL): B table pipelines fill a B-times wider table word; each row's index
  (and its symmetric-half decode) is computed once and selects in all B tables, B
  accumulators per row (``B * rows * g / bits`` MACs per cycle). ``exp_bits``: each group's
  lanes enter the table build shifted left by the beat's ``shift`` (wider entries, exact).
  ``scale_bits``: per-row output scales after the drain (``rtl_gen.gemv_common``).
* The offset ``(2**bits - 1 - 2z) * sum(x)`` is one product per vector (B in parallel),
  made serially (shift-add over the ``bits_max + 2`` bits of the coefficient) before the pass starts and
  added once per result as it leaves, followed by the exact ``>> 1``.

Ternary mode (``ternary: true``, g = 3): the table holds the 14 sums of
``golden_models.lutgemv.TERNARY_TRIPLES`` (built in two adder stages); a weight beat holds
``rows`` fields of 5 bits (4-bit index, sign in bit 4) for one group, one beat per group per
tile (no planes: ``3 * rows`` MACs per cycle); the row adds ``±T[index]`` and the result is
the accumulator itself (no offset; ``cmd`` is consumed, its fields ignored).

Group scales (``qgroup`` G, ``rtl_gen.gemv_common``): a tile's planes are swept inside each
quantisation group (beats ordered tile, group ``s``, plane, table group ``j``), the row
accumulators hold one group's ``acc_s``, and the shared group epilogue makes
``v = (acc_s + (2**bits - 1 - 2Z) * sum(x_s)) >> 1`` and ``total += S * v`` (no per-pass offset
product then).

Weight stream ``w``: ``rows * g`` bits per beat, bit ``r*g + l`` = plane ``i`` of the code of
row ``r`` of the tile, column ``j*g + l``; beats ordered by row tile, then plane
``bits-1 .. 0``, then group ``j``; ``last`` on the pass's final beat. With ``lookups`` L, read
``g`` as ``span = L * g`` here and in the timing below (ternary: ``rows * L`` fields of 5 bits,
field ``r*L + j``). Other ports: ``rtl_gen.gemv_common``.

Timing
------
Steady state: one weight beat per cycle, i.e. ``rows * g`` weight bits per cycle,
``rows * g / bits`` MACs per cycle; a pass of an ``M x K`` matrix takes
``(M/rows) * bits * (K/g)`` cycles plus ``restart_cycles`` between passes (offset product and
pipeline drain; hidden only partly). Table build: ``K/g`` cycles per vector, hidden behind
the previous pass when that pass is at least as long. Results leave one per cycle, so tiles
of ``bits * K/g >= rows`` cycles never wait for the drain. Latency (``self.latency``): a
tile's final weight beat to its first result, ``7 + ceil(log2 L)`` cycles. Control is
registered as ``rtl_gen.gemv_common`` states (the read pipeline's enable is a register
decided a cycle ahead; ports behind skid buffers); the store side's sum of the L tables'
all-plus entries is a registered adder tree; each Horner step of the offset product is one
carry chain from registers.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Mux, Signal, signed

from lowbit.golden_models import lutgemv as golden

from .gemv_common import GemvStreamUnit
from .lutgemv_config import LutGemvConfig


class LutGemv(GemvStreamUnit):
    """LUT-GEMV for one ``LutGemvConfig`` (see the module docstring)."""

    def __init__(self, config: LutGemvConfig):
        assert isinstance(config, LutGemvConfig)
        self.ternary = config.ternary
        self.lookups = config.lookups
        self.tree_levels = (config.lookups - 1).bit_length()
        self.row_stages = 2 + self.tree_levels  # table shift, row select, lookup tree
        self.weight_beat_bits = config.rows * (5 * config.lookups if config.ternary else config.span)
        self.entry_w = golden.entry_width(config)
        self.shifted_w = self.entry_w + config.bits_max - 1
        self.coef_w = config.bits_max + 2
        self.restart_cycles = self.coef_w + 4
        super().__init__(config)

    def planes_of(self, bits):
        return Const(1, 2) if self.ternary else bits

    def _store(self, m, lanes):
        """The beat's ``lookups`` tables side by side (table ``j`` from lanes ``j*g..j*g+g-1``)."""
        g = self.config.group
        built = [self._store_one(m, lanes[j * g:(j + 1) * g]) for j in range(self.lookups)]
        word = Cat(*(b[0] for b in built))
        parts, depth = [b[1] for b in built], built[0][2]
        if parts[0] is None:
            return word, None, depth, depth
        level = 0
        while len(parts) > 1:  # a registered adder tree: one carry chain per stage
            level += 1
            parts = [self._sreg(m, parts[k] + parts[k + 1], f"sum{k // 2}_build{depth + level}")
                     if k + 1 < len(parts) else self._sreg(m, parts[k], f"sum{k // 2}_build{depth + level}")
                     for k in range(0, len(parts), 2)]
        return word, parts[0], depth, depth + level

    def _store_one(self, m, lanes):
        g, e_w = self.config.group, self.entry_w
        if self.ternary:
            return self._store_ternary(m, lanes)
        top = 1 << (g - 1)
        lanes = [self._sreg(m, a, f"lane{l}_build0") for l, a in enumerate(lanes)]
        table = {top: lanes[-1]}
        if not self.config.symmetric:
            table[0] = self._sreg(m, -lanes[-1], "neg_top_build0")
            table[top] = self._sreg(m, table[top], "top_build0")
            lanes = [self._sreg(m, a, f"lane{l}_build0b") for l, a in enumerate(lanes)]
        stage = 0
        for lane in range(g - 2, -1, -1):  # one adder level (one carry chain) per stage
            stage += 1
            a = lanes[lane]
            table = {k: self._sreg(m, v, f"t{k}_build{stage}") for idx, old in table.items()
                     for k, v in ((idx | 1 << lane, old + a), (idx, old - a))}
            lanes = [self._sreg(m, a, f"lane{l}_build{stage}") for l, a in enumerate(lanes)]
        first = top if self.config.symmetric else 0
        entries = [Signal(signed(e_w), name=f"entry{idx}") for idx in range(first, 1 << g)]
        m.d.comb += [entry.eq(table[idx]) for entry, idx in zip(entries, range(first, 1 << g))]
        word = Cat(*entries)
        depth = g + (0 if self.config.symmetric else 1)
        return word, table[(1 << g) - 1], depth

    def _store_ternary(self, m, lanes):
        """Two adder stages: lanes 2 and 1, then lane 0, for each of the 14 triples."""
        lanes = [self._sreg(m, a, f"lane{l}_build0") for l, a in enumerate(lanes)]
        triples = golden.TERNARY_TRIPLES

        def signed_sum(terms):
            value = Const(0, signed(2))
            for t, a in terms:
                value = value + a if t > 0 else value - a if t < 0 else value
            return value

        pairs = {(t1, t2) for _, t1, t2 in triples}
        pair = {p: self._sreg(m, signed_sum(zip(p, lanes[1:])), f"p{p[0] + 1}{p[1] + 1}_build1")
                for p in sorted(pairs)}
        a0 = self._sreg(m, lanes[0], "lane0_build1")
        entries = []
        for k, (t0, t1, t2) in enumerate(triples):
            entry = Signal(signed(self.entry_w), name=f"entry{k}")
            m.d.sync += entry.eq(signed_sum([(1, pair[(t1, t2)]), (t0, a0)]))
            entries.append(entry)
        return Cat(*entries), None, 3

    def _rows(self, m, pipe, table_words, weights, plane):
        cfg, e_w, L = self.config, self.entry_w, self.lookups
        g, span = cfg.group, cfg.span
        count = len(table_words[0]) // e_w // L  # entries per table
        pad = [Const(0, signed(self.shifted_w))] * ((1 << (count - 1).bit_length()) - count)
        s = pipe.stage("shift", weights=weights, **{  # the plane shift, shared by all rows
            f"t{v}_{j}_{k}": (word[(j * count + k) * e_w:(j * count + k + 1) * e_w].as_signed()
                              << plane)[:self.shifted_w].as_signed()
            for v, word in enumerate(table_words) for j in range(L) for k in range(count)})
        tables = [[Array([getattr(s, f"t{v}_{j}_{k}") for k in range(count)] + pad) for j in range(L)]
                  for v in range(len(table_words))]
        picks = {}
        for r in range(cfg.rows):  # one index per row and lookup, used in every batch vector's table
            for j in range(L):
                if self.ternary:
                    f = 5 * (r * L + j)
                    top, sub = ~s.weights[f + 4], s.weights[f:f + 4]  # sign set: negate
                elif cfg.symmetric:
                    idx = s.weights[r * span + j * g:r * span + (j + 1) * g]
                    top = idx[g - 1]
                    sub = Mux(top, idx[:g - 1], ~idx[:g - 1])
                else:
                    top, sub = Const(1, 1), s.weights[r * span + j * g:r * span + (j + 1) * g]
                for v, per_vector in enumerate(tables):
                    chosen = per_vector[j][sub]
                    picks[f"v{v}_{r}_{j}"], picks[f"n{v}_{r}_{j}"] = Mux(top, chosen, ~chosen), ~top
        s = pipe.stage("select", **picks)
        terms = {(v, r): [(getattr(s, f"v{v}_{r}_{j}"), getattr(s, f"n{v}_{r}_{j}")) for j in range(L)]
                 for v in range(len(tables)) for r in range(cfg.rows)}
        for level in range(self.tree_levels):  # a + b + carry_a per adder (one carry chain); carry_b moves up
            fields = {}
            for (v, r), t in terms.items():
                for k in range((len(t) + 1) // 2):
                    if 2 * k + 1 < len(t):
                        (a, ca), (b, cb) = t[2 * k], t[2 * k + 1]
                        total = (Cat(Const(1, 1), a).as_signed() + Cat(ca, b).as_signed())[1:].as_signed()
                        fields[f"s{v}_{r}_{k}"], fields[f"c{v}_{r}_{k}"] = total, cb
                    else:
                        fields[f"s{v}_{r}_{k}"], fields[f"c{v}_{r}_{k}"] = t[2 * k]
            s = pipe.stage(f"tree{level}", **fields)
            terms = {(v, r): [(getattr(s, f"s{v}_{r}_{k}"), getattr(s, f"c{v}_{r}_{k}"))
                              for k in range((len(t) + 1) // 2)] for (v, r), t in terms.items()}
        return [[terms[v, r][0] for r in range(cfg.rows)] for v in range(len(tables))]

    group_shift = 1

    def _group_coef(self, bits, zero):
        """``2**bits - 1 - 2Z`` (signed): the group's ±1-encoding and zero-point correction."""
        cw = self.coef_w
        return ((Const(1, cw) << bits) - 1 - (zero << 1))[:cw].as_signed()

    # offset_v = (2**bits - 1 - 2z) * sum(x_v), Horner over the coefficient's bits (MSB
    # negative); the addend of each step is a register chosen a step ahead, so each step is
    # one carry chain from registers
    def _prepare(self, m, bits, zero, sum_x):
        if self.ternary or self.qgroup:
            return Const(1)
        cw = self.coef_w
        if not hasattr(self, "offset"):
            self.step = Signal(range(cw + 2))
            self.coef = Signal(signed(cw))
            self.addend = [Signal.like(sx, name=f"offset_addend{v}") for v, sx in enumerate(sum_x)]
            self.offset, self.pass_offset, self.hold_offset = (
                [Signal(signed(self.acc_w), name=f"{n}{v}") for v in range(len(sum_x))]
                for n in ("offset", "pass_offset", "hold_offset"))
        step, coef = self.step, self.coef
        with m.If(step == 0):
            first = self._group_coef(bits, zero)
            m.d.sync += [coef.eq(first), step.eq(1)]
            m.d.sync += [a.eq(Mux(first[-1], -sx, 0)) for a, sx in zip(self.addend, sum_x)]
            m.d.sync += [o.eq(0) for o in self.offset]
        with m.Elif(step <= cw):
            m.d.sync += [coef.eq(coef << 1), step.eq(step + 1)]
            for offset, addend, sx in zip(self.offset, self.addend, sum_x):
                m.d.sync += [offset.eq((offset << 1) + addend), addend.eq(Mux(coef[-2], sx, 0))]
        return step == cw + 1

    def _commit(self, m):
        if self.ternary or self.qgroup:
            return
        m.d.sync += [p.eq(o) for p, o in zip(self.pass_offset, self.offset)]
        m.d.sync += self.step.eq(0)

    def _capture(self, m):
        if self.ternary or self.qgroup:
            return
        m.d.sync += [h.eq(p) for h, p in zip(self.hold_offset, self.pass_offset)]

    def _finish(self, m, value, vector):
        if self.ternary or self.qgroup:
            return value
        return ((value + self.hold_offset[vector]) >> 1)[:self.acc_w].as_signed()
