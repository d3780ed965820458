"""Streaming Hadamard rotation unit: an exact integer Walsh-Hadamard transform of length 2**n.

Algorithm
---------
``y = round_half_even(H_N x / 2**shift)`` for each vector of ``N = 2**n`` signed
``width``-bit elements (``golden_models.hadamard``, bit for bit): a radix-2 single-path
delay-feedback pipeline of ``n`` butterfly stages, stage ``k`` of span ``D = N / 2**(k+1)``
(span ``N/2`` first; no twiddles, no reordering: the results leave in natural order).
Each stage takes its input stream in blocks of ``2D``:

* the first ``D`` elements ``a_j`` are stored in the stage's delay line;
* each of the next ``D`` elements ``b_j`` reads ``a_j`` back, leaves as ``a_j + b_j`` and
  ``a_j - b_j`` takes its place in the delay line;
* the ``D`` differences then leave one per cycle on their own, starting the cycle after
  ``b_{D-1}`` arrived, whether or not the next block has begun (so a vector's results
  never wait for the next vector, and the next block's ``a_j`` overwrites a difference only
  after it was read).

Every stage is exact and one bit wider than its input (``n`` bits of growth in all); the
final stage divides by ``2**shift`` with ``fixed.round_half_even`` (ties to even) into the
derived output width (``HadamardConfig.out_width``; the exact range, nothing saturates).

Every adder is split by ``FreePipeline.add`` into ``A(w) = ceil(w / 8)`` stages of at most
8 bits (``CHUNK``; the carries registered as sum bits), for the sum and, in lockstep, the
difference (``a + ~b + 1``). Delay lines: a span ``D`` with ``D >= 4`` and ``D > 2 + A`` is
an ``amaranth.lib.memory.Memory`` of ``D`` words with a synchronous read port (block RAM
from ``D >= 16``, ``ram_style``). Such a memory stage reads (a sum's ``a_j`` or a
difference) at its input cycle, registers the RAM output (and ``b``, gated to 0 for a
difference), adds over ``A`` stages and writes (``a_j`` or ``a_j - b_j``) ``W = 2 + A``
cycles after the input: the read port serves exactly one read per output slot, and no
word is read in the cycle it is written (``D > W`` keeps every write at least one cycle
from the read of the same word). Shorter spans keep the first half's words and the
differences in two shift registers (a pair register, ``A`` add stages, the difference
shift register, the output register; the differences leave after the block's last sum),
so no word is reused early and no index is decoded.

Interface
---------
``i``: ``In(stream.Signature(StructLayout({"data": signed(width), "last": 1})))``
``o``: ``Out(stream.Signature(StructLayout({"data": signed(out_width), "last": 1})))``
Vectors are exactly ``N`` beats by count: ``i.last`` is not read; ``o.last`` marks every
``N``-th result.

Timing
------
The datapath is written as a free-running ``FreePipeline`` (``rtl_gen.pipeline``) and
advances together on ``run`` (``EnableInserter``: every register and memory port of it),
which is the ready of a ``SkidBuffer`` at the output (``rtl_gen.skid``): a flip-flop. So
``i.ready`` = ``run`` is a register, ``o.valid``/``o.payload`` are registers and ``o.ready``
reaches only the skid's flip-flops; the one enable fanning into the datapath comes
straight from a flip-flop. While ``run`` is low nothing moves (a frozen datapath holds its
beats: none lost or repeated). Throughput: one element per cycle while ``o`` is ready,
vectors back to back. Latency (``self.latency``; cycles from an accepted input to its result on ``o`` at full
rate, the same for every element): ``1 (input) + sum over stages k of (D_k + 2 + A(w_k))
+ R + 1 (output register) + 1 (skid)``, ``w_k`` = ``width + k + 1``, ``R`` = ``A(w_n + 2)``
rounding stages (1 when ``shift`` is 0) = ``N + 2 n + sum A(w_k) + R + 2``. Capacity: ``self.capacity`` =
``latency + 1`` beats (the skid's spare entry; reached, and proven the bound, by
``tests/test_formal.py``).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, EnableInserter, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.hadamard import stage_widths

from .hadamard_config import HadamardConfig
from .hadamard_invariant import invariant
from .pipeline import FreePipeline
from .skid import SkidBuffer

#: the longest carry chain of a stage (bits)
CHUNK = 8
#: the shortest span whose delay line is a memory (also needs ``span > 2 + A``)
MEMORY_SPAN = 4
#: spans from which a delay line is forced into block RAM
BLOCK_RAM_SPAN = 16


def adds(width: int) -> int:
    """Stages of one split adder of ``width`` bits (``A(w)``)."""
    return FreePipeline.add_stages(width, CHUNK)


def uses_memory(span: int, width: int) -> bool:
    """Whether a stage's delay line is a memory (``D >= 4`` and ``D > W = 2 + A(w)``)."""
    return span >= MEMORY_SPAN and span > 2 + adds(width)


def sample(width: int) -> data.StructLayout:
    return data.StructLayout({"data": signed(width), "last": 1})


class HadamardUnit(wiring.Component):
    """Walsh-Hadamard rotation of ``config.length``-element vectors (module docstring).

    Attributes: ``spans``, ``widths``, ``adder_stages`` (``A``) and ``memory`` (a memory
    delay line) per stage, ``latency`` (cycles, accepted input
    to its result), ``capacity`` (beats in the unit at most: ``latency + 1``).
    """

    def __init__(self, config: HadamardConfig):
        assert isinstance(config, HadamardConfig)
        self.config = config
        n = config.log2_length
        self.spans = [config.length >> (k + 1) for k in range(n)]
        self.widths = stage_widths(config.width, n)
        self.adder_stages = [adds(w) for w in self.widths]
        self.memory = [uses_memory(d, w) for d, w in zip(self.spans, self.widths)]
        rounding = adds(self.widths[-1] + 2) if config.shift else 1
        self.latency = 3 + rounding + sum(d + 2 + adds(w) for d, w in zip(self.spans, self.widths))
        # a full pipeline at full rate holds `latency` beats; the skid's spare entry one more
        self.capacity = self.latency + 1
        super().__init__({"i": In(stream.Signature(sample(config.width))),
                          "o": Out(stream.Signature(sample(config.out_width)))})

    def invariant(self, internals, in_flight):
        """The formal invariant: :func:`rtl_gen.hadamard_invariant.invariant`."""
        return invariant(self, internals, in_flight)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.skid = skid = SkidBuffer(sample(cfg.out_width))
        run = Signal(name="run")
        m.d.comb += [run.eq(skid.i.ready), self.i.ready.eq(run)]
        core = Module()   # free-running code; every register and port enabled by `run`
        pipe = FreePipeline(core, self.i.valid)
        s = pipe.stage("in", x=self.i.payload.data)
        valid, x = pipe.valid, s.x
        for k, (span, width) in enumerate(zip(self.spans, self.widths)):
            stage = self._memory_stage if self.memory[k] else self._pair_stage
            valid, x = stage(core, k, span, width, valid, x)
        valid, y, last = self._round(core, valid, x)
        # one register rank more, which the placer puts beside the skid buffer: the skid's
        # accept logic then sees a near register (the rounding stage ends far from it)
        pipe = FreePipeline(core, valid)
        s = pipe.stage("out", y=y, last=last)
        valid, y, last = pipe.valid, s.y, s.last
        m.submodules.core = EnableInserter(run)(core)
        m.d.comb += [skid.i.valid.eq(valid), skid.i.payload.data.eq(y),
                     skid.i.payload.last.eq(last)]
        wiring.connect(m, skid.o, wiring.flipped(self.o))
        return m

    @staticmethod
    def _block_position(m, k, span, valid):
        """The stage's position in its block of ``2 span`` inputs: (second half, index j,
        the block's last input now)."""
        bits = (span - 1).bit_length()
        pos = Signal(bits + 1, name=f"pos{k}")
        at_end = Signal(name=f"at_end{k}")   # pos == 2 span - 1, kept beside pos (one LUT)
        with m.If(valid):
            m.d.sync += [pos.eq(pos + 1), at_end.eq(pos == 2 * span - 2)]
        return pos[bits], pos[:bits], valid & at_end

    @staticmethod
    def _read_out(m, k, span, start):
        """The differences' read-out: ``emit`` for ``span`` cycles from the cycle after
        ``start``, ``ptr`` counting them (from 0 the cycle after ``start``)."""
        emit = Signal(name=f"emit{k}")
        ptr = Signal(max((span - 1).bit_length(), 1), name=f"ptr{k}")
        # no enable but `run`: ptr counts every cycle (it is read only while emit is set)
        m.d.sync += [ptr.eq(Mux(start, 0, ptr + 1)),
                     emit.eq(start | (emit & (ptr != span - 1)))]
        return emit, ptr

    def _memory_stage(self, m, k, span, width, valid, x):
        """Stage ``k`` with a memory delay line (module docstring); ``2 + A`` beyond ``span``."""
        second, j, block_end = self._block_position(m, k, span, valid)
        emit, ptr = self._read_out(m, k, span, block_end)
        attrs = {"ram_style": "block"} if span >= BLOCK_RAM_SPAN else {}
        # no_rw_check: no word is read in the cycle it is written (module docstring)
        m.submodules[f"line{k}"] = line = Memory(shape=signed(width), depth=span, init=[],
                                                 attrs={**attrs, "no_rw_check": 1})
        read = line.read_port(transparent_for=())
        write = line.write_port()
        is_sum = valid & second
        m.d.comb += [read.en.eq(1), read.addr.eq(Mux(is_sum, j, ptr))]
        pipe = FreePipeline(m, valid | emit)
        # a first-half input may be stored in the cycle a difference is read out: both ride
        s1 = pipe.stage(f"read{k}", sum=is_sum, emit=emit, store=valid & ~second, j=j, b=x)
        s2 = pipe.stage(f"ram{k}", sum=s1.sum, emit=s1.emit, store=s1.store, j=s1.j, b=s1.b,
                        a=read.data, bg=Mux(s1.sum, s1.b, 0))
        # results (sums, differences read out) and writes (a_j, a_j - b_j) in lockstep
        out = FreePipeline(m, pipe.valid & (s2.sum | s2.emit))
        y, _ = out.add(f"y{k}_", s2.a, s2.bg, width, CHUNK)
        store = FreePipeline(m, pipe.valid & (s2.sum | s2.store))
        d, r = store.add(f"d{k}_", s2.a, ~s2.b, width, CHUNK, carry_in=1, sum=s2.sum, j=s2.j,
                         word=s2.b)
        m.d.comb += [write.en.eq(store.valid), write.addr.eq(r["j"]),
                     write.data.eq(Mux(r["sum"], d, r["word"]))]
        return out.valid, y

    def _pair_stage(self, m, k, span, width, valid, x):
        """Stage ``k`` for short spans: the first half's words and the differences in two
        separate shift registers (no word is reused early, no index decoding: each moves on
        every beat it takes, the oldest word at the end); ``2 + A`` beyond ``span``."""
        second, j, _ = self._block_position(m, k, span, valid)
        words = [Signal(signed(width - 1), name=f"a{k}_{e}", reset_less=True) for e in range(span)]
        diffs = [Signal(signed(width), name=f"d{k}_{e}", reset_less=True) for e in range(span)]
        # every input shifts the words: after the first half the end holds a_0, and each
        # second-half input b_j finds a_j there
        with m.If(valid):
            m.d.sync += [words[0].eq(x)] + [words[e].eq(words[e - 1]) for e in range(1, span)]
        pipe = FreePipeline(m, valid & second)
        s = pipe.stage(f"pair{k}", j=j if span > 1 else Const(0, 1), a=words[-1], b=x)
        total, r = pipe.add(f"sum{k}_", s.a, s.b, width, CHUNK, j=s.j)
        diff, _ = FreePipeline(m, 0).add(f"dif{k}_", s.a, ~s.b, width, CHUNK, carry_in=1)
        # the differences leave once the block's last sum is out of the adder, oldest first
        emit, ptr = self._read_out(m, k, span, pipe.valid & (r["j"] == span - 1))
        with m.If(pipe.valid | emit):
            m.d.sync += [diffs[0].eq(diff)] + [diffs[e].eq(diffs[e - 1]) for e in range(1, span)]
        out_valid = Signal(name=f"valid{k}")
        y = Signal(signed(width), name=f"y{k}", reset_less=True)
        m.d.sync += [out_valid.eq(pipe.valid | emit), y.eq(Mux(pipe.valid, total, diffs[-1]))]
        return out_valid, y

    def _round(self, m, valid, x):
        """Divide by ``2**shift``, round half to even (``fixed.round_half_even``'s one adder,
        split); ``last`` on every N-th result."""
        cfg = self.config
        count = Signal(cfg.log2_length, name="out_pos")
        with m.If(valid):
            m.d.sync += count.eq(count + 1)
        last = count.all() if cfg.log2_length else Const(1, 1)
        pipe = FreePipeline(m, valid)
        if not cfg.shift:
            s = pipe.stage("round", y=x, last=last)
            return pipe.valid, s.y[:cfg.out_width], s.last
        # (x + 2**(shift-1) - 1 + x[shift]) >> shift, the bit x[shift] as the low operand bit
        widened = Cat(x.as_unsigned()[cfg.shift], x).as_signed()
        half = Const((((1 << (cfg.shift - 1)) - 1) << 1) | 1, cfg.shift + 1)
        total, r = pipe.add("round", widened, half, len(widened) + 1, CHUNK, last=last)
        return pipe.valid, total[cfg.shift + 1:cfg.shift + 1 + cfg.out_width], r["last"]
