"""LUT-GEMV with its tables and accumulators in the FPGA's RAMs (``tables: ram``): each lane's
table RAM read port *is* the lookup, each lane's accumulators are words of an accumulator RAM.

Algorithm (bit for bit ``golden_models.lutgemv.lut_gemv``)
---------------------------------------------------------
As the fabric unit (``rtl_gen.lutgemv``): ``y = (Q - z) @ x`` for codes of run-time
precision ``bits`` and zero point ``z``; ``acc = sum_i sum_j T_j[idx_ij] << i`` and
``y = (acc + (2**bits - 1 - 2z) * sum(x)) >> 1`` (exact: ``acc`` plus the offset is even; no
rounding, no saturation; ``acc_width`` from ``k_max``, ``bits_max``, ``act_bits``).

Hardware ("group outer")
------------------------
* **One table builder** (``rtl_gen.lutgemv_ram_build``) takes ``x`` one group of ``g``
  activations per beat and writes its table (``2**(g-1)`` entries symmetric, ``2**g``
  otherwise), one entry per cycle in Gray-code order, by broadcast into every lane's table
  RAM (``amaranth.lib.memory.Memory``, 256 words of ``entry_width`` bits: one SB_RAM40_4K /
  one DP16KD). The RAM holds a ring of ``slots = 256 / entries`` tables, so the next groups'
  tables are built while the current one is used. ``sum(x)`` is a running register (a
  two-entry ring, one per vector).
* **P = rows lanes.** A weight beat holds ``g`` bits for each lane; lane ``p`` reads
  ``T[slot, idx]`` (symmetric: bit ``g-1`` of ``idx`` clear reads ``~idx`` and negates: ``~T``
  and a carry-in), shifts it by the plane (ones shifted in under a negation so that the
  carry-in still adds ``2**i``), and read-modify-writes word ``r`` of its accumulator RAM
  (``m_max / rows`` words of ``acc_width`` bits). The pass's first sweep adds to 0 (the read
  word is masked): no clearing pass.
* The lanes share one row address ``r``; only a pass of ``M = rows`` (one row per lane,
  ``R = 1``) gives two consecutive beats the same accumulator word: the unit then leaves one
  idle cycle after every beat (``w`` at half rate) instead of a per-lane bypass.
* **Drain**: after the pass's final beat has been written, for each ``r`` one read of all
  lanes' word ``r`` (the RAM output holds), then one row per cycle through a ``rows:1``
  multiplexer, the offset ``(2**bits - 1 - 2z) * sum(x)`` (a serial shift-add product made
  while the pipeline empties) and the exact ``>> 1``, into a skid buffer on ``y``. The next
  pass starts after the drain (its first weight beat needs the accumulator RAMs).

Ports: as ``rtl_gen.gemv_common`` (``cmd``, ``x``, ``w``, ``y``; same payloads, the same
clamped commands and truncated vectors), without ``scale``/``q``/``shift`` (refused for
``tables: ram`` by the config). The weight order differs: ``golden_models.lutgemv_ram``
(for each table group, each plane ``bits-1..0``, one beat per local row ``r = 0..M/rows-1``;
``last`` on every sweep's final beat; ``M`` a multiple of ``rows``, at most ``m_max``).

Timing
------
One weight beat per cycle (``rows * g`` weight bits, ``rows * g / bits`` MACs) while a table
is built; a pass of ``M x K`` takes ``(K/g) * bits * (M/rows)`` beats (twice that when
``M = rows``). Table build: ``entries + 1`` cycles per group, hidden when a group's weights
take at least as long (``bits * M / rows >= entries + 1``), else ``w`` waits for tables.
Between passes: command clamp (3 cycles), pipeline flush and offset product
(``bits_max + 5`` cycles) and the drain (``M + 3`` cycles, ``y`` not held); ``timing(config,
m, k, bits)`` gives the count. Latency: a pass's final weight beat to its first result,
``bits_max + 9`` cycles.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models import lutgemv as golden

from .gemv_common import GemvStreamUnit
from .lutgemv_config import LutGemvConfig
from .lutgemv_ram_build import build_tables
from .skid import SkidBuffer

TABLE_DEPTH = 256  # one SB_RAM40_4K (256 x 16) per lane


def timing(config, m: int, k: int, bits: int) -> int:
    """Cycles of one pass in steady state, back to back, no stalls (module docstring)."""
    rows = m // config.rows
    beats = (k // config.group) * bits * rows * (2 if rows == 1 else 1)
    return beats + 3 + config.bits_max + 5 + m + 3


class LutGemvRam(wiring.Component):
    """RAM-table LUT-GEMV for one ``LutGemvConfig`` with ``tables: ram`` (module docstring)."""

    def __init__(self, config: LutGemvConfig):
        assert isinstance(config, LutGemvConfig) and config.tables == "ram"
        self.config = cfg = config
        self.free_bits = cfg.group - 1 if cfg.symmetric else cfg.group
        self.entries = 1 << self.free_bits
        self.slots = TABLE_DEPTH // self.entries
        self.slot_bits = (self.slots - 1).bit_length()
        self.entry_w = golden.entry_width(cfg)
        self.shifted_w = self.entry_w + cfg.bits_max - 1
        self.acc_w = golden.acc_width(cfg)
        self.out_w = golden.out_width(cfg)
        self.rows_max = cfg.m_max // cfg.rows
        self.row_bits = max(1, (self.rows_max - 1).bit_length())
        self.groups_max = cfg.k_max // cfg.group
        self.coef_w = cfg.bits_max + 2
        self.latency = cfg.bits_max + 9
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({
                "bits": unsigned(cfg.bits_max.bit_length()),
                "zero_point": unsigned(cfg.bits_max), "last": 1}))),
            "x": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(cfg.act_bits), cfg.group), "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "data": unsigned(cfg.rows * cfg.group), "last": 1}))),
            "y": Out(stream.Signature(data.StructLayout({"data": signed(self.out_w), "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        release = Signal(name="release_slot")
        tables = build_tables(self, m, release)
        lanes = self._lane_memories(m, tables.write)
        seq = self._sequence(m, tables, release)
        self._lanes(m, lanes, seq)
        self._drain(m, lanes, seq, tables)
        return m

    def _lane_memories(self, m, write):
        """Per lane: the table RAM (written by the builder's broadcast) and the accumulator RAM."""
        cfg, lanes = self.config, []
        for p in range(cfg.rows):
            table = Memory(shape=unsigned(self.entry_w), depth=TABLE_DEPTH, init=[])
            acc = Memory(shape=unsigned(self.acc_w), depth=1 << self.row_bits, init=[])
            m.submodules[f"table{p}"], m.submodules[f"acc{p}"] = table, acc
            tw, tr = table.write_port(), table.read_port()
            aw, ar = acc.write_port(), acc.read_port()
            m.d.comb += [tw.addr.eq(write.addr), tw.data.eq(write.data), tw.en.eq(write.en)]
            lanes.append(SimpleNamespace(table=tr, acc_read=ar, acc_write=aw))
        return lanes

    def _sequence(self, m, tables, release):
        """IDLE -> CLAMP (two cycles) -> RUN (weight beats) -> FLUSH (pipeline empty, offset
        product) -> DRAIN -> IDLE. Returns the beat register and the pass state."""
        cfg = self.config
        m.submodules.cmd_skid = cmd_skid = SkidBuffer(self.cmd.payload.shape())
        wiring.connect(m, wiring.flipped(self.cmd), cmd_skid.i)
        cmd = cmd_skid.o
        idle = Signal(init=1, name="idle")
        clamp_bits, clamp_zero, run = Signal(name="clamp_bits"), Signal(name="clamp_zero"), Signal(name="run")
        flush, drain = Signal(name="flush"), Signal(name="drain")
        raw = SimpleNamespace(bits=Signal.like(cmd.payload.bits, name="cmd_bits_raw"),
                              zero_point=Signal.like(cmd.payload.zero_point, name="cmd_zero_raw"))
        bits = Signal.like(cmd.payload.bits, name="bits")
        zero = Signal.like(cmd.payload.zero_point, name="zero")
        m.d.comb += cmd.ready.eq(idle)
        m.d.sync += [clamp_bits.eq(0), clamp_zero.eq(clamp_bits)]
        with m.If(cmd.valid & idle):
            m.d.sync += [raw.bits.eq(cmd.payload.bits), raw.zero_point.eq(cmd.payload.zero_point),
                         idle.eq(0), clamp_bits.eq(1)]
        bits_c = GemvStreamUnit._clamped_command(self, m, raw)[0]
        zero_c = GemvStreamUnit._clamped_command(self, m, SimpleNamespace(bits=bits, zero_point=raw.zero_point))[1]
        plane = Signal(range(max(2, cfg.bits_max)), name="plane")
        row = Signal(self.row_bits, name="row")
        last_row = Signal(self.row_bits, name="last_row")  # R - 1, learnt from each sweep's last
        slot = Signal(self.slot_bits, name="use_slot")
        fresh = Signal(name="fresh")  # the pass's first sweep: accumulators start from 0
        bubble = Signal(name="bubble")  # R = 1: the previous beat's word is still being written
        with m.If(clamp_bits):
            m.d.sync += bits.eq(bits_c)
        with m.If(clamp_zero):
            m.d.sync += [zero.eq(zero_c), run.eq(1), plane.eq(bits - 1), row.eq(0), fresh.eq(1)]
        have_table = tables.full != 0
        m.d.comb += self.w.ready.eq(run & have_table & ~bubble)
        accept = self.w.valid & self.w.ready
        sweep_end = self.w.payload.last
        m.d.sync += bubble.eq(accept & sweep_end & (row == 0))
        with m.If(accept):
            m.d.sync += row.eq(row + 1)
            with m.If(sweep_end):
                m.d.sync += [row.eq(0), last_row.eq(row), plane.eq(plane - 1), fresh.eq(0)]
                with m.If(plane == 0):  # the group's final sweep: its table slot is free
                    m.d.comb += release.eq(1)
                    m.d.sync += [slot.eq(slot + 1), plane.eq(bits - 1)]
                    with m.If(tables.slot_end.bit_select(slot, 1)):  # the vector's last group
                        m.d.sync += [run.eq(0), flush.eq(1)]
        beat = SimpleNamespace(valid=Signal(name="beat_valid"), weights=Signal(cfg.rows * cfg.group, name="beat_weights"),
                               slot=Signal.like(slot, name="beat_slot"), row=Signal.like(row, name="beat_row"),
                               plane=Signal.like(plane, name="beat_plane"), fresh=Signal(name="beat_fresh"))
        m.d.sync += [beat.valid.eq(accept), beat.weights.eq(self.w.payload.data), beat.slot.eq(slot),
                     beat.row.eq(row), beat.plane.eq(plane), beat.fresh.eq(fresh)]
        return SimpleNamespace(beat=beat, bits=bits, zero=zero, idle=idle, flush=flush, drain=drain,
                               last_row=last_row)

    def _lanes(self, m, lanes, seq):
        """Three stages per beat: table read (index decode), plane shift (negation folded),
        accumulator read-modify-write (the read issued a stage ahead)."""
        cfg, g, B = self.config, self.config.group, self.config.bits_max
        s1 = seq.beat
        s2 = SimpleNamespace(valid=Signal(name="s2_valid"), row=Signal.like(s1.row, name="s2_row"),
                             shift=Signal(range(B), name="s2_shift"), fresh=Signal(name="s2_fresh"))
        s3 = SimpleNamespace(valid=Signal(name="s3_valid"), row=Signal.like(s1.row, name="s3_row"),
                             fresh=Signal(name="s3_fresh"))
        m.d.sync += [s2.valid.eq(s1.valid), s2.row.eq(s1.row), s2.shift.eq(B - 1 - s1.plane),
                     s2.fresh.eq(s1.fresh), s3.valid.eq(s2.valid), s3.row.eq(s2.row), s3.fresh.eq(s2.fresh)]
        self.acc_read_addr = s2.row  # the drain takes the read ports over between passes
        for p, lane in enumerate(lanes):
            idx = s1.weights[p * g:(p + 1) * g]
            if cfg.symmetric:
                top = idx[g - 1]
                sub, neg = Mux(top, idx[:g - 1], ~idx[:g - 1]), ~top
            else:
                sub, neg = idx, Const(0, 1)
            m.d.comb += lane.table.addr.eq(Cat(sub, s1.slot))
            neg2, neg3 = Signal(name=f"neg{p}_s2"), Signal(name=f"neg{p}_s3")
            shifted = Signal(signed(self.shifted_w), name=f"shifted{p}")
            m.d.sync += [neg2.eq(neg), neg3.eq(neg2)]
            entry = lane.table.data ^ neg2.replicate(self.entry_w)  # ~T when negated
            # ones under a negated entry: (~T << i) + 2**i - 1, and the carry-in adds the last 1
            ext = Cat(neg2.replicate(B - 1), entry).as_signed() if B > 1 else entry.as_signed()
            m.d.sync += shifted.eq(ext >> s2.shift if B > 1 else ext)
            acc = Mux(s3.fresh, 0, lane.acc_read.data.as_signed())
            total = (Cat(Const(1, 1), acc).as_signed() + Cat(neg3, shifted).as_signed())[1:]
            m.d.comb += [lane.acc_write.addr.eq(s3.row), lane.acc_write.data.eq(total[:self.acc_w]),
                         lane.acc_write.en.eq(s3.valid)]
        self.pipe_busy = s1.valid | s2.valid | s3.valid

    def _drain(self, m, lanes, seq, tables):
        """FLUSH: wait for the pipeline, make the offset; DRAIN: one read of every lane's word
        ``r``, then ``rows`` results, one per cycle, through the skid buffer into ``y``."""
        cfg, P = self.config, self.config.rows
        m.submodules.y_skid = skid = SkidBuffer(self.y.payload.shape())
        wiring.connect(m, skid.o, wiring.flipped(self.y))
        advance = skid.i.ready  # a register: the drain moves only when y can take a beat
        ring_rd = Signal(name="sum_ring_rd")
        sum_x = Array(tables.ring)[ring_rd]
        offset, ready = self._offset(m, seq, sum_x)
        issuing = Signal(name="drain_issuing")
        d_row, d_lane = Signal.like(seq.last_row, name="drain_row"), Signal(range(P), name="drain_lane")
        with m.If(seq.flush & ~self.pipe_busy & ready):
            m.d.sync += [seq.flush.eq(0), seq.drain.eq(1), issuing.eq(1), d_row.eq(0), d_lane.eq(0)]
        # d0: the read (only for lane 0 of a row), d1: the lane multiplexer, d2: offset, >> 1
        d1 = SimpleNamespace(valid=Signal(name="d1_valid"), lane=Signal.like(d_lane, name="d1_lane"),
                             last=Signal(name="d1_last"))
        d2 = SimpleNamespace(valid=Signal(name="d2_valid"), value=Signal(signed(self.acc_w), name="d2_value"),
                             last=Signal(name="d2_last"))
        final = (d_row == seq.last_row) & (d_lane == P - 1)
        for lane in lanes:
            m.d.comb += [lane.acc_read.addr.eq(Mux(seq.drain, d_row, self.acc_read_addr)),
                         lane.acc_read.en.eq(~seq.drain | (advance & issuing & (d_lane == 0)))]
        with m.If(advance):
            m.d.sync += [d1.valid.eq(issuing), d1.lane.eq(d_lane), d1.last.eq(final),
                         d2.valid.eq(d1.valid), d2.last.eq(d1.last),
                         d2.value.eq(Array([lane.acc_read.data.as_signed() for lane in lanes])[d1.lane])]
            with m.If(issuing):
                m.d.sync += d_lane.eq(d_lane + 1)
                with m.If(d_lane == P - 1):
                    m.d.sync += [d_lane.eq(0), d_row.eq(d_row + 1)]
                with m.If(final):
                    m.d.sync += issuing.eq(0)
        m.d.comb += [skid.i.valid.eq(d2.valid), skid.i.payload.last.eq(d2.last),
                     skid.i.payload.data.eq(((d2.value + offset) >> 1)[:self.out_w])]
        done = seq.drain & ~issuing & ~d1.valid & ~d2.valid
        with m.If(done):
            m.d.sync += [seq.drain.eq(0), seq.idle.eq(1), ring_rd.eq(~ring_rd), self.offset_step.eq(0)]
            m.d.comb += tables.vec_done.eq(1)

    def _offset(self, m, seq, sum_x):
        """``(2**bits - 1 - 2z) * sum(x)``: Horner over the coefficient's bits (the MSB
        negative), one carry chain per step, started when the pass's weights are in."""
        cw = self.coef_w
        self.offset_step = step = Signal(range(cw + 2), name="offset_step")
        coef = Signal(signed(cw), name="offset_coef")
        addend = Signal.like(sum_x, name="offset_addend")
        offset = Signal(signed(self.acc_w + 1), name="offset")
        with m.If(seq.flush & (step == 0)):
            first = ((Const(1, cw) << seq.bits) - 1 - (seq.zero << 1))[:cw].as_signed()
            m.d.sync += [coef.eq(first), step.eq(1), addend.eq(Mux(first[-1], -sum_x, 0)), offset.eq(0)]
        with m.Elif(seq.flush & (step <= cw)):
            m.d.sync += [coef.eq(coef << 1), step.eq(step + 1), offset.eq((offset << 1) + addend),
                         addend.eq(Mux(coef[-2], sum_x, 0))]
        return offset, step == cw + 1
