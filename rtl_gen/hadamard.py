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

Delay lines: spans ``D >= 4`` are an ``amaranth.lib.memory.Memory`` of ``D`` words with a
synchronous read port (block RAM from ``D >= 16``, ``ram_style``). A memory stage reads (a
sum's ``a_j`` or a difference) at its input cycle, registers the RAM output, adds in the
next cycle (``b`` gated to 0 for a difference, so the output is one adder between
registers) and writes (``a_j`` or ``a_j - b_j``) three cycles after the input: the read
port serves exactly one read per output slot, and no word is read in the cycle it is
written (``D >= 4`` keeps every write at least one cycle from the read of the same word).
Spans 1 and 2 keep the first half's words and the differences in separate registers (a
pair register, then the sum register and the difference slot, then the output; the
differences leave three cycles after the block's last pair), every adder between
registers.

Interface
---------
``i``: ``In(stream.Signature(StructLayout({"data": signed(width), "last": 1})))``
``o``: ``Out(stream.Signature(StructLayout({"data": signed(out_width), "last": 1})))``
Vectors are exactly ``N`` beats by count: ``i.last`` is not read; ``o.last`` marks every
``N``-th result.

Timing
------
The datapath (input register, stages, rounding register) advances together on ``run``,
which is the ready of a ``SkidBuffer`` at the output (``rtl_gen.skid``): a flip-flop. So
``i.ready`` = ``run`` is a register, ``o.valid``/``o.payload`` are registers and ``o.ready``
reaches only the skid's flip-flops; the one enable fanning into the datapath comes
straight from a flip-flop. While ``run`` is low nothing moves (a frozen datapath holds its
beats: none lost or repeated). Throughput: one element per cycle while ``o`` is ready,
vectors back to back. Latency (``self.latency``; cycles from an accepted input to its result on ``o`` at full
rate, the same for every element): ``1 (input) + sum over stages of (D + 3) + 1 (round) +
1 (skid)`` = ``N + 2 + 3 n``. Capacity: ``self.capacity`` = ``latency + 1`` beats (the
skid's spare entry; reached, and proven the bound, by ``tests/test_formal.py``).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.hadamard import stage_widths

from .fixed import round_half_even
from .hadamard_config import HadamardConfig
from .skid import SkidBuffer

#: spans from which a delay line is a memory (below: registers)
MEMORY_SPAN = 4
#: spans from which a delay line is forced into block RAM
BLOCK_RAM_SPAN = 16


def stage_latency(span: int) -> int:
    """Cycles a stage adds beyond its span: 3 (memory: read, RAM register, add; registers:
    pair, add, output)."""
    return 3


def sample(width: int) -> data.StructLayout:
    return data.StructLayout({"data": signed(width), "last": 1})


class HadamardUnit(wiring.Component):
    """Walsh-Hadamard rotation of ``config.length``-element vectors (module docstring).

    Attributes: ``spans`` (per stage), ``latency`` (cycles, accepted input to its result),
    ``capacity`` (beats in the unit at most: ``latency + 1``).
    """

    def __init__(self, config: HadamardConfig):
        assert isinstance(config, HadamardConfig)
        self.config = config
        n = config.log2_length
        self.spans = [config.length >> (k + 1) for k in range(n)]
        self.widths = stage_widths(config.width, n)
        self.latency = 3 + sum(d + stage_latency(d) for d in self.spans)
        # a full pipeline at full rate holds `latency` beats; the skid's spare entry one more
        self.capacity = self.latency + 1
        super().__init__({"i": In(stream.Signature(sample(config.width))),
                          "o": Out(stream.Signature(sample(config.out_width)))})

    def invariant(self, internals, in_flight):
        """The relation a formal proof asserts (and proves) beside the stream rules
        (``testbenches.formal.prove_stream_protocol``'s ``invariant``): the beats in flight
        are those of the input and rounding registers, the skid buffer, and each stage:
        ``min(pos, D)`` inputs of its block in the delay line, ``D - ptr`` differences still to
        emit and its output beats in its pipeline registers; and each stage's emission runs
        only in a first half, ahead of the next block (``pos <= ptr < D``), one beat per register."""
        def one(name):
            (sig,) = internals.signals(name)
            return sig

        count = one("valid_in") + one("valid_out") + one("main_valid") + one("skid_valid")
        holds = 1
        for k, span in enumerate(self.spans):
            bits = (span - 1).bit_length()
            pos, emit, ptr = one(f"pos{k}"), one(f"emit{k}"), one(f"ptr{k}")
            second, low = pos[bits], pos[:bits]
            count += Mux(second, span, low) + Mux(emit, span - ptr, 0)
            holds &= ~emit | (ptr < span)
            if span >= MEMORY_SPAN:
                holds &= ~emit | (~second & (low <= ptr))
                for reg in ("s1", "s2", "s3"):
                    is_sum, is_emit = one(f"sum{k}_{reg}"), one(f"emit{k}_{reg}")
                    count += is_sum + is_emit
                    holds &= ~(is_sum & is_emit)
            else:
                # a pair in flight stands for its sum and its difference; a block's last
                # pair (in the pair or the sum register) for the block's differences
                pair, total, total_end = one(f"pair{k}"), one(f"total{k}"), one(f"total_end{k}")
                pair_end = pair & (one(f"pairj{k}") == span - 1)
                count += pair + total + one(f"valid{k}") + span * (pair_end + total_end)
                holds &= ~(total & emit) & (~total_end | (total & (pos <= 1)))
                holds &= ~emit | (pos <= ptr + 2)
                holds &= ~(pair & total_end) & (~(pair & emit) | (ptr == span - 1))
                holds &= ~pair_end | (pos == 0)
                holds &= ~pair | pair_end | (second & (low == one(f"pairj{k}") + 1))
                holds &= ~total | total_end | second | (pair_end & (pos == 0))
        return holds & (in_flight == count)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.skid = skid = SkidBuffer(sample(cfg.out_width))
        run = Signal(name="run")
        m.d.comb += [run.eq(skid.i.ready), self.i.ready.eq(run)]
        valid = Signal(name="valid_in")
        x = Signal(signed(cfg.width), name="x_in", reset_less=True)
        with m.If(run):
            m.d.sync += [valid.eq(self.i.valid), x.eq(self.i.payload.data)]
        for k, span in enumerate(self.spans):
            stage = self._memory_stage if span >= MEMORY_SPAN else self._pair_stage
            valid, x = stage(m, run, k, span, valid, x)
        valid, y, last = self._round(m, run, valid, x)
        m.d.comb += [skid.i.valid.eq(valid), skid.i.payload.data.eq(y),
                     skid.i.payload.last.eq(last)]
        wiring.connect(m, skid.o, wiring.flipped(self.o))
        return m

    @staticmethod
    def _block_position(m, run, k, span, valid):
        """The stage's position in its block of ``2 span`` inputs: (second half, index j),
        and the difference read-out (``emit``, ``ptr``) that starts after ``b_{span-1}``."""
        bits = (span - 1).bit_length()
        pos = Signal(bits + 1, name=f"pos{k}")
        emit = Signal(name=f"emit{k}")
        ptr = Signal(max(bits, 1), name=f"ptr{k}")
        second, j = pos[bits], pos[:bits]
        block_end = valid & second & (j.all() if bits else 1)
        with m.If(run):
            m.d.sync += pos.eq(pos + valid)
            with m.If(block_end):
                m.d.sync += [emit.eq(1), ptr.eq(0)]
            with m.Elif(emit):
                m.d.sync += ptr.eq(ptr + 1)
                with m.If(ptr == span - 1):
                    m.d.sync += emit.eq(0)
        return second, j, emit, ptr

    def _memory_stage(self, m, run, k, span, valid, x):
        """Stage ``k`` with a memory delay line (module docstring); latency 3 beyond ``span``."""
        width = self.widths[k]
        second, j, emit, ptr = self._block_position(m, run, k, span, valid)
        attrs = {"ram_style": "block"} if span >= BLOCK_RAM_SPAN else {}
        # no_rw_check: no word is read in the cycle it is written (module docstring)
        m.submodules[f"line{k}"] = line = Memory(shape=signed(width), depth=span, init=[],
                                                 attrs={**attrs, "no_rw_check": 1})
        read = line.read_port(transparent_for=())
        write = line.write_port()
        is_sum = valid & second
        m.d.comb += [read.en.eq(run), read.addr.eq(Mux(is_sum, j, ptr))]

        def regs(name, **values):
            out = {}
            for key, value in values.items():
                # the valid flags reset to 0; data registers carry no reset
                sig = Signal(value.shape(), name=f"{key}{k}_{name}",
                             reset_less=key not in ("sum", "emit", "store"))
                with m.If(run):
                    m.d.sync += sig.eq(value)
                out[key] = sig
            return out

        s1 = regs("s1", sum=is_sum, emit=emit, store=valid & ~second, j=j, b=x)
        # b gated to 0 for a difference read out, so the output is one adder from registers
        s2 = regs("s2", **s1, a=read.data, bg=Mux(s1["sum"], s1["b"], 0))
        a, b = s2["a"], s2["b"]
        s3 = regs("s3", sum=s2["sum"], emit=s2["emit"], store=s2["store"], j=s2["j"],
                  y=(a + s2["bg"])[:width].as_signed(), d=(a - b)[:width].as_signed(), b=b)
        m.d.comb += [write.en.eq(run & (s3["sum"] | s3["store"])), write.addr.eq(s3["j"]),
                     write.data.eq(Mux(s3["store"], s3["b"], s3["d"]))]
        return s3["sum"] | s3["emit"], s3["y"]

    def _pair_stage(self, m, run, k, span, valid, x):
        """Stage ``k`` for spans 1 and 2: the first half's words and the differences in
        separate registers (no word is reused, so no hazard); latency 3 beyond ``span``."""
        width = self.widths[k]
        bits = (span - 1).bit_length()
        pos = Signal(bits + 1, name=f"pos{k}")
        second, j = pos[bits], pos[:bits]
        words = [Signal(signed(width - 1), name=f"a{k}_{e}", reset_less=True) for e in range(span)]
        diffs = [Signal(signed(width), name=f"d{k}_{e}", reset_less=True) for e in range(span)]

        def pick(regs, index):
            return regs[0] if span == 1 else Mux(index, regs[1], regs[0])

        def at(index, e):
            return 1 if span == 1 else index == e

        pair, pair_j = Signal(name=f"pair{k}"), Signal(max(bits, 1), name=f"pairj{k}", reset_less=True)
        pa = Signal(signed(width - 1), name=f"pa{k}", reset_less=True)
        pb = Signal(signed(width - 1), name=f"pb{k}", reset_less=True)
        total, total_end = Signal(name=f"total{k}"), Signal(name=f"total_end{k}")
        sum_reg = Signal(signed(width), name=f"sum{k}", reset_less=True)
        emit, ptr = Signal(name=f"emit{k}"), Signal(max(bits, 1), name=f"ptr{k}")
        out_valid = Signal(name=f"valid{k}")
        y = Signal(signed(width), name=f"y{k}", reset_less=True)
        with m.If(run):
            # input cycle: store a first-half word, or take the pair (a_j, b_j)
            m.d.sync += [pos.eq(pos + valid), pair.eq(valid & second), pair_j.eq(j),
                         pa.eq(pick(words, j)), pb.eq(x)]
            for e, word in enumerate(words):
                with m.If(valid & ~second & at(j, e)):
                    m.d.sync += word.eq(x)
            # pair cycle: the sum into its register, the difference into its slot
            m.d.sync += [total.eq(pair), total_end.eq(pair & (pair_j == span - 1)),
                         sum_reg.eq(pa + pb)]
            for e, diff in enumerate(diffs):
                with m.If(pair & at(pair_j, e)):
                    m.d.sync += diff.eq(pa - pb)
            # output cycle: a sum, or the next difference once the block's sums are out
            m.d.sync += [out_valid.eq(total | emit), y.eq(Mux(total, sum_reg, pick(diffs, ptr)))]
            with m.If(total_end):
                m.d.sync += [emit.eq(1), ptr.eq(0)]
            with m.Elif(emit):
                m.d.sync += ptr.eq(ptr + 1)
                with m.If(ptr == span - 1):
                    m.d.sync += emit.eq(0)
        return out_valid, y

    def _round(self, m, run, valid, x):
        """Divide by ``2**shift``, round half to even; ``last`` on every N-th result."""
        cfg = self.config
        out_valid = Signal(name="valid_out")
        y = Signal(signed(cfg.out_width), name="y_out", reset_less=True)
        count = Signal(cfg.log2_length, name="out_pos")
        last = Signal(name="last_out", reset_less=True)
        with m.If(run):
            m.d.sync += [out_valid.eq(valid), y.eq(round_half_even(x, cfg.shift)[:cfg.out_width]),
                         last.eq(count.all() if cfg.log2_length else 1)]
            with m.If(valid):
                m.d.sync += count.eq(count + 1)
        return out_valid, y, last
