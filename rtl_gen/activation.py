"""Streaming fixed-point activation unit: GELU / SiLU, fully pipelined.

Algorithm (one of three, chosen by ``ActivationConfig.method``; the arithmetic is written
out in ``golden_models.activation``, which this generator matches bit for bit):

* ``poly``: ``f(x) = relu(x) - g(|x|)``; ``g`` by fitted piecewise polynomials of degree
  ``order`` over uniform segments, Horner's rule in integers, one round-half-even and one
  saturation at the end. The coefficient ROM (``segments + 1`` rows of ``sum(widths)``
  bits; the extra row is all zeros and is read for ``|x|`` beyond the fitted range, where
  ``g = 0``) is read in one cycle by ``FreePipeline.rom`` (LUTs, registered, up to 32
  rows; a block RAM beyond).
* ``ibert``: I-BERT's integer i-GELU (second-order erf polynomial) plus a dyadic output
  rescale.
* ``table``: a ROM holding the correctly rounded function for every input code.

Interface
---------
``i``: ``In(stream.Signature(StructLayout({"data": signed(in_width), "last": 1})))``
``o``: ``Out(stream.Signature(StructLayout({"data": signed(out_width), "last": 1})))``
``last`` travels with its sample unchanged (frames pass through).

Timing
------
Structure (``rtl_gen.pipeline``; ``poly`` and ``ibert``): the datapath is a
``FreePipeline`` (registers load every cycle, no clock enable, a valid bit beside each
stage) that lands in a ``CreditQueue`` of ``latency + 2`` credits with a registered
``admit``: ``i.ready`` is a flip-flop, set while the beats in flight and one more leave a
credit free without counting a delivery, so neither ``o.ready`` nor ``i.valid`` reaches
it; ``o.ready`` reaches only the credit flags and the queue's two output registers,
never the datapath; ``o.valid`` and ``o.payload`` are registers. Capacity:
``latency + 2`` beats (``self.capacity``; the two extra credits cover the beat accepted
while the decision is registered and the one delivered before its credit returns).
Throughput: one sample per cycle while ``o`` is ready; backpressure stops the input, no
beat is lost or repeated.

Each adder is split by ``FreePipeline.add`` into ``A(w) = ceil(w / C)`` stages of at most
``C`` bits, the carries registered as sum bits (no carry chain leaves a stage but as a
sum bit packed with its flip-flop); ``C = 8`` (``ibert``: 24; ``adder_chunk``). Each multiply has its operands and its product registered
(DSP input/output registers), or, for a multiplier of at most 3 bits, registered partial
products and split adds; each ROM address and each ROM word is registered. Latency
(``self.latency``, input accepted to output valid; ``stage_widths`` lists the ``w``):

* ``poly``: ``1 (in) + A(w_abs) + 3 (ROM address, ROM read, ROM register)
  + sum over the order Horner steps of (M + A(w_add_k)) + A(w_sub) (relu - g)
  + A(w_round) + 3 (queue; the saturation is written into it)``,
  with ``w_abs`` the input width minus 1, ``w_add_k`` the width of ``c_k + (p >> seg_log2)``,
  ``M`` the multiply's stages (1: a registered DSP product; when the multiplier ``u``
  has at most 3 bits, in fabric: 1 for the partial products + ``(len(u) - 1) A(w_p)``),
  ``w_sub`` of ``(relu << s) - g``, ``w_round = w_sub + 2`` (widths from the
  coefficient ranges, not the worst case of the shapes).
* ``ibert``: ``1 + A(w_abs) + 1 (clip) + A(w_b) + 1 (square) + A(w_c) + 1 (erf sign)
  + A(w_one) + 1 (times x) + 1 (rescale) + A(w_round) + 3``.
* ``table``: 1 cycle, capacity 1 (no ``FreePipeline`` or queue: the unit is one ROM read
  port whose enable is the stall ``~o.valid | o.ready``, its output register the output,
  so the stall drives three enables, nothing wide; one LUT from ``o`` to ``i.ready``).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.activation import fit_poly, ibert_constants, table_values

from .activation_config import ActivationConfig
from .fixed import StallPipeline, sample_layout, saturate
from .pipeline import CreditQueue, FreePipeline


def adder_chunk(config: ActivationConfig) -> int:
    """Longest carry chain per stage (``C`` in the module docstring). ``ibert`` (the
    reference method, wide products and no timing goal) splits only beyond 24 bits, which
    keeps its latency, and the depth of its formal proof, near the unsplit pipeline's."""
    if config.method == "ibert":
        return 24
    return 8   # 16-bit formats too: 12-bit chains fed by the DSP outputs limited them on UP5K


def pipeline_latency(config: ActivationConfig) -> int:
    """Cycles from an accepted input to its output (see the module docstring)."""
    return ActivationUnit(config).latency


class ActivationUnit(wiring.Component):
    """GELU/SiLU approximator for one ``ActivationConfig`` (see module docstring).

    Attributes: ``latency`` (cycles, input accepted to output valid), ``capacity`` (beats
    the unit holds at most: ``latency + 2``; ``table``: 1), ``stage_widths`` (adder widths
    of the formula).
    """

    def __init__(self, config: ActivationConfig):
        assert isinstance(config, ActivationConfig)
        self.config = config
        self.chunk = adder_chunk(config)
        if config.method == "poly":
            self.table = fit_poly(config.function, config.input, config.output, config.order,
                                  config.segments, config.guard_bits)
        elif config.method == "ibert":
            self.constants = ibert_constants(config.input, config.output)
        super().__init__({
            "i": In(stream.Signature(sample_layout(config.input))),
            "o": Out(stream.Signature(sample_layout(config.output))),
        })
        # count the stages by building the datapath once on a scratch module
        self.stage_widths = {}
        if config.method == "table":
            self.latency = self.capacity = 1
        else:
            pipe = FreePipeline(None)
            self._datapath(pipe, self.i.payload.data, self.i.payload.last)
            self.latency = pipe.stages + CreditQueue.LATENCY
            self.capacity = self.latency + 2  # the queue's credits (registered ``i.ready``)

    def elaborate(self, platform):
        m = Module()
        if self.config.method == "table":
            return self._table_unit(m)
        m.submodules.queue = queue = CreditQueue(sample_layout(self.config.output),
                                                 credits=self.capacity, registered=True)
        m.d.comb += [self.i.ready.eq(queue.admit), queue.accept.eq(self.i.valid & queue.admit)]
        pipe = FreePipeline(m, queue.accept)
        result, last = self._datapath(pipe, self.i.payload.data, self.i.payload.last)
        assert pipe.stages + CreditQueue.LATENCY == self.latency, (pipe.stages, self.latency)
        m.d.comb += [queue.w.valid.eq(pipe.valid), queue.w.payload.data.eq(result),
                     queue.w.payload.last.eq(last)]
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        return m

    def _datapath(self, pipe, x, last):
        build = {"poly": self._poly, "ibert": self._ibert}[self.config.method]
        return build(pipe, x, last)

    # ------------------------------------------------------------------ shared pieces
    def _add(self, pipe, name, a, b, *, width=None, **kwargs):
        """``a + b`` over split stages (``FreePipeline.add``), ``width`` bits (default: the
        full width of the expression); records the width for the docstring."""
        if width is None:
            width = (a + b).shape().width + (1 if kwargs.get("carry_in") else 0)
        self.stage_widths[name] = width
        return pipe.add(name, a, b, width, self.chunk, **kwargs)

    def _input(self, pipe, x, last):
        """The input stage: ``x``, and for the absolute value ``x ^ sign`` and whether
        ``x`` is the most negative code."""
        sign = x[-1]
        return pipe.stage("in", x=x, last=last, sign=sign, is_min=sign & ~x[:-1].any(),
                          flipped=(x ^ Cat(*([sign] * len(x)))).as_unsigned()[:-1])

    def _abs(self, pipe, s, **riders):
        """``|x| = (x ^ s) + s`` (``s`` the sign, both registered by ``_input``) over the
        low ``w - 1`` bits, split like any adder; the top bit is ``x == min`` (so no
        stage ends in a bare carry)."""
        total, r = self._add(pipe, "abs", s.flipped, s.sign, width=len(s.x) - 1, x=s.x,
                             is_min=s.is_min, **riders)
        return Cat(total[:len(s.x) - 1], r.pop("is_min")), r

    @staticmethod
    def _at_least(pipe, x, bound: int, stages: int, name: str):
        """``x >= bound`` (``x`` signed, ``bound`` a constant), registered beside the input
        stage and the ``stages`` stages after it, one LUT level per stage: the input
        stage registers, per 4-bit group of ``x`` offset to unsigned, ``group > bound's``
        and ``group == bound's`` (the lowest group ``>=``; LUT decodes, no carry chain);
        each later stage merges neighbouring groups (``gt_hi | eq_hi & ge_lo``, 3
        inputs), the groups left at the last stage merged there. Returns the registered
        bit, in step with the ``stages``-th stage after the input stage."""
        width = len(x)
        key = bound + (1 << (width - 1))  # x + 2**(w-1) >= bound + 2**(w-1), unsigned
        if key <= 0 or key >= 1 << width:
            return Const(int(key <= 0), 1)
        xu = Cat(x[:-1], ~x[-1])
        groups = []  # (ge or gt, eq) per group, lowest first
        for j, lo in enumerate(range(0, width, 4)):
            bits, k = xu[lo:lo + 4], (key >> lo) & ((1 << min(4, width - lo)) - 1)
            over = [v for v in range(1 << len(bits)) if v > k or (j == 0 and v == k)]
            gt = bits.matches(*[format(v, f"0{len(bits)}b") for v in over]) if over else Const(0, 1)
            groups.append((pipe.reg(gt, f"{name}_gt{j}_in"), pipe.reg(bits == k, f"{name}_eq{j}_in")))
        for step in range(stages):
            merged = []
            for j in range(0, len(groups), 2):
                if j + 1 == len(groups):
                    merged.append(groups[j])
                    continue
                (g_lo, e_lo), (g_hi, e_hi) = groups[j], groups[j + 1]
                merged.append((g_hi | e_hi & g_lo, e_hi & e_lo))
            if step == stages - 1:  # whatever is left merges here
                while len(merged) > 1:
                    (g_lo, e_lo), (g_hi, e_hi) = merged[0], merged[1]
                    merged[:2] = [(g_hi | e_hi & g_lo, e_hi & e_lo)]
            groups = [(pipe.reg(g, f"{name}_gt{j}_{step}"), pipe.reg(e, f"{name}_eq{j}_{step}"))
                      for j, (g, e) in enumerate(merged)]
        return groups[0][0]

    def _narrow(self, pipe, value, shift, **riders):
        """Round half to even by ``shift`` bits (split adder: the carry-in trick of
        ``fixed.round_half_even``); the saturation (no carry chain) is left to the caller,
        which writes it into the queue. Returns ``(result, riders)``."""
        fmt = self.config.output
        if shift > 0:
            widened = Cat(value.as_unsigned()[shift], value).as_signed()
            const = Const((((1 << (shift - 1)) - 1) << 1) | 1, shift + 2)
            total, riders = self._add(pipe, "round", widened, const, **riders)
            rounded = total[shift + 1:].as_signed()
        else:
            rounded = value.shift_left(-shift)
        return saturate(rounded, fmt), riders

    # ------------------------------------------------------------------ methods
    def _poly(self, pipe, x, last):
        table, cfg = self.table, self.config
        order, ub = table.order, table.seg_log2
        widths = table.widths
        offsets = [sum(widths[:k]) for k in range(order + 1)]
        rows = [sum((c & ((1 << w) - 1)) << o for c, w, o in zip(row, widths, offsets))
                for row in table.coefs]
        rows.append(0)  # |x| beyond the fitted segments: g = 0
        # |x| beyond the fitted segments (x >= T or x <= -T): compared beside the input
        # stage and the |x| adder, one LUT level per stage (``_at_least``), so no
        # comparison follows the adder's last chunk into the address register
        limit = (len(rows) - 1) << ub
        stages = pipe.add_stages(len(x) - 1, self.chunk)
        above = self._at_least(pipe, x, limit, stages, "above")
        not_below = self._at_least(pipe, x, -limit + 1, stages, "below")
        s = self._input(pipe, x, last)
        magnitude, r = self._abs(pipe, s, last=s.last)
        x_, last_ = r["x"], r["last"]
        segment = magnitude.shift_right(ub)
        outside = above | ~not_below
        s = pipe.stage("addr", addr=Mux(outside, len(rows) - 1, segment)[:max(1, (len(rows) - 1).bit_length())],
                       relu=Mux(x_[-1], 0, x_).as_signed(), last=last_,
                       u=magnitude[:ub] if ub else Const(0, 1))
        word = pipe.rom("coefficients", rows, sum(widths), s.addr)
        s = pipe.stage("rom", relu=s.relu, last=s.last, u=s.u)
        s = pipe.stage("coef", word=word, relu=s.relu, last=s.last, u=s.u)  # block-RAM output register
        coef = [s.word[offsets[k]:offsets[k] + widths[k]].as_signed() for k in range(order + 1)]
        riders = dict(relu=s.relu, last=s.last, u=s.u)
        # |value_k| <= max|c_k| + max|value_k+1| + 1 (``(v * u) >> ub`` with ``u < 2**ub``
        # never exceeds |v| but for the floor): every Horner sum fits ``bound_bits`` bits
        bound = max(abs(row[order]) for row in table.coefs)
        value = coef[order]
        for k in range(order - 1, -1, -1):  # Horner: a registered multiply, then a split add
            product, got = pipe.mul(f"mul{k}", value, riders["u"], self.chunk, **riders,
                                    **{f"c{j}": c for j, c in enumerate(coef[:k + 1])})
            riders = {n: got[n] for n in riders}
            coef = [got[f"c{j}"] for j in range(k + 1)]
            bound += max(abs(row[k]) for row in table.coefs) + 1
            # the last sum is kept complemented (free), ready for relu - g = relu + ~g + 1
            value, got = self._add(pipe, f"add{k}", coef[k], product.shift_right(ub),
                                   width=bound.bit_length() + 1, invert=k == 0, **riders,
                                   **{f"c{j}": c for j, c in enumerate(coef[:k])})
            riders = {n: got[n] for n in riders}
            coef = [got[f"c{j}"] for j in range(k)]
        relu = riders["relu"].shift_left(table.frac - cfg.input.frac_bits)
        wide, r = self._add(pipe, "sub", relu, value, carry_in=1,
                            width=max(len(relu), bound.bit_length() + 1) + 1, last=riders["last"])
        result, r = self._narrow(pipe, wide, table.frac - cfg.output.frac_bits, last=r["last"])
        return result, r["last"]

    def _ibert(self, pipe, x, last):
        c = self.constants
        s = self._input(pipe, x, last)
        magnitude, r = self._abs(pipe, s, last=s.last)
        x_ = r["x"]
        s = pipe.stage("clip", x=x_, last=r["last"],
                       sign=Mux(x_ == 0, 0, Mux(x_[-1], -1, 1)).as_signed(),
                       clipped=Mux(magnitude > -c.b_int, -c.b_int, magnitude))
        d, r = self._add(pipe, "add_b", s.clipped.as_signed(), Const(c.b_int), x=s.x, last=s.last, sign=s.sign)
        s = pipe.stage("square", square=d * d, **r)
        poly, r = self._add(pipe, "add_c", s.square, Const(c.c_int), x=s.x, last=s.last, sign=s.sign)
        poly = poly.as_signed()
        # sign(x) * poly, then >> erf_shift (floor); -poly as ~poly + 1 in the next adder
        negative = r["sign"] < 0
        s = pipe.stage("erf", x=r["x"], last=r["last"], negative=negative,
                       erf=Mux(r["sign"] > 0, poly, Mux(negative, ~poly, 0)))
        one = Const(c.one_int)
        # (sign * poly) >> erf_shift + one: with erf_shift = 0 the +1 of the negation joins the sum;
        # otherwise negate first (floor of a negative shift needs the exact value)
        if c.erf_shift == 0:
            e, r = self._add(pipe, "add_one", s.erf, one + s.negative, x=s.x, last=s.last)
        else:
            neg, r = self._add(pipe, "negate", s.erf, s.negative, x=s.x, last=s.last)
            e, r = self._add(pipe, "add_one", neg.as_signed() >> c.erf_shift, one, **r)
        s = pipe.stage("times_x", q=r["x"] * e.as_signed(), last=r["last"])
        s = pipe.stage("rescale", rr=s.q * Const(c.m_int, signed(c.m_int.bit_length() + 1)), last=s.last)
        result, r = self._narrow(pipe, s.rr, c.m_shift, last=s.last)
        return result, r["last"]

    def _table_unit(self, m):
        """One stage: the ROM's read enable is the stall signal ``~o.valid | o.ready``, its
        output register is ``o.payload.data``; ``o.valid`` and ``last`` are the only other
        registers, so the stall reaches three enables (no wide fan-out)."""
        cfg = self.config
        mask = (1 << cfg.output.width) - 1
        values = [int(v) & mask for v in table_values(cfg.function, cfg.input, cfg.output)]
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)
        pipe = StallPipeline(m, advance)
        m.submodules.table = rom = Memory(shape=cfg.output.width, depth=len(values), init=values)
        read = rom.read_port()
        m.d.comb += [read.en.eq(advance), read.addr.eq(self.i.payload.data.as_unsigned()),
                     self.o.valid.eq(pipe.valid_chain(self.i.valid, 1)),
                     self.o.payload.data.eq(read.data.as_signed()),
                     self.o.payload.last.eq(pipe.reg(self.i.payload.last, "last_out"))]
        return m
