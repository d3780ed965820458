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

Timing (the pipeline idiom of ``rtl_gen.pipeline``): the read pipeline's enable
``advance`` is a register decided a cycle ahead (``rtl_gen.gemv_drain``), ``w.ready`` is
that register in the RUN state, the memory output is registered before any logic, and
``y``, ``scale`` and ``q`` pass through ``SkidBuffer``s (registered ready), so no port's
valid or ready reaches a wide clock enable.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.golden_models import lutgemv as golden

from .gemv_drain import HeldStages, build_drain, group_stage, scale_stage
from .gemv_store import build_store
from .skid import SkidBuffer


class GemvStreamUnit(wiring.Component):
    """Base class; subclasses define ``weight_beat_bits``, ``row_stages``, ``planes_of``,
    ``_store`` (one vector's group lanes -> the stored word, the group's activation sum or
    None, the word's register depth and the sum's; called once per batch vector;
    ``rtl_gen.gemv_store``) and ``_rows`` (from the
    ``batch`` stored words: ``row_stages`` pipeline stages giving, per vector and per row, a
    signed increment and a carry-in bit), and optionally ``_prepare``/``_commit``/``_capture``/``_finish``.
    The parts: ``rtl_gen.gemv_store`` (the vector store), the sequencer and read pipeline
    here, ``rtl_gen.gemv_drain`` (accumulators, holding bank, drain, scale and group stages).
    ``_x_ready``, ``_may_start``, ``_clamped_command``, ``_scale_stage`` and ``_group_stage``
    are methods so that fault tests can override them."""

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
        self.latency = self.row_stages + 5 + (1 if self.scale_bits else 0) + (5 if self.qgroup else 0)
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
        store = build_store(self, m)  # x -> tables (or activations) in a two-vector memory
        advance = Signal(init=1, name="advance")  # the read pipeline's enable: a register
        pipe_busy = Signal()
        seq = self._sequence(m, store, advance, pipe_busy)
        last, before, increments = self._read_pipeline(m, store, seq, advance, pipe_busy)
        build_drain(self, m, advance, last, before, increments)
        return m

    def _sequence(self, m, store, advance, pipe_busy):
        """Pass sequencing: IDLE (wait for a command and a stored vector) -> PREPARE (the
        subclass's ``_prepare``; the previous pass out of the read pipeline) -> RUN (weight
        beats while ``advance``; group, plane and quantisation-group counters)."""
        cfg = self.config
        full, n_groups, sums = store.full, store.n_groups, store.sums
        seq = SimpleNamespace(out_buffer=Signal(), group=Signal(range(self.groups_max + 1)),
                              plane=Signal(range(max(2, cfg.bits_max))), group_end=Signal(),
                              tile_end=Signal(), seg_end=Signal(), seg_close=Signal(),
                              seg_first=Signal(), in_run=Signal(name="run"))
        out_buffer, group, plane, run = seq.out_buffer, seq.group, seq.plane, seq.in_run
        plane_zero = Signal(name="plane_zero")  # plane == 0, kept beside it (registered)
        group_end, tile_end, seg_end, seg_first = seq.group_end, seq.tile_end, seq.seg_end, seq.seg_first
        bits_next = Signal.like(self.cmd.payload.bits)
        zero_next = Signal.like(self.cmd.payload.zero_point)
        self.bits = Signal.like(self.cmd.payload.bits)
        self.zero = Signal.like(self.cmd.payload.zero_point)
        last_group = Signal.like(n_groups[0])  # compared with the group counter (no carry chain)
        sum_x = [Signal.like(sums[0][v], name=f"sum_x{v}") for v in range(self.batch)]
        seg_base = Signal.like(group) if self.qgroup else Const(0, 1)
        m.submodules.cmd_skid = cmd_skid = SkidBuffer(self.cmd.payload.shape())
        wiring.connect(m, wiring.flipped(self.cmd), cmd_skid.i)  # registered cmd.ready
        cmd = cmd_skid.o
        # the read pipeline was empty in the previous cycle; no beat enters outside RUN, so
        # it still is (a register: the OR of the stages' valid bits stays off the FSM's path)
        pipe_idle = Signal(name="pipe_idle")
        m.d.sync += pipe_idle.eq(~pipe_busy)
        # one flag per state (IDLE, PREPARE, START, RUN = ``run``), so each flag's next
        # state and each load's enable is a small function of registers
        idle = Signal(init=1, name="idle")
        prepare, start = Signal(name="prepare"), Signal(name="start")
        m.d.comb += cmd.ready.eq(idle & full.bit_select(out_buffer, 1))
        m.d.sync += start.eq(0)
        # the command is clamped over two cycles after it is taken (``clamp_bits``, then
        # ``clamp_zero``: the zero point against the clamped precision), each from registers
        raw = SimpleNamespace(bits=Signal.like(cmd.payload.bits, name="cmd_bits_raw"),
                              zero_point=Signal.like(cmd.payload.zero_point, name="cmd_zero_raw"))
        clamp_bits, clamp_zero = Signal(name="clamp_bits"), Signal(name="clamp_zero")
        m.d.sync += [clamp_bits.eq(0), clamp_zero.eq(clamp_bits)]
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [raw.bits.eq(cmd.payload.bits), raw.zero_point.eq(cmd.payload.zero_point),
                         last_group.eq(Mux(out_buffer, n_groups[1], n_groups[0])),
                         *(sx.eq(Mux(out_buffer, s1, s0))
                           for sx, s0, s1 in zip(sum_x, sums[0], sums[1]))]
            m.d.sync += [idle.eq(0), clamp_bits.eq(1)]
        bits_c = self._clamped_command(m, raw)[0]
        # (clamping the clamped precision again leaves it as it is)
        zero_c = self._clamped_command(m, SimpleNamespace(bits=bits_next, zero_point=raw.zero_point))[1]
        with m.If(clamp_bits):
            m.d.sync += bits_next.eq(bits_c)
        with m.If(clamp_zero):
            m.d.sync += [zero_next.eq(zero_c), prepare.eq(1)]
        with m.If(prepare):
            ready = self._prepare(m, bits_next, zero_next, sum_x)
            with m.If(self._may_start(ready, ~pipe_idle)):
                m.d.sync += [prepare.eq(0), start.eq(1)]
        with m.If(start):  # a state of its own: the wide loads' enable is the state flag
            m.d.sync += [self.bits.eq(bits_next), self.zero.eq(zero_next),
                         plane.eq(self.planes_of(bits_next) - 1), group.eq(0),
                         plane_zero.eq(self.planes_of(bits_next) == 1),
                         group_end.eq(last_group == 0), seg_first.eq(1), run.eq(1)]
            if self.qgroup:
                m.d.sync += seg_base.eq(0)
            self._commit(m)
        accept = self.w.valid & self.w.ready
        with m.If(accept):  # group_end is registered: no compare on the handshake path
            m.d.sync += [group.eq(group + 1), group_end.eq(group + 1 == last_group)]
            with m.If(seg_end):  # a quantisation group's (or, without qgroup, the tile's) end
                with m.If(~plane_zero):  # the same groups again, next plane
                    m.d.sync += [group.eq(seg_base), group_end.eq(seg_base == last_group),
                                 plane.eq(plane - 1), plane_zero.eq(plane == 1)]
                with m.Else():
                    m.d.sync += [plane.eq(self.planes_of(self.bits) - 1), seg_first.eq(0),
                                 plane_zero.eq(self.planes_of(self.bits) == 1)]
                    if self.qgroup:
                        m.d.sync += seg_base.eq(group + 1)
                    with m.If(group_end):  # the tile's end
                        m.d.sync += [group.eq(0), group_end.eq(last_group == 0), seg_first.eq(1)]
                        if self.qgroup:
                            m.d.sync += seg_base.eq(0)
            with m.If(tile_end & self.w.payload.last):  # the pass's end
                m.d.sync += [out_buffer.eq(~out_buffer), run.eq(0), idle.eq(1)]
                m.d.comb += store.release.eq(1)  # the store clears full[out_buffer]
        m.d.comb += store.release_buffer.eq(out_buffer)
        # w.ready: two registers
        m.d.comb += [self.w.ready.eq(advance & run), tile_end.eq(group_end & plane_zero),
                     seg_end.eq(group_end | (group[:self.seg_log].all() if self.qgroup else 0)),
                     seq.seg_close.eq(seg_end & plane_zero)]
        return seq

    def _read_pipeline(self, m, store, seq, advance, pipe_busy):
        """Memory read (its output registered), the subclass's row stages, and the flags
        beside them; all under the registered ``advance``. Returns the last stage's flags,
        the flags of the stage before it and the row increments."""
        batch, word_w = self.batch, store.word_w
        read, qread = store.read, store.qread
        pipe = HeldStages(m, advance)
        m.d.comb += [read.en.eq(advance), read.addr.eq(Cat(seq.group[:self.addr_bits], seq.out_buffer))]
        if self.qgroup:
            m.d.comb += [qread.en.eq(advance), qread.addr.eq(
                Cat(seq.group[self.seg_log:self.seg_log + store.seg_bits], seq.out_buffer))]
        s = pipe.stage("read", valid=self.w.valid & seq.in_run, weights=self.w.payload.data,
                       plane=seq.plane, tile_end=seq.tile_end, pass_end=seq.tile_end & self.w.payload.last,
                       seg_close=seq.seg_close, seg_first=seq.seg_first)
        read_valid = s.valid
        flag_names = ("valid", "tile_end", "pass_end", "seg_close", "seg_first")
        # the memory's output registered before any logic (ECP5's block-RAM clock-to-out is slow)
        s = pipe.stage("table", words=read.data, weights=s.weights, plane=s.plane,
                       **({"seg_sum": qread.data} if self.qgroup else {}),
                       **{k: getattr(s, k) for k in flag_names})
        stages = [s]
        first = pipe.stages
        words = [s.words[v * word_w:(v + 1) * word_w] for v in range(batch)]
        increments = [inc for per_vector in self._rows(m, pipe, words, s.weights, s.plane)
                      for inc in per_vector]  # vector-major: index v * rows + r
        assert pipe.stages - first == self.row_stages
        flags = s
        for stage in range(self.row_stages):
            extra = dict(seg_sum=flags.seg_sum) if self.qgroup else {}
            flags = pipe.stage(f"row{stage}", **{k: getattr(flags, k) for k in flag_names}, **extra)
            stages.append(flags)
        m.d.comb += pipe_busy.eq(Cat(read_valid, *(st.valid for st in stages)).any())
        return stages[-1], stages[-2], increments

    def _group_coef(self, bits, zero):
        """The zero-point coefficient ``c`` of the group epilogue (subclass)."""
        raise NotImplementedError

    #: the group epilogue's final right shift (subclass)
    group_shift = 0

    def _clamped_command(self, m, cmd):
        """The ``cmd`` beat's (payload ``cmd``) ``(bits, zero_point)`` clamped
        (``golden_models.lutgemv.command``): ``bits`` into ``1..bits_max``, then the zero
        point into ``0..2**bits - 1``."""
        cfg = self.config
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

    def _scale_stage(self, m, out):
        """The per-row scale join into ``out`` (``gemv_drain.scale_stage``; a hook for fault tests)."""
        return scale_stage(self, m, out)

    def _group_stage(self, m, out):
        """The group epilogue into ``out`` (``gemv_drain.group_stage``; a hook for fault tests)."""
        return group_stage(self, m, out)

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
