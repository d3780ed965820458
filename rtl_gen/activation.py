"""Streaming fixed-point activation unit: GELU / SiLU, fully pipelined.

Algorithm (one of three, chosen by ``ActivationConfig.method``; the arithmetic is written
out in ``golden_models.activation``, which this generator matches bit for bit):

* ``poly``: ``f(x) = relu(x) - g(|x|)``; ``g`` by fitted piecewise polynomials of degree
  ``order`` over uniform segments, Horner's rule in integers, one round-half-even and one
  saturation at the end. The coefficient ROM (``segments x sum(widths)`` bits) is a
  synchronous ``Memory`` (block RAM where the target has it).
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
Latency (``self.latency``), input accepted to output valid:
``4 + 2*order`` cycles for ``poly``, 7 for ``ibert``, 1 for ``table``.
Each multiply, each add and the final round and saturation get a stage of their own,
so no register-to-register path holds more than one carry chain or one multiplier.
Throughput: one sample per cycle. All stages advance together when ``o`` is empty or
being read (``i.ready = ~o.valid | o.ready``), so backpressure stalls the pipeline without
losing or repeating a beat.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden_models.activation import fit_poly, ibert_constants, table_values

from .activation_config import ActivationConfig
from .fixed import StallPipeline, sample_layout


class ActivationUnit(wiring.Component):
    """GELU/SiLU approximator for one ``ActivationConfig`` (see module docstring)."""

    def __init__(self, config: ActivationConfig):
        assert isinstance(config, ActivationConfig)
        self.config = config
        if config.method == "poly":
            self.table = fit_poly(config.function, config.input, config.output, config.order,
                                  config.segments, config.guard_bits)
            self.latency = 4 + 2 * config.order
        elif config.method == "ibert":
            self.constants = ibert_constants(config.input, config.output)
            self.latency = 7
        else:
            self.latency = 1
        super().__init__({
            "i": In(stream.Signature(sample_layout(config.input))),
            "o": Out(stream.Signature(sample_layout(config.output))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)
        pipe = StallPipeline(m, advance)
        x, last = self.i.payload.data, self.i.payload.last
        build = {"poly": self._poly, "ibert": self._ibert, "table": self._table}[self.config.method]
        result, out_last = build(m, pipe, x, last)
        m.d.comb += [
            self.o.valid.eq(pipe.valid_chain(self.i.valid, self.latency)),
            self.o.payload.data.eq(result),
            self.o.payload.last.eq(out_last),
        ]
        return m

    def _poly(self, m, pipe, x, last):
        table, cfg = self.table, self.config
        order, ub = table.order, table.seg_log2
        widths = table.widths
        offsets = [sum(widths[:k]) for k in range(order + 1)]
        rows = [sum((c & ((1 << w) - 1)) << o for c, w, o in zip(row, widths, offsets))
                for row in table.coefs]
        m.submodules.coefficients = rom = Memory(shape=sum(widths), depth=len(rows), init=rows)
        read = rom.read_port()
        magnitude = abs(x)
        segment = magnitude >> ub
        m.d.comb += [read.en.eq(pipe.advance), read.addr.eq(segment)]
        # stage 1: ROM row arrives; the sample and its segment-local offset u ride along
        x_s = pipe.reg(x, "x_s1")
        last_s = pipe.reg(last, "last_s1")
        u = pipe.reg(magnitude[:ub] if ub else Const(0, 1), "u_s1")
        inside = pipe.reg(segment < len(rows), "inside_s1")
        coef = [read.data[offsets[k]:offsets[k] + widths[k]].as_signed() for k in range(order + 1)]
        value = coef[order]
        for k in range(order - 1, -1, -1):  # Horner: two stages per step (multiply, add)
            step = f"h{k}"
            product = pipe.reg(value * u, f"product_{step}")
            coef = [pipe.reg(c, f"c{j}_{step}a") for j, c in enumerate(coef[:k + 1])]
            x_s, last_s, u, inside = (pipe.reg(s, f"{n}_{step}a") for s, n in
                                      ((x_s, "x"), (last_s, "last"), (u, "u"), (inside, "inside")))
            value = pipe.reg(coef[k] + (product >> ub), f"value_{step}")
            coef = [pipe.reg(c, f"c{j}_{step}b") for j, c in enumerate(coef[:k])]
            x_s, last_s, u, inside = (pipe.reg(s, f"{n}_{step}b") for s, n in
                                      ((x_s, "x"), (last_s, "last"), (u, "u"), (inside, "inside")))
        deviation = Mux(inside, value, 0)
        relu = Mux(x_s[-1], 0, x_s).as_signed()
        wide = pipe.reg((relu << (table.frac - cfg.input.frac_bits)) - deviation, "relu_minus_g")
        last_s = pipe.reg(last_s, "last_relu")
        return pipe.narrow(wide, table.frac - cfg.output.frac_bits, cfg.output, "out", last_s)

    def _ibert(self, m, pipe, x, last):
        c, cfg = self.constants, self.config
        # stage 1: clip |x| at -b_int and add b_int (<= 0); keep sign(x)
        clipped = Mux(abs(x) > -c.b_int, -c.b_int, abs(x)).as_signed() + c.b_int
        d = pipe.reg(clipped, "clipped_s1")
        sign = pipe.reg(Mux(x == 0, 0, Mux(x[-1], -1, 1)).as_signed(), "sign_s1")
        x1, l1 = pipe.reg(x, "x_s1"), pipe.reg(last, "last_s1")
        # stage 2: square
        square = pipe.reg(d * d, "square_s2")
        sign2, x2, l2 = pipe.reg(sign, "sign_s2"), pipe.reg(x1, "x_s2"), pipe.reg(l1, "last_s2")
        # stage 3: erf polynomial, sign, >> erf_shift (floor), + one_int
        poly = (square + c.c_int).as_signed()
        erf = Mux(sign2 > 0, poly, Mux(sign2 < 0, -poly, 0)) >> c.erf_shift
        shifted = pipe.reg(erf + c.one_int, "erf_plus_one_s3")
        x3, l3 = pipe.reg(x2, "x_s3"), pipe.reg(l2, "last_s3")
        # stage 4: x * (erf + 1); stage 5: dyadic rescale; stage 6: round, saturate
        q = pipe.reg(x3 * shifted, "q_s4")
        l4 = pipe.reg(l3, "last_s4")
        r = pipe.reg(q * Const(c.m_int, signed(c.m_int.bit_length() + 1)), "r_s5")
        l5 = pipe.reg(l4, "last_s5")
        return pipe.narrow(r, c.m_shift, cfg.output, "out", l5)

    def _table(self, m, pipe, x, last):
        cfg = self.config
        mask = (1 << cfg.output.width) - 1
        values = [int(v) & mask for v in table_values(cfg.function, cfg.input, cfg.output)]
        m.submodules.table = rom = Memory(shape=cfg.output.width, depth=len(values), init=values)
        read = rom.read_port()
        m.d.comb += [read.en.eq(pipe.advance), read.addr.eq(x.as_unsigned())]
        return read.data.as_signed(), pipe.reg(last, "last_out")
