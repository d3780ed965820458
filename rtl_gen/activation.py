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
``6 + 2*order`` cycles for ``poly``, 12 for ``ibert``, 1 for ``table``.
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

from lowbit.golden_models.activation import fit_poly, ibert_constants, table_values

from .activation_config import ActivationConfig
from .fixed import StallPipeline, sample_layout


def pipeline_latency(config: ActivationConfig) -> int:
    """Cycles from an accepted input to its output (see the module docstring)."""
    return {"poly": 6 + 2 * config.order, "ibert": 12, "table": 1}[config.method]


class ActivationUnit(wiring.Component):
    """GELU/SiLU approximator for one ``ActivationConfig`` (see module docstring)."""

    def __init__(self, config: ActivationConfig):
        assert isinstance(config, ActivationConfig)
        self.config = config
        self.latency = pipeline_latency(config)
        if config.method == "poly":
            self.table = fit_poly(config.function, config.input, config.output, config.order,
                                  config.segments, config.guard_bits)
        elif config.method == "ibert":
            self.constants = ibert_constants(config.input, config.output)
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
        assert pipe.stages in (self.latency, 0), (pipe.stages, self.latency)
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
        s = pipe.stage("in", x=x, last=last)
        s = pipe.stage("abs", x=s.x, last=s.last, magnitude=abs(s.x))
        # the ROM row of segment |x| >> seg_log2 arrives with the next stage
        m.d.comb += [read.en.eq(pipe.advance), read.addr.eq(s.magnitude >> ub)]
        s = pipe.stage("rom", relu=Mux(s.x[-1], 0, s.x).as_signed(), last=s.last,
                       u=s.magnitude[:ub] if ub else Const(0, 1),
                       inside=(s.magnitude >> ub) < len(rows))
        coef = [read.data[offsets[k]:offsets[k] + widths[k]].as_signed() for k in range(order + 1)]
        value = coef[order]
        for k in range(order - 1, -1, -1):  # Horner: two stages per step (multiply, add)
            riders = dict(relu=s.relu, last=s.last, u=s.u, inside=s.inside)
            s = pipe.stage(f"mul{k}", product=value * s.u, **riders,
                           **{f"c{j}": c for j, c in enumerate(coef[:k + 1])})
            coef = [getattr(s, f"c{j}") for j in range(k + 1)]
            riders = dict(relu=s.relu, last=s.last, u=s.u, inside=s.inside)
            s = pipe.stage(f"add{k}", value=coef[k] + (s.product >> ub), **riders,
                           **{f"c{j}": c for j, c in enumerate(coef[:k])})
            coef, value = [getattr(s, f"c{j}") for j in range(k)], s.value
        s = pipe.stage("relu_minus_g", last=s.last,
                       wide=(s.relu << (table.frac - cfg.input.frac_bits)) - Mux(s.inside, value, 0))
        return pipe.narrow(s.wide, table.frac - cfg.output.frac_bits, cfg.output, "out", s.last)

    def _ibert(self, m, pipe, x, last):
        c, cfg = self.constants, self.config
        s = pipe.stage("in", x=x, last=last)
        s = pipe.stage("abs", x=s.x, last=s.last, magnitude=abs(s.x),
                       sign=Mux(s.x == 0, 0, Mux(s.x[-1], -1, 1)).as_signed())
        s = pipe.stage("clip", x=s.x, last=s.last, sign=s.sign,
                       clipped=Mux(s.magnitude > -c.b_int, -c.b_int, s.magnitude))
        s = pipe.stage("add_b", x=s.x, last=s.last, sign=s.sign, d=s.clipped.as_signed() + c.b_int)
        s = pipe.stage("square", x=s.x, last=s.last, sign=s.sign, square=s.d * s.d)
        s = pipe.stage("add_c", x=s.x, last=s.last, sign=s.sign, poly=(s.square + c.c_int).as_signed())
        s = pipe.stage("erf", x=s.x, last=s.last,  # sign(x) * poly, then >> erf_shift (floor)
                       erf=Mux(s.sign > 0, s.poly, Mux(s.sign < 0, -s.poly, 0)) >> c.erf_shift)
        s = pipe.stage("add_one", x=s.x, last=s.last, e=s.erf + c.one_int)
        s = pipe.stage("times_x", last=s.last, q=s.x * s.e)
        s = pipe.stage("rescale", last=s.last, r=s.q * Const(c.m_int, signed(c.m_int.bit_length() + 1)))
        return pipe.narrow(s.r, c.m_shift, cfg.output, "out", s.last)

    def _table(self, m, pipe, x, last):
        cfg = self.config
        mask = (1 << cfg.output.width) - 1
        values = [int(v) & mask for v in table_values(cfg.function, cfg.input, cfg.output)]
        m.submodules.table = rom = Memory(shape=cfg.output.width, depth=len(values), init=values)
        read = rom.read_port()
        m.d.comb += [read.en.eq(pipe.advance), read.addr.eq(x.as_unsigned())]
        return read.data.as_signed(), pipe.reg(last, "last_out")
