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
  RAM (``amaranth.lib.memory.Memory``, ``slots * entries <= 256`` words of ``entry_width``
  bits: one SB_RAM40_4K / one DP16KD). The RAM holds a ring of ``slots = min(8, 256 /
  entries)`` tables, so the next groups' tables are built while the current one is used.
  ``sum(x)`` is a running register fed by each table's first entry (a two-entry ring,
  one per vector).
* **P = rows lanes.** A weight beat holds ``g`` bits for each lane; lane ``p`` reads
  ``T[slot, idx]`` (its read port is the lookup; symmetric: bit ``g-1`` of ``idx`` clear
  reads ``~idx`` and negates: ``~T`` registered, ``+1`` as the adder's carry-in) and
  read-modify-writes word ``(plane, r)`` of its accumulator RAM: one accumulator per row
  *and plane* (``bits_max * m_max / rows`` words of ``sum_width`` bits, the sum of one
  plane's table entries), so no lane shifts by the plane. The pass's first group reads a
  word that is never written and holds 0 (no clearing pass, no mask in the lanes).
* The lanes share one accumulator address and a beat's word is read in its stage s2 and
  written in s5 (both RAM outputs and the sum registered: ``_lanes``), so a word's next
  beat must come four cycles later: a group's ``U = bits * M / rows`` beats are followed by
  ``4 - U`` idle cycles when ``U < 4`` (small passes: ``R = 1`` at 1..3 bits, ``R = 2, 3`` at
  1 bit) instead of a bypass in every lane; the table build (``entries + 1 >= 5`` cycles
  per group for ``entries >= 4``) hides them except at ``g = 2`` symmetric.
* **Drain**: after the pass's final beat has been written, for each row ``r * rows + p`` in
  row order, its ``bits`` plane words are read from lane ``p`` (one read per cycle, a
  ``rows:1`` multiplexer), combined by one shared Horner step ``v = 2 v + acc_i`` (planes
  ``bits-1 .. 0``), and ``(v + (2**bits - 1 - 2z) * sum(x)) >> 1`` leaves through a skid
  buffer on ``y`` (the offset: a serial shift-add product made while the pipeline empties).
  The next pass starts after the drain (its first weight beat needs the accumulator RAMs).
  A vector truncated at ``k_max`` drains only once its ``x.last`` is in (its tail is
  taken and dropped meanwhile), so no vector's results leave before all of it has entered.

Ports: as ``rtl_gen.gemv_common`` (``cmd``, ``x``, ``w``, ``y``; same payloads, the same
clamped commands and truncated vectors), without ``scale``/``q``/``shift`` (refused for
``tables: ram`` by the config). The weight order differs: ``golden_models.lutgemv_ram``
(for each table group, each plane ``bits-1..0``, one beat per local row ``r = 0..M/rows-1``;
``last`` on every sweep's final beat; ``M`` a multiple of ``rows``, at most ``m_max``).

Timing
------
One weight beat per cycle (``rows * g`` weight bits, ``rows * g / bits`` MACs) while a table
is ready; a pass of ``M x K`` takes ``(K/g) * max(4, bits * M/rows)`` cycles of beats
(``bits * M/rows`` beats per group). Table build: ``entries + 1`` cycles per group, hidden when a
group's weights take at least as long (``bits * M / rows >= entries + 1``), else ``w`` waits
for tables. Between passes (``timing``): the command clamp (4 cycles), the pipeline flush
and the offset product (``bits_max + 5`` cycles) and the drain (``M * bits + 7`` cycles, ``y``
not held). Memories carry ``no_rw_check`` (no port reads a word in the cycle it is written:
the builder writes a slot no lane reads, an accumulator word is read again after its write
has landed: the idle cycles above), so Yosys adds no read-during-write bypass.

Clock (issue 12): ``w.ready`` and ``x.ready`` are flip-flops computed from the next state
(registered flags, thermometer slot counts, the in-use table's end flag at a queue's head);
every wide enable is one LUT of flip-flops; the drain's lane multiplexer is two registered
ranks; the builder's lane select is registered two steps ahead. ``BENCHMARKS.md`` names the
paths left (UP5K: ~17 ns control and adder paths; ECP5: the DP16KD's unregistered read).
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
MAX_SLOTS = 8  # tables built ahead of their use (more only grows the slot bookkeeping)
#: no port reads a word in the cycle it is written (module docstring), so Yosys need not
#: emulate read-during-write (a bypass per RAM, ~45 logic cells per lane on the UP5K)
NO_RW_CHECK = {"no_rw_check": 1, "ram_style": "block"}
#: a decision kept as its own net, so synthesis maps it apart from (not into) its consumers
KEEP = {"keep": 1}
OFFSET_LOW = 12  # low bits of the offset's split Horner adder (``_offset``)


def kept(m, value, name: str) -> Signal:
    """``value`` as a net of its own (``KEEP``): a boundary synthesis maps to, not through."""
    net = Signal(value.shape(), name=name, attrs=KEEP)
    m.d.comb += net.eq(value)
    return net


def timing(config, m: int, k: int, bits: int) -> int:
    """Cycles of one pass in steady state, back to back, no stalls (module docstring)."""
    rows = m // config.rows
    use = max(4, bits * rows)  # cycles of one group's sweeps (idle cycles when U < 4)
    build = (1 << (config.group - (1 if config.symmetric else 0))) + 1  # cycles of its table
    return (k // config.group) * max(use, build) + 4 + config.bits_max + 5 + m * bits + 7


class LutGemvRam(wiring.Component):
    """RAM-table LUT-GEMV for one ``LutGemvConfig`` with ``tables: ram`` (module docstring)."""

    def __init__(self, config: LutGemvConfig):
        assert isinstance(config, LutGemvConfig) and config.tables == "ram"
        self.config = cfg = config
        self.free_bits = cfg.group - 1 if cfg.symmetric else cfg.group
        self.entries = 1 << self.free_bits
        self.slots = min(MAX_SLOTS, TABLE_DEPTH // self.entries)
        self.slot_bits = (self.slots - 1).bit_length()
        self.entry_w = golden.entry_width(cfg)
        self.acc_w = golden.sum_width(cfg)  # one plane's accumulator: |sum_j T_j| <= k_max * 2**(act_bits-1)
        self.out_w = golden.out_width(cfg)
        self.rows_max = cfg.m_max // cfg.rows
        self.row_bits = max(1, (self.rows_max - 1).bit_length())
        self.plane_bits = max(1, (cfg.bits_max - 1).bit_length())
        #: the accumulator RAM: word (plane, r) at ``r + plane << row_bits``, and one word
        #: that is never written and reads 0 (the first group's "accumulator"): row
        #: ``rows_max`` of plane 0 if the row field has room, else one word after the rest
        spare = self.rows_max < 1 << self.row_bits
        self.zero_word = self.rows_max if spare else cfg.bits_max << self.row_bits
        self.acc_depth = max(cfg.bits_max << self.row_bits, self.zero_word + 1)
        self.acc_addr_w = (self.acc_depth - 1).bit_length()
        self.groups_max = cfg.k_max // cfg.group
        self.coef_w = cfg.bits_max + 2
        #: a pass's final weight beat to its first result (at ``bits_max``)
        self.latency = 2 * cfg.bits_max + 15
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
        release = Signal(name="release_slot", attrs=KEEP)
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
            table = Memory(shape=unsigned(self.entry_w), depth=self.slots * self.entries, init=[],
                           attrs=NO_RW_CHECK)
            acc = Memory(shape=unsigned(self.acc_w), depth=self.acc_depth,
                         init=[0] * self.acc_depth, attrs=NO_RW_CHECK)
            m.submodules[f"table{p}"], m.submodules[f"acc{p}"] = table, acc
            tw, tr = table.write_port(), table.read_port()
            aw, ar = acc.write_port(), acc.read_port()
            m.d.comb += [tw.addr.eq(write.addr), tw.data.eq(write.data), tw.en.eq(write.en)]
            lanes.append(SimpleNamespace(table=tr, acc_read=ar, acc_write=aw))
        return lanes

    def _sequence(self, m, tables, release):
        """IDLE -> CLAMP (three cycles) -> RUN (weight beats) -> FLUSH (pipeline empty, offset
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
        clamp_top = Signal(name="clamp_top")  # 2**bits - 1 registered between the two clamps
        m.d.sync += [clamp_bits.eq(0), clamp_top.eq(clamp_bits), clamp_zero.eq(clamp_top)]
        with m.If(cmd.valid & idle):
            m.d.sync += [raw.bits.eq(cmd.payload.bits), raw.zero_point.eq(cmd.payload.zero_point),
                         idle.eq(0), clamp_bits.eq(1)]
        bits_c = GemvStreamUnit._clamped_command(self, m, raw)[0]
        top = Signal.like(raw.zero_point, name="zero_top")  # 2**bits - 1 of the clamped bits
        m.d.sync += top.eq((Const(1, len(top) + 1) << bits) - 1)
        zero_c = Mux(raw.zero_point > top, top, raw.zero_point)  # (as GemvStreamUnit._clamped_command)
        plane = Signal(range(max(2, cfg.bits_max)), name="plane")
        row = Signal(self.row_bits, name="row")
        last_row = Signal(self.row_bits, name="last_row")  # R - 1, learnt from each sweep's last
        slot = Signal(self.slot_bits, name="use_slot")
        fresh = Signal(name="fresh")  # the pass's first group: every plane's words start from 0
        with m.If(clamp_bits):
            m.d.sync += bits.eq(bits_c)
        with m.If(clamp_zero):
            m.d.sync += [zero.eq(zero_c), run.eq(1), plane.eq(bits - 1), row.eq(0), fresh.eq(1)]
        # w.ready is a flip-flop (``w_ok``), its next value chosen by ``sweep`` (this cycle
        # takes a sweep's final beat) between two terms of registered flags only: the
        # table in use released (``plane_zero``), ends its vector (``cur_end``), the next
        # table built (``have``/``have2``/``last``), the next beat's same-word wait
        w_ok = Signal(name="w_ready_reg")
        plane_zero, row_zero, bits_one = Signal(name="plane_zero"), Signal(name="row_zero"), Signal(name="bits_one")
        release_ok = Signal(name="release_ok")  # w_ok & plane_zero, as a flip-flop of its own
        m.d.comb += self.w.ready.eq(w_ok)
        # three decisions of the same flip-flops, grouped differently so that none is built
        # from another (a chain of LUTs) but each is one LUT
        accept, sweep = Signal(name="w_accept"), Signal(name="sweep_end_accept", attrs=KEEP)
        valid, end = self.w.valid, self.w.payload.last
        m.d.comb += [accept.eq(valid & w_ok), sweep.eq((w_ok & end) & valid),
                     release.eq(release_ok & valid & end)]
        # U = bits * R beats between two uses of a word: 4 - U idle cycles after a group
        # (release) when U < 4 (rows[k]: the sweep's row is k, bits[k]: bits = k + 1)
        rows = [row_zero, Signal(name="row_one"), Signal(name="row_two")]
        bits_is = [bits_one, Signal(name="bits_two"), Signal(name="bits_three")]
        wait = Signal(2, name="same_word_wait")
        m.d.comb += wait.eq(self._same_word_next(rows, bits_is))
        gap = Signal(2, name="same_word_gap")  # idle cycles still to come
        with m.If(release):
            m.d.sync += gap.eq(Mux(wait != 0, wait - 1, 0))
        with m.Elif(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        ok_after_sweep = ~(plane_zero & (wait != 0)) & ~(plane_zero & tables.cur_end) \
            & (~plane_zero | tables.have2 | tables.last)
        ok_otherwise = (run | clamp_zero) & (tables.have | tables.last) & (gap == 0)
        # each next state a multiplexer selected by the one late signal (``sweep``) between
        # alternatives made of flip-flops only, kept as nets so synthesis cannot chain them
        after, otherwise = kept(m, ok_after_sweep, "w_ok_after_sweep"), kept(m, ok_otherwise, "w_ok_otherwise")
        zero_after = kept(m, Mux(plane_zero, bits_one, plane == 1), "plane_zero_after_sweep")
        zero_otherwise = kept(m, Mux(clamp_zero, bits == 1, plane_zero), "plane_zero_otherwise")
        m.d.sync += [w_ok.eq(Mux(sweep, after, otherwise)), plane_zero.eq(Mux(sweep, zero_after, zero_otherwise)),
                     release_ok.eq(Mux(sweep, kept(m, ok_after_sweep & zero_after, "release_ok_after_sweep"),
                                       kept(m, ok_otherwise & zero_otherwise, "release_ok_otherwise")))]
        with m.If(clamp_zero):
            m.d.sync += [*(b.eq(bits == k + 1) for k, b in enumerate(bits_is)), row_zero.eq(1),
                         rows[1].eq(0), rows[2].eq(0)]
        with m.Elif(accept):
            m.d.sync += [row_zero.eq(end), rows[1].eq(~end & row_zero), rows[2].eq(~end & rows[1])]
        with m.If(accept):
            m.d.sync += row.eq(Mux(end, 0, row + 1))
        with m.If(sweep):
            m.d.sync += [last_row.eq(row), plane.eq(Mux(plane_zero, bits - 1, plane - 1))]
        with m.If(release):  # the group's final sweep: its table slot is free
            m.d.sync += [slot.eq(slot + 1), fresh.eq(0)]
            with m.If(tables.cur_end):  # the vector's last group
                m.d.sync += [run.eq(0), flush.eq(1)]
        beat = SimpleNamespace(valid=Signal(name="beat_valid"), weights=Signal(cfg.rows * cfg.group, name="beat_weights"),
                               slot=Signal.like(slot, name="beat_slot"), row=Signal.like(row, name="beat_row"),
                               plane=Signal.like(plane, name="beat_plane"), fresh=Signal(name="beat_fresh"))
        m.d.sync += [beat.valid.eq(accept), beat.weights.eq(self.w.payload.data), beat.slot.eq(slot),
                     beat.row.eq(row), beat.plane.eq(plane), beat.fresh.eq(fresh)]
        return SimpleNamespace(beat=beat, bits=bits, zero=zero, idle=idle, flush=flush, drain=drain,
                               last_row=last_row)

    def _same_word_next(self, rows, bits_is):
        """Idle cycles after a group's final beat, ``4 - U`` when ``U = bits * R < 4``
        (``rows[k]``: the final sweep's last row is ``k``, ``R = k + 1``; ``bits_is[k]``:
        ``bits = k + 1``), so the next group's beats read their words four cycles after the
        last group's (s2 read, s5 write: ``_lanes``); a hook for fault tests."""
        r1 = Mux(bits_is[0], 3, Mux(bits_is[1], 2, Mux(bits_is[2], 1, 0)))
        return Mux(rows[0], r1, Mux(bits_is[0] & rows[1], 2, Mux(bits_is[0] & rows[2], 1, 0)))

    def _lanes(self, m, lanes, seq):
        """Per beat, five stages: s1 the beat; s2 the table address (index decode: symmetric
        tables read ``~idx`` when bit ``g-1`` is clear, and negate) and the accumulator read
        of word ``(plane, r)`` (the pass's first sweep reads the zero word); s3 both RAMs'
        outputs, registered; s4 ``acc + T`` (``~T`` and ``+1`` as the carry-in when negated),
        registered; s5 its write. A word's next read must come four cycles after the beat
        that wrote it (``_same_word_next``)."""
        cfg, g = self.config, self.config.group
        s1 = seq.beat
        stages = [s1]
        for k in (2, 3, 4, 5):
            prev = stages[-1]
            st = SimpleNamespace(valid=Signal(name=f"s{k}_valid"), addr=Signal(self.acc_addr_w, name=f"s{k}_addr"),
                                 fresh=Signal(name=f"s{k}_fresh"))
            m.d.sync += [st.valid.eq(prev.valid), st.fresh.eq(prev.fresh),
                         st.addr.eq(Cat(prev.row, prev.plane) if k == 2 else prev.addr)]
            stages.append(st)
        s2, s5 = stages[1], stages[4]
        self.acc_read_addr = Mux(s2.fresh, self.zero_word, s2.addr)
        #: the accumulator RAM outputs' register loads every cycle, in the drain only when it
        #: advances (the drain's lane multiplexer reads it: no RAM output before the mux)
        self.acc_load, self.lane_accs = Signal(name="acc_load"), []
        for p, lane in enumerate(lanes):
            idx = s1.weights[p * g:(p + 1) * g]
            if cfg.symmetric:
                top = idx[g - 1]
                sub, neg = Mux(top, idx[:g - 1], ~idx[:g - 1]), ~top
            else:
                sub, neg = idx, Const(0, 1)
            table_addr = Signal.like(lane.table.addr, name=f"table{p}_addr")
            negs = [Signal(name=f"neg{p}_s{k}") for k in (2, 3, 4)]
            entry = Signal(signed(self.entry_w), name=f"entry{p}")  # s4: ~T when negated
            acc = Signal(signed(self.acc_w), name=f"acc{p}_s4")
            total = Signal(self.acc_w, name=f"total{p}_s5")
            m.d.sync += [table_addr.eq(Cat(sub, s1.slot)), negs[0].eq(neg), negs[1].eq(negs[0]), negs[2].eq(negs[1]),
                         entry.eq(lane.table.data ^ negs[1].replicate(self.entry_w)),
                         total.eq((Cat(Const(1, 1), acc).as_signed() + Cat(negs[2], entry).as_signed())[1:])]
            with m.If(self.acc_load):
                m.d.sync += acc.eq(lane.acc_read.data)
            self.lane_accs.append(acc)
            m.d.comb += [lane.table.addr.eq(table_addr), lane.acc_write.addr.eq(s5.addr),
                         lane.acc_write.data.eq(total), lane.acc_write.en.eq(s5.valid)]
        self.pipe_busy = Cat(*(st.valid for st in stages)).any()

    def _drain(self, m, lanes, seq, tables):
        """FLUSH: wait for the pipeline, make the offset; DRAIN: for each row ``r * rows + p``
        its ``bits`` plane words from lane ``p`` (one read per cycle), a shared Horner step
        ``v = 2 v + acc_i``, then ``(v + offset) >> 1`` through the skid buffer into ``y``."""
        cfg, P = self.config, self.config.rows
        m.submodules.y_skid = skid = SkidBuffer(self.y.payload.shape())
        wiring.connect(m, skid.o, wiring.flipped(self.y))
        advance = skid.i.ready  # a register: the drain moves only when y can take a beat
        ring_rd = Signal(name="sum_ring_rd")
        sum_x = Array(tables.ring)[ring_rd]
        offset, ready = self._offset(m, seq, sum_x)
        issuing = Signal(name="drain_issuing")
        d_row, d_lane = Signal.like(seq.last_row, name="drain_row"), Signal(range(P), name="drain_lane")
        d_plane = Signal.like(seq.beat.plane, name="drain_plane")
        # a truncated vector's results wait for its x.last (the builder drops its tail until
        # then), so no vector leaves y before it has wholly entered x
        # the start condition is registered (a cycle late: once true it stays true while
        # FLUSH lasts), so the drain's wide start enable is one LUT of flip-flops
        start_ok = Signal(name="drain_start_ok")
        m.d.sync += start_ok.eq(seq.flush & ~self.pipe_busy & ready & ~tables.dropping)
        with m.If(seq.flush & start_ok):  # (the offset is made: its step starts over)
            m.d.sync += [seq.flush.eq(0), seq.drain.eq(1), issuing.eq(1), d_row.eq(0), d_lane.eq(0),
                         self.offset_step.eq(1), d_plane.eq(seq.bits - 1)]
        # d0: the read, d1: the RAM outputs, da: registered (the lanes' accumulator registers),
        # dm: the lane multiplexer in two ranks (4:1 per quad of lanes, then among the quads), d2: the Horner step, d3: offset and >> 1
        names = ("valid", "first", "end", "last")
        d1, da, dm, d2, d3 = (SimpleNamespace(**{n: Signal(name=f"d{k}_{n}") for n in names})
                              for k in (1, "a", "m", 2, 3))
        d1.lane, da.lane = Signal.like(d_lane, name="d1_lane"), Signal.like(d_lane, name="da_lane")
        m.d.comb += self.acc_load.eq(~seq.drain | advance)  # da: the lanes' registered RAM outputs
        quads = [self.lane_accs[q:q + 4] for q in range(0, P, 4)]
        dm.quad = Signal(range(len(quads)), name="dm_quad")
        dm.values = [Signal(signed(self.acc_w), name=f"dm_value{q}") for q in range(len(quads))]
        d2.value = Signal(signed(self.acc_w), name="d2_value")
        horner = Signal(signed(golden.acc_width(cfg)), name="drain_horner")
        final = (d_row == seq.last_row) & (d_lane == P - 1) & (d_plane == 0)
        for lane in lanes:
            m.d.comb += [lane.acc_read.addr.eq(Mux(seq.drain, Cat(d_row, d_plane), self.acc_read_addr)),
                         lane.acc_read.en.eq(~seq.drain | (advance & issuing))]
        with m.If(advance):
            m.d.sync += [d1.valid.eq(issuing), d1.lane.eq(d_lane), d1.first.eq(d_plane == seq.bits - 1),
                         d1.end.eq(d_plane == 0), d1.last.eq(final),
                         *(getattr(da, n).eq(getattr(d1, n)) for n in names), da.lane.eq(d1.lane),
                         *(getattr(dm, n).eq(getattr(da, n)) for n in names), dm.quad.eq(da.lane >> 2),
                         *(v.eq(Array(quad)[da.lane[:2]]) for v, quad in zip(dm.values, quads)),
                         *(getattr(d2, n).eq(getattr(dm, n)) for n in names),
                         d2.value.eq(Array(dm.values)[dm.quad]),
                         d3.valid.eq(d2.valid & d2.end), d3.last.eq(d2.last)]
            with m.If(d2.valid):
                m.d.sync += horner.eq(Mux(d2.first, d2.value, (horner << 1) + d2.value))
            with m.If(issuing):
                m.d.sync += d_plane.eq(d_plane - 1)
                with m.If(d_plane == 0):
                    m.d.sync += [d_plane.eq(seq.bits - 1), d_lane.eq(d_lane + 1)]
                    with m.If(d_lane == P - 1):
                        m.d.sync += [d_lane.eq(0), d_row.eq(d_row + 1)]
                with m.If(final):
                    m.d.sync += issuing.eq(0)
        m.d.comb += [skid.i.valid.eq(d3.valid), skid.i.payload.last.eq(d3.last),
                     skid.i.payload.data.eq(((horner + offset) >> 1)[:self.out_w])]
        # the drain's end, registered likewise (once empty, the pipeline stays empty)
        empty = Signal(name="drain_empty")
        m.d.sync += empty.eq(seq.drain & ~issuing & ~d1.valid & ~da.valid & ~dm.valid & ~d2.valid & ~d3.valid)
        done = seq.drain & empty
        with m.If(done):
            m.d.sync += [seq.drain.eq(0), seq.idle.eq(1), ring_rd.eq(~ring_rd)]
            m.d.comb += tables.vec_done.eq(1)

    def _offset(self, m, seq, sum_x):
        """``(2**bits - 1 - 2z) * sum(x)``: Horner over the coefficient's bits (the MSB
        negative), ``offset = 2 offset + addend`` per step, started when the pass's weights
        are in. The step's adder is split (``OFFSET_LOW`` low bits, then the rest one cycle
        later with the low part's carry), so no carry chain is longer than ~12 bits; the
        high part's last step lands the cycle after ``ready``, long before the drain's
        first result uses it."""
        cw = self.coef_w
        #: the step, one-hot (bit 0: not started, bit ``cw + 1``: done), so no comparison
        #: of a counter sits in the enables
        self.offset_step = step = Signal(cw + 2, init=1, name="offset_step")
        coef = Signal(signed(cw), name="offset_coef")
        addend = Signal.like(sum_x, name="offset_addend")
        # sum(x) and its negation registered (the ring holds the sum from its last group's
        # first table entries on, the group's whole build before FLUSH)
        sum_q, sum_neg = Signal.like(sum_x, name="offset_sum"), Signal.like(sum_x, name="offset_sum_neg")
        m.d.sync += [sum_q.eq(sum_x), sum_neg.eq(-sum_x)]
        width = golden.acc_width(self.config) + 1
        low_w = min(OFFSET_LOW, width - 1)
        low, high = Signal(low_w, name="offset_low"), Signal(signed(width - low_w), name="offset_high")
        carry, shifted, high_add = Signal(name="offset_carry"), Signal(name="offset_shifted"), \
            Signal(signed(width - low_w), name="offset_high_addend")
        high_step = Signal(name="offset_high_step")  # the high part of the last step is due
        busy = Signal(name="offset_busy")  # steps 1 .. cw
        stepping = seq.flush & busy
        wide = Cat(addend, addend[-1].replicate(width - len(addend)))  # sign-extended
        low_sum = Cat(Const(0, 1), low[:low_w - 1]) + wide[:low_w]
        m.d.sync += high_step.eq(stepping)
        with m.If(seq.flush & step[0]):
            first = ((Const(1, cw) << seq.bits) - 1 - (seq.zero << 1))[:cw].as_signed()
            m.d.sync += [coef.eq(first), step.eq(2), busy.eq(1), addend.eq(Mux(first[-1], sum_neg, 0)),
                         low.eq(0), high.eq(0)]
        with m.Elif(stepping):
            m.d.sync += [coef.eq(coef << 1), step.eq(step << 1), busy.eq(~step[cw]),
                         low.eq(low_sum[:low_w]), carry.eq(low_sum[low_w]), shifted.eq(low[low_w - 1]),
                         high_add.eq(wide[low_w:].as_signed()), addend.eq(Mux(coef[-2], sum_q, 0))]
        with m.If(high_step):  # the previous step's high part: 2 high + its bit from low + addend + carry
            m.d.sync += high.eq((Cat(carry, Cat(shifted, high).as_signed()[:width - low_w]).as_signed()
                                 + Cat(carry, high_add).as_signed())[1:])
        return Cat(low, high).as_signed(), step[cw + 1]
