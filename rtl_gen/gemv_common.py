"""The stream shell both GEMV units share: ports, double-buffered vector store, pass
sequencing, row accumulators and the serial result drain.

A GEMV unit computes ``y = (Q - z) @ x`` one activation vector at a time. A subclass says
what is stored per group of ``g`` activations (a lookup table, or the activations
themselves) and how ``rows`` row increments are made from a stored word and a weight beat;
everything else is here.

Ports (``amaranth.lib.stream``, payload structs, first field in the low bits)
-------------------------------------------------------------------------------
``cmd``  ``{bits: unsigned(bits_max.bit_length()), zero_point: unsigned(bits_max), last: 1}``
         one beat per vector: the run-time weight precision (1..bits_max) and zero point
         (``z < 2**bits``) of the next weight pass. ``last`` is ignored (one-beat frames).
         Out of range, both are **clamped** as the command is taken (never refused):
         ``bits`` into ``1..bits_max`` (0 runs at 1, above ``bits_max`` at ``bits_max``), then
         ``z`` into ``0..2**bits - 1`` of that precision (``golden_models.lutgemv.command``);
         the weight pass must carry the clamped precision's planes.
``x``    ``{data: ArrayLayout(signed(act_bits), g * batch), last: 1}`` one group of ``g``
         activations of each of the ``batch`` vectors per beat (lane ``v*g + l``: vector
         ``v``, lane ``l``; lane 0 in the low bits); ``last`` on the vectors' final group.
         (LUT-GEMV with ``lookups`` L: ``g`` here and below is ``span = L * g``, one beat
         and one stored word holding L table groups.)
         With ``exp_bits > 0`` a field ``shift: ArrayLayout(unsigned(exp_bits), batch)``
         sits between ``data`` and ``last``: the group's lanes are used as ``a << shift``
         (block-exponent offset; exact, lanes ``act_bits + 2**exp_bits - 1`` bits wide).
         Vectors hold a multiple of ``g`` activations (zero-pad), at most ``k_max``; a
         longer vector is **truncated**: its groups past ``k_max / g`` are consumed and dropped
         (not stored, not summed) and the pass covers its first ``k_max`` columns
         (``golden_models.lutgemv.used_length``).
``w``    ``{data: unsigned(weight_beat_bits), last: 1}`` the weight pass of one vector, in
         row tiles of ``rows`` rows (layout: the subclass docstring). ``last`` marks the final
         beat of the pass and is honoured only on a tile's final beat.
``y``    ``{data: signed(out_width), last: 1}`` one result per row, in row order; ``last``
         on the pass's final row. With ``batch = B > 1`` the field is
         ``ArrayLayout(signed(out_width), B)``: the row's results for the B vectors.
``scale`` (only when ``scale_bits > 0``) ``{data: unsigned(scale_bits), last: 1}`` one
         unsigned scale per output row, in row order (``last`` ignored); the row's result
         leaves as ``y * s``, exact in ``out_width = signed_width(±acc_bound * (2**scale_bits
         - 1))`` bits (``golden_models.lutgemv.out_width``; no rounding, no saturation). One
         multiplier after the drain: latency + 1 cycle; a missing scale beat holds ``y``.

``q``    (only when ``qgroup > 0``) ``{scale: unsigned(qscale_bits), zero: unsigned(bits_max),
         last: 1}`` one beat per row per quantisation group of ``qgroup`` columns, in the
         order row tile, group, row (``last`` ignored): the row's unsigned group scale and
         zero point (clamped into ``0..2**bits - 1`` like the command's; the ``cmd`` zero
         point is then ignored). ``y[r] = sum_s S[r,s] * ((Q - Z[r,s]) @ x)_s`` exact in
         ``out_width`` bits (``golden_models.lutgemv.grouped_model``).

Group scales (``qgroup = G``): the row accumulators hold one quantisation group's partial
sum (``acc_width`` from G, not K); at each group's end the ``rows`` partials move to the
holding bank (the same drain as a tile's results) and pass, one row per cycle, through the
group epilogue: ``v = (acc + c * sum(x_s)) >> sh`` (the subclass's zero-point correction:
LUT-GEMV ``c = 2**bits - 1 - 2Z``, ``sh = 1``; the baseline ``c = -Z``, ``sh = 0``), then
``total[r] += S * v`` in a ring of ``rows`` totals (one shift per row, so row ``r`` meets its
own total); a tile's final group sends the totals to ``y``. The vector's group sums
``sum(x_s)`` are made as it is stored and kept beside the table store (one word per group);
the epilogue is five registered stages with two multipliers (``c * sum``, ``S * v``).
Weights per group: ``bits * G / g`` beats (LUT-GEMV sweeps its planes inside each group);
groups of at least ``rows`` beats never wait for the epilogue.

Batched GEMV (``batch = B``, SAIL style): B activation vectors travel together and share
each weight beat: the store builds B tables (B table pipelines, B-times wider memory word)
and every row index looks up all B tables in the same cycle (``B * rows`` accumulators),
so a weight pass serves B vectors at the cycle cost of one. The row scale (if any) applies
to the row's B results (B multipliers).

Vectors, commands and passes pair up in order: the i-th ``cmd`` beat and the i-th ``x``
vector are used by the i-th weight pass.

Behaviour
---------
The store holds two vectors (double buffer): vector ``v+1`` is stored while pass ``v`` runs;
``x`` stalls only when both buffers are full (a buffer is in use from its vector's first beat
to its pass's final weight beat; the bench checks this every cycle). A pass starts when its command and its vector
are in; between passes the pipeline drains (``restart_cycles`` cycles, stated by the
subclass). Each row tile's ``rows`` results move to a holding bank at the tile's end and
leave one per cycle through ``y`` while the next tile runs; the weight stream stalls only if
a tile ends before the previous tile's results have all left (tiles shorter than ``rows``
beats) or ``y`` is held. A synchronous reset abandons everything in flight.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models import lutgemv as golden

from .fixed import StallPipeline


class GemvStreamUnit(wiring.Component):
    """Base class; subclasses define ``weight_beat_bits``, ``row_stages``, ``planes_of``,
    ``_store`` (one vector's group lanes -> the stored word, the group's activation sum or
    None, and its register depth; called once per batch vector) and ``_rows`` (from the
    ``batch`` stored words: ``row_stages`` pipeline stages giving, per vector and per row, a
    signed increment and a carry-in bit), and optionally ``_prepare``/``_commit``/``_capture``/``_finish``."""

    #: extra cycles a pass needs before its first weight beat (subclass may raise it)
    prepare_cycles = 0

    def __init__(self, config):
        self.config = cfg = config
        self.acc_w = golden.acc_width(cfg)
        self.scale_bits = golden.scale_bits(cfg)
        self.batch = golden.batch(cfg)
        self.exp_bits = golden.exp_bits(cfg)
        self.lane_w = golden.lane_width(cfg)  # an activation after its group shift
        self.span = golden.span(cfg)  # activations per x beat (one stored word)
        self.groups_max = cfg.k_max // self.span
        self.addr_bits = max(1, (self.groups_max - 1).bit_length())
        self.qgroup = golden.qgroup(cfg)
        #: table groups per quantisation group, as a bit count (0 without qgroup)
        self.seg_log = ((self.qgroup // self.span) - 1).bit_length() if self.qgroup else 0
        #: cycles from accepting a tile's final weight beat to its first result on ``y``
        self.latency = self.row_stages + 3 + (1 if self.scale_bits else 0) + (5 if self.qgroup else 0)
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({
                "bits": unsigned(cfg.bits_max.bit_length()),
                "zero_point": unsigned(cfg.bits_max), "last": 1}))),
            "x": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(cfg.act_bits), self.span * self.batch),
                **({"shift": data.ArrayLayout(unsigned(self.exp_bits), self.batch)}
                   if self.exp_bits else {}),
                "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "data": unsigned(self.weight_beat_bits), "last": 1}))),
            "y": Out(stream.Signature(data.StructLayout({
                "data": self._results(golden.out_width(cfg)), "last": 1}))),
            **({"scale": In(stream.Signature(data.StructLayout({
                "data": unsigned(self.scale_bits), "last": 1})))} if self.scale_bits else {}),
            **({"q": In(stream.Signature(data.StructLayout({
                "scale": unsigned(golden.qscale_bits(cfg)), "zero": unsigned(cfg.bits_max),
                "last": 1})))} if self.qgroup else {}),
        })

    def _results(self, width):
        """Shape of one row's results: one signed value, or an array of ``batch`` of them."""
        return signed(width) if self.batch == 1 else data.ArrayLayout(signed(width), self.batch)

    def _fields(self, results):
        """The ``batch`` results of a row-result view, as a list."""
        return [results] if self.batch == 1 else [results[v] for v in range(self.batch)]

    def _lanes(self, m, vector):
        """Batch vector ``vector``'s ``g`` lanes of the ``x`` beat, shifted left by the beat's
        group shift if the point has ``exp_bits`` (exact, ``lane_w`` bits)."""
        lanes = [self.x.payload.data[vector * self.span + lane] for lane in range(self.span)]
        if not self.exp_bits:
            return lanes
        out = [Signal(signed(self.lane_w), name=f"lane{vector}_{lane}") for lane in range(len(lanes))]
        shift = self.x.payload.shift[vector]
        m.d.comb += [o.eq(a << shift) for o, a in zip(out, lanes)]
        return out

    # ------------------------------------------------------------------ elaboration

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        batch = self.batch
        stored = [self._store(m, self._lanes(m, v)) for v in range(batch)]  # one per batch vector
        word = Cat(*(st[0] for st in stored))
        word_w, group_sums, store_depth = len(stored[0][0]), [st[1] for st in stored], stored[0][2]
        m.submodules.store = memory = Memory(shape=unsigned(len(word)),
                                             depth=2 << self.addr_bits, init=[])
        write, read = memory.write_port(), memory.read_port()

        # ---- store side: x -> (subclass pipeline) -> memory[buffer][group]
        full = Signal(2)
        n_groups = [Signal(range(self.groups_max), name=f"n_groups{b}") for b in range(2)]
        sums = [[Signal(signed(golden.sum_width(cfg)), name=f"sum_x{b}_{v}") for v in range(batch)]
                for b in range(2)]
        in_buffer = Signal()
        in_flight = Signal(2)  # a vector's last group is in the store pipeline
        m.d.comb += self.x.ready.eq(self._x_ready(m, ~(full | in_flight).bit_select(in_buffer, 1)))
        take = self.x.valid & self.x.ready
        with m.If(take & self.x.payload.last):
            m.d.sync += [in_buffer.eq(~in_buffer), in_flight.bit_select(in_buffer, 1).eq(1)]
        valid, last, buffer = take, self.x.payload.last, in_buffer
        for stage in range(store_depth):
            valid, last, buffer = (self._sreg(m, v, f"{n}_store{stage}") for v, n in
                                   ((valid, "valid"), (last, "last"), (buffer, "buffer")))
        count = Signal(range(self.groups_max + 1))
        room = Signal()  # the vector has fewer than k_max / g groups stored (else: drop)
        m.d.comb += room.eq(count != self.groups_max)
        running = [Signal(signed(golden.sum_width(cfg)), name=f"running_sum{v}") for v in range(batch)]
        m.d.comb += [write.en.eq(valid & room), write.data.eq(word),
                     write.addr.eq(Cat(count[:self.addr_bits], buffer))]
        with m.If(valid):
            with m.If(room):
                m.d.sync += count.eq(count + 1)
                for acc, part in zip(running, group_sums):
                    if part is not None:
                        m.d.sync += acc.eq(acc + part)
            with m.If(last):
                m.d.sync += [count.eq(0), full.bit_select(buffer, 1).eq(1),
                             in_flight.bit_select(buffer, 1).eq(0)]
                m.d.sync += [acc.eq(0) for acc in running]
                for b in range(2):
                    with m.If(buffer == b):
                        # the last group index (a truncated vector: the last one stored)
                        m.d.sync += n_groups[b].eq(Mux(room, count, self.groups_max - 1))
                        m.d.sync += [total.eq(Mux(room, acc + part, acc)) for total, acc, part
                                     in zip(sums[b], running, group_sums) if part is not None]
        if self.qgroup:  # one activation sum per quantisation group, beside the table store
            assert group_sums[0] is not None
            qs_w = golden.qsum_width(cfg)
            n_seg = self.groups_max >> self.seg_log
            seg_bits = max(0, (n_seg - 1).bit_length())
            m.submodules.qsums = qmem = Memory(shape=signed(qs_w), depth=2 << seg_bits, init=[])
            qwrite, self._qread = qmem.write_port(), qmem.read_port()
            seg_run = Signal(signed(qs_w), name="seg_running_sum")
            closes = count[:self.seg_log].all() if self.seg_log else Const(1)
            seg_total = seg_run + group_sums[0]
            m.d.comb += [qwrite.en.eq(valid & room & (closes | last)), qwrite.data.eq(seg_total),
                         qwrite.addr.eq(Cat(count[self.seg_log:self.seg_log + seg_bits], buffer))]
            with m.If(valid & room):
                m.d.sync += seg_run.eq(Mux(closes | last, 0, seg_total))
            with m.If(valid & last):
                m.d.sync += seg_run.eq(0)
            self._seg_bits = seg_bits

        # ---- pass sequencing: IDLE (wait cmd + vector) -> PREPARE -> RUN
        out_buffer = Signal()
        bits_next = Signal.like(self.cmd.payload.bits)
        zero_next = Signal.like(self.cmd.payload.zero_point)
        self.bits = Signal.like(self.cmd.payload.bits)
        self.zero = Signal.like(self.cmd.payload.zero_point)
        last_group = Signal.like(n_groups[0])  # compared with the group counter (no carry chain)
        sum_x = [Signal.like(sums[0][v], name=f"sum_x{v}") for v in range(batch)]
        group = Signal.like(count)
        plane = Signal(range(max(2, cfg.bits_max)))
        hold_busy = Signal()
        group_end, tile_end = Signal(), Signal()
        seg_end, seg_close, seg_first = Signal(), Signal(), Signal()
        seg_base = Signal.like(count) if self.qgroup else Const(0, 1)
        flags_last_stage = {}
        advance = Signal()
        pipe = StallPipeline(m, advance)
        pipeline_valid = []
        pipe_busy = Signal()

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(full.bit_select(out_buffer, 1))
                with m.If(self.cmd.valid & self.cmd.ready):
                    bits_c, zero_c = self._clamped_command(m)
                    m.d.sync += [bits_next.eq(bits_c), zero_next.eq(zero_c),
                                 last_group.eq(Mux(out_buffer, n_groups[1], n_groups[0])),
                                 *(sx.eq(Mux(out_buffer, s1, s0))
                                   for sx, s0, s1 in zip(sum_x, sums[0], sums[1]))]
                    m.next = "PREPARE"
            with m.State("PREPARE"):
                ready = self._prepare(m, bits_next, zero_next, sum_x)
                with m.If(self._may_start(ready, pipe_busy)):
                    m.d.sync += [self.bits.eq(bits_next), self.zero.eq(zero_next),
                                 plane.eq(self.planes_of(bits_next) - 1), group.eq(0),
                                 group_end.eq(last_group == 0), seg_first.eq(1)]
                    if self.qgroup:
                        m.d.sync += seg_base.eq(0)
                    self._commit(m)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.w.ready.eq(advance)
                accept = self.w.valid & advance
                with m.If(accept):  # group_end is registered: no compare on the handshake path
                    m.d.sync += [group.eq(group + 1), group_end.eq(group + 1 == last_group)]
                    with m.If(seg_end):  # a quantisation group's (or, without qgroup, the tile's) end
                        with m.If(plane != 0):  # the same groups again, next plane
                            m.d.sync += [group.eq(seg_base), group_end.eq(seg_base == last_group),
                                         plane.eq(plane - 1)]
                        with m.Else():
                            m.d.sync += [plane.eq(self.planes_of(self.bits) - 1), seg_first.eq(0)]
                            if self.qgroup:
                                m.d.sync += seg_base.eq(group + 1)
                            with m.If(group_end):  # the tile's end
                                m.d.sync += [group.eq(0), group_end.eq(last_group == 0), seg_first.eq(1)]
                                if self.qgroup:
                                    m.d.sync += seg_base.eq(0)
                    with m.If(tile_end & self.w.payload.last):
                        m.d.sync += [full.bit_select(out_buffer, 1).eq(0), out_buffer.eq(~out_buffer)]
                        m.next = "IDLE"

        # ---- read pipeline: memory read, subclass row stages, accumulate
        in_run = Signal()
        m.d.comb += [in_run.eq(self.w.ready), tile_end.eq(group_end & (plane == 0)),
                     seg_end.eq(group_end | (group[:self.seg_log].all() if self.qgroup else 0)),
                     seg_close.eq(seg_end & (plane == 0))]
        m.d.comb += [read.en.eq(advance), read.addr.eq(Cat(group[:self.addr_bits], out_buffer))]
        if self.qgroup:
            qread = self._qread
            m.d.comb += [qread.en.eq(advance),
                         qread.addr.eq(Cat(group[self.seg_log:self.seg_log + self._seg_bits], out_buffer))]
        s = pipe.stage("read", valid=self.w.valid & in_run, weights=self.w.payload.data, plane=plane,
                       tile_end=tile_end, pass_end=tile_end & self.w.payload.last,
                       seg_close=seg_close, seg_first=seg_first)
        pipeline_valid.append(s.valid)
        first = pipe.stages
        words = [read.data[v * word_w:(v + 1) * word_w] for v in range(batch)]
        increments = [inc for per_vector in self._rows(m, pipe, words, s.weights, s.plane)
                      for inc in per_vector]  # vector-major: index v * rows + r
        assert pipe.stages - first == self.row_stages
        flags = s
        for stage in range(self.row_stages):
            extra = {}
            if self.qgroup:  # the group's activation sum (read with the table word)
                extra = dict(seg_sum=qread.data if stage == 0 else flags.seg_sum)
            flags = pipe.stage(f"row{stage}", valid=flags.valid, tile_end=flags.tile_end,
                               pass_end=flags.pass_end, seg_close=flags.seg_close,
                               seg_first=flags.seg_first, **extra)
            pipeline_valid.append(flags.valid)
        m.d.comb += pipe_busy.eq(Cat(*pipeline_valid).any())
        m.d.comb += advance.eq(~(flags.valid & flags.seg_close & hold_busy))

        # ---- row accumulators (one carry chain each; carry-in folds a negation's +1)
        rows = cfg.rows
        accs = [Signal(signed(self.acc_w), name=f"acc{v}_{r}") for v in range(batch) for r in range(rows)]
        hold = [Signal(signed(self.acc_w), name=f"hold{v}_{r}") for v in range(batch) for r in range(rows)]
        sums_next = []
        for acc, (value, carry) in zip(accs, increments):
            wide = Cat(Const(1, 1), acc).as_signed() + Cat(carry, value.as_signed()).as_signed()
            sums_next.append(wide[1:self.acc_w + 1].as_signed())
        hold_count = Signal(range(rows + 1))
        hold_last = Signal()
        hold_group = {}  # qgroup: the group's flags and activation sum, and the pass precision
        if self.qgroup:
            hold_group = dict(first=Signal(name="hold_first"), tlast=Signal(name="hold_tile_last"),
                              sumx=Signal.like(flags.seg_sum, name="hold_sumx"),
                              bits=Signal.like(self.bits, name="hold_bits"))
        m.d.comb += hold_busy.eq(hold_count != 0)
        with m.If(flags.valid & advance):
            m.d.sync += [a.eq(n) for a, n in zip(accs, sums_next)]
            with m.If(flags.seg_close):
                m.d.sync += [a.eq(0) for a in accs]
                m.d.sync += [h.eq(n) for h, n in zip(hold, sums_next)]
                m.d.sync += [hold_count.eq(rows), hold_last.eq(flags.pass_end)]
                if self.qgroup:
                    m.d.sync += [hold_group["first"].eq(flags.seg_first),
                                 hold_group["tlast"].eq(flags.tile_end),
                                 hold_group["sumx"].eq(flags.seg_sum), hold_group["bits"].eq(self.bits)]
                self._capture(m)

        # ---- drain: one row result per cycle through y (through the scale stage or the
        # group epilogue if any)
        raw = (self._group_stage(m) if self.qgroup else
               self._scale_stage(m) if self.scale_bits else self.y)
        with m.If(hold_busy & (~raw.valid | raw.ready)):
            m.d.sync += [raw.valid.eq(1), raw.payload.last.eq(hold_last & (hold_count == 1)),
                         hold_count.eq(hold_count - 1)]
            m.d.sync += [getattr(raw.payload, k).eq(v) for k, v in hold_group.items()]
            m.d.sync += [out.eq(self._finish(m, hold[v * rows], v))
                         for v, out in enumerate(self._fields(raw.payload.data))]
            m.d.sync += [hold[v * rows + r].eq(hold[v * rows + r + 1])
                         for v in range(batch) for r in range(rows - 1)]
        with m.Elif(raw.ready):
            m.d.sync += raw.valid.eq(0)
        return m

    def _group_stage(self, m):
        """The group epilogue (``qgroup``; module docstring): joins each row's group partial
        with its ``q`` beat; five stages under one enable (``~y.valid | y.ready``): register,
        ``c * sum(x_s)``, ``v = (acc + c * sum) >> sh``, ``S * v``, ``total += S * v`` (the
        ring of ``rows`` totals; the tile's final group sends the total to ``y``). Returns
        the stream of group partials feeding it."""
        cfg = self.config
        out_w = golden.out_width(cfg)
        raw = stream.Signature(data.StructLayout({
            "data": signed(self.acc_w), "last": 1, "first": 1, "tlast": 1,
            "sumx": signed(golden.qsum_width(cfg)), "bits": unsigned(cfg.bits_max.bit_length())})).create(
            path=("group",))
        y, q = self.y, self.q
        adv = Signal(name="epilogue_advance")
        m.d.comb += adv.eq(~y.valid | y.ready)
        m.d.comb += [raw.ready.eq(q.valid & adv), q.ready.eq(raw.valid & adv)]
        e = StallPipeline(m, adv)
        top = Signal.like(q.payload.zero, name="group_zero_top")  # 2**bits - 1
        with m.Switch(raw.payload.bits):
            for b in range(1, cfg.bits_max + 1):
                with m.Case(b):
                    m.d.comb += top.eq((1 << b) - 1)
        zero = Mux(q.payload.zero > top, top, q.payload.zero)
        s = e.stage("group_in", valid=raw.valid & q.valid, acc=raw.payload.data,
                    coef=self._group_coef(raw.payload.bits, zero), sumx=raw.payload.sumx,
                    scale=q.payload.scale, first=raw.payload.first, tlast=raw.payload.tlast,
                    last=raw.payload.last)
        s = e.stage("group_offset", valid=s.valid, acc=s.acc, offset=s.coef * s.sumx, scale=s.scale,
                    first=s.first, tlast=s.tlast, last=s.last)
        value = ((s.acc + s.offset) >> self.group_shift)[:self.acc_w].as_signed()
        s = e.stage("group_value", valid=s.valid, value=value, scale=s.scale,
                    first=s.first, tlast=s.tlast, last=s.last)
        s = e.stage("group_scaled", valid=s.valid, product=s.value * s.scale,
                    first=s.first, tlast=s.tlast, last=s.last)
        ring = [Signal(signed(out_w), name=f"group_total{r}") for r in range(cfg.rows)]
        total = (Mux(s.first, 0, ring[0]) + s.product)[:out_w].as_signed()
        with m.If(adv):
            m.d.sync += [y.valid.eq(s.valid & s.tlast), y.payload.last.eq(s.last),
                         y.payload.data.eq(total)]
            with m.If(s.valid):
                m.d.sync += [a.eq(b) for a, b in zip(ring, ring[1:] + [total])]
        return raw

    def _group_coef(self, bits, zero):
        """The zero-point coefficient ``c`` of the group epilogue (subclass)."""
        raise NotImplementedError

    #: the group epilogue's final right shift (subclass)
    group_shift = 0

    def _clamped_command(self, m):
        """The ``cmd`` beat's ``(bits, zero_point)`` clamped (``golden_models.lutgemv.command``):
        ``bits`` into ``1..bits_max``, then the zero point into ``0..2**bits - 1``."""
        cfg, cmd = self.config, self.cmd.payload
        bits = Signal.like(cmd.bits, name="cmd_bits_clamped")
        zero = Signal.like(cmd.zero_point, name="cmd_zero_clamped")
        top = Signal.like(cmd.zero_point, name="cmd_zero_top")  # 2**bits - 1
        m.d.comb += bits.eq(Mux(cmd.bits == 0, 1, Mux(cmd.bits > cfg.bits_max, cfg.bits_max, cmd.bits)))
        with m.Switch(bits):
            for b in range(1, cfg.bits_max + 1):
                with m.Case(b):
                    m.d.comb += top.eq((1 << b) - 1)
        m.d.comb += zero.eq(Mux(cmd.zero_point > top, top, cmd.zero_point))
        return bits, zero

    def _x_ready(self, m, free):
        """``x.ready``: the buffer the next group goes to is free (a hook for fault tests)."""
        return free

    def _may_start(self, ready, pipe_busy):
        """A prepared pass starts only once the previous pass has left the read pipeline (its
        last tile may be stalled behind a held ``y``; the pass registers must not change under it)."""
        return ready & ~pipe_busy

    def _scale_stage(self, m):
        """Per-row output scale: joins each unscaled result with its ``scale`` beat and
        registers ``y * s`` (one multiplier, exact in ``out_width`` bits). Returns the
        unscaled result stream feeding it."""
        raw = stream.Signature(data.StructLayout({"data": self._results(self.acc_w), "last": 1})).create(
            path=("raw",))
        y, scale = self.y, self.scale
        advance = ~y.valid | y.ready
        m.d.comb += [raw.ready.eq(scale.valid & advance), scale.ready.eq(raw.valid & advance)]
        with m.If(raw.valid & scale.valid & advance):
            m.d.sync += [y.valid.eq(1), y.payload.last.eq(raw.payload.last)]
            for out, value in zip(self._fields(y.payload.data), self._fields(raw.payload.data)):
                product = value * scale.payload.data  # one multiplier per batch vector
                m.d.sync += out.eq(product[:golden.out_width(self.config)].as_signed())
        with m.Elif(y.ready):
            m.d.sync += y.valid.eq(0)
        return raw

    def _sreg(self, m, value, name):
        """A store-side register (the store pipeline never stalls)."""
        value = value if hasattr(value, "shape") else Const(value)
        reg = Signal(value.shape(), name=name)
        m.d.sync += reg.eq(value)
        return reg

    # ------------------------------------------------------------------ subclass hooks

    def _prepare(self, m, bits, zero, sum_x):
        """Work before a pass (combinational 'ready' when done); ``sum_x``: one activation
        sum per batch vector. Default: nothing."""
        return Const(1)

    def _commit(self, m):
        """Registers to load as the pass starts (pipeline empty)."""

    def _capture(self, m):
        """Registers to load with the holding bank at a tile's end."""

    def _finish(self, m, value, vector):
        """The result leaving ``y`` for a held accumulator value of batch vector ``vector``."""
        return value
