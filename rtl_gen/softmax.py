"""Streaming fixed-point softmax unit (row buffer or online max, base-2 exponent, exact reciprocal).

Algorithm: ``golden_models.softmax`` (this generator matches it bit for bit). With
``max_mode: buffer``, three concurrent passes, each working on its own row, joined by two
circular row buffers (block RAM) and small row-descriptor FIFOs:

1. **Input** — accepts a beat per cycle, writes ``(x, mask)`` into the x buffer and keeps
   the running maximum of the unmasked scores (a cycle later, from registered beats); a row
   ends at ``last`` or at its ``n_max``-th beat (that beat then leaves with ``last`` set).
   At the row's end it queues ``(max, n)``.
2. **Exponent** — re-reads the row, ``e = 2**-((max - x) * log2 e)`` (``exp2_pipeline``:
   a constant multiply, an integer/fraction split, a piecewise polynomial for the fraction,
   a two-stage barrel shift for the integer part), writes ``e`` rounded to ``ob + g``
   fraction bits into the e buffer and sums the unrounded ``e`` exactly. The row's sum goes
   to the reciprocal ``R = floor(2**(hf+ob+g) / (S >> (ef-hf)))`` (``SequentialReciprocal``:
   restoring division, two cycles per quotient bit, ``2 QB`` cycles).
3. **Output** — re-reads ``e``, ``p = saturate(round_half_even(e * R))`` with ``last`` on the
   row's final beat; the product is pipelined (``pipelined_product``), the rounding split in
   two stages. This pass runs free and issues a beat only while the output queue (a small
   FIFO in front of ``o``) has room for everything in flight, so ``o.ready`` reaches nothing
   but that queue.

With ``max_mode: online`` (``rtl_gen.softmax_online``) passes 1 and 2 merge into one: each
accepted beat goes straight through the exponent pipeline against the *running* integer
base-2 max, the partial sum is rescaled by a right shift (floor) whenever the max rises, and
the e buffer keeps each unrounded ``e`` with its max tag; the output pass shifts ``e`` to the
row's final max (floor), rounds it (half even) and scales it as above. There is no x buffer
and no max pass: the first output comes ``n`` cycles sooner (trade-offs: that module's
docstring).

Every handshake decision comes from registers (room flags with one entry of margin,
prefetched row descriptors in ``_RowCursor``), and every stage holds at most one carry
chain or one DSP-sized multiplier: iCE40 UP5K timing.

Interface
---------
``i``: ``In(stream.Signature(StructLayout({"data": signed(in_width), "last": 1[, "mask": 1]})))``
(``mask`` only with ``config.mask``: a masked beat outputs 0 and is not counted).
``o``: ``Out(stream.Signature(StructLayout({"data": unsigned(out_width), "last": 1})))``,
one beat per input beat, in order.

Timing (``timing(config)`` gives every figure without building the component)
------
Throughput: one beat per cycle on ``i`` and ``o``, sustained over consecutive rows of
``n >= row_overhead`` beats: no bubble between such rows. One division takes ``2 QB + 3``
cycles; ``dividers = min(4, ceil((2 QB + 3) / n_max))`` units take rows in turn, so
``row_overhead = ceil((2 QB + 3) / dividers)`` (at most ``n_max`` unless four units are not
enough). A shorter row occupies ``row_overhead`` cycles (the bubble after it is
``row_overhead - n``).
Latency: the exp pass of a row starts when its last beat is in and takes ``n`` cycles, so
the first output of a lone row of ``n`` beats comes ``passes n + first_output_latency``
cycles after its first input beat (``passes`` = 2; online: 1, the exp pass is the input
pass); over consecutive rows the output trails the input by at most
``first_output_latency + passes max(n)`` cycles. The x buffer holds two rows plus margin, the e
buffer two rows plus the pipeline and divider slack (powers of two), so the input pass of
row ``i+1`` overlaps the exp pass of row ``i`` and the output pass of row ``i-1``. Online:
no x buffer; the e buffer (same depth) holds ``e`` (``ef`` fraction bits) and its max tag.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.softmax import constants_of

from lowbit.golden_models.softmax import online_tag_range

from .fixed import StallPipeline, round_half_even, sample_layout, saturate
from .softmax_arith import (SequentialReciprocal, exp2_pipeline, exp2_stages, pipelined_product,
                            product_stages, round_half_even_split)
from .softmax_config import SoftmaxConfig
from .softmax_online import RESCALE_STAGES, online_pass, online_stages, rescale_and_round

MAX_DIVIDERS = 4    # reciprocal units taking rows in turn (enough for rows of n_max)
OUTPUT_QUEUE = 12   # beats between the output pipeline and o (covers the pipeline's latency)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def timing(config: SoftmaxConfig) -> dict:
    """Cycle figures of the docstring for ``config`` (without building the component):
    ``passes`` (input passes over a row before its first output: 2 with the row buffer, 1
    online), ``exp_stages``, ``output_stages``, ``output_queue``, ``dividers``,
    ``rows_in_flight``, ``row_overhead``, ``first_output_latency``, ``x_depth`` (0 online),
    ``e_depth``, ``e_bits``, ``tag_bits`` (online max tag, 0 with the row buffer)."""
    c = constants_of(config)
    online = config.max_mode == "online"
    e_s_bits = c.e_max.bit_length() - (c.ef - c.es) + 1
    if online:
        lo, hi = online_tag_range(c)
        tag_bits = (hi - lo).bit_length()  # the max, as an offset from the lowest one
        exp_stages = online_stages(exp2_stages(c))
        e_bits = c.e_max.bit_length() + tag_bits
    else:
        tag_bits = 0
        exp_stages = 2 + exp2_stages(c) + 1  # read, distance, exp2..., sum/round
        e_bits = e_s_bits
    # read, hold, [online: rescale amount, coarse, fine, round,] the product e_s * R (1 or 3
    # stages), round (2), saturate
    output_stages = 5 + (RESCALE_STAGES if online else 0) + product_stages(e_s_bits, c.qb)
    division = 2 * c.qb + 3  # cycles one divider spends on a row
    dividers = min(MAX_DIVIDERS, -(-division // config.n_max))
    # rows between the exp pass's fetch and the output pass's fetch (descriptor FIFO depth):
    # enough to cover a row's way through the exp pass and a divider at one row per n_max
    rows_in_flight = max(4, -(-(config.n_max + exp_stages + division + 16) // config.n_max) + 1)
    # row buffer: input registers 2, row descriptor queue 3 + prefetch 1, exp pass; online: the
    # input registers 2, the front pipeline. Then: sum queue 2, divider 2 QB + 1, reciprocal
    # queue 2, prefetch 1, output start 1, output pipeline, output queue 2, the consumer's edge 1
    front = 2 + exp_stages if online else 6 + exp_stages
    return {"passes": 1 if online else 2, "exp_stages": exp_stages, "output_stages": output_stages,
            "output_queue": max(OUTPUT_QUEUE, output_stages + 4), "dividers": dividers,
            "rows_in_flight": rows_in_flight,
            "row_overhead": -(-division // dividers),
            "first_output_latency": front + 2 + 2 * c.qb + 1 + 2 + 2 + output_stages + 2 + 1,
            "x_depth": 0 if online else _pow2_at_least(2 * config.n_max + 4),
            "e_depth": _pow2_at_least(2 * config.n_max + exp_stages + 2 * c.qb + 16),
            "e_bits": e_bits, "tag_bits": tag_bits}


class _RowCursor:
    """Walks the beats of the row a pass is issuing, with the next row prefetched.

    ``active``: a row is being issued; ``last`` (a register): the next issued beat ends it.
    The next row's length and ``fields`` wait in registers (``pending``), so starting a row at
    the old row's last beat never waits on a FIFO's read path; ``current`` holds the running
    row's fields. Next-state logic is written flat (no priority chain of enables).
    """

    def __init__(self, name: str, count_shape, **fields):
        self.active = Signal(name=f"{name}_active")
        self.left = Signal(count_shape, name=f"{name}_left")
        self.last = Signal(name=f"{name}_last")
        self.pending = Signal(name=f"{name}_pending")
        self.next_n = Signal(count_shape, name=f"{name}_next_n")
        self.next = {k: Signal(shape, name=f"{name}_next_{k}") for k, shape in fields.items()}
        self.current = {k: Signal(shape, name=f"{name}_{k}") for k, shape in fields.items()}
        self.start = Signal(name=f"{name}_start")  # the pending row becomes current

    def drive(self, m: Module, issue, ready, n, **values):
        """``issue``: a beat is issued this cycle; ``ready``: a row (``n``, ``values``) can be
        fetched. Returns the fetch strobe (the caller pops its FIFO with it)."""
        end = issue & self.last
        fetch = ~self.pending & ready
        m.d.comb += self.start.eq(self.pending & (~self.active | end))
        m.d.sync += [
            self.pending.eq(fetch | (self.pending & ~self.start)),
            self.active.eq(self.start | (self.active & ~end)),
            self.left.eq(Mux(self.start, self.next_n, Mux(issue, self.left - 1, self.left))),
            self.last.eq(Mux(self.start, self.next_n == 1, Mux(issue, self.left == 2, self.last))),
        ]
        with m.If(fetch):
            m.d.sync += [self.next_n.eq(n), *(self.next[k].eq(v) for k, v in values.items())]
        with m.If(self.start):
            m.d.sync += [self.current[k].eq(self.next[k]) for k in self.next]
        return fetch


def input_layout(config: SoftmaxConfig) -> data.StructLayout:
    fields = {"data": signed(config.input.width), "last": 1}
    if config.mask:
        fields["mask"] = 1
    return data.StructLayout(fields)


class SoftmaxUnit(wiring.Component):
    """Softmax over rows framed by ``last`` for one ``SoftmaxConfig`` (see module docstring)."""

    def __init__(self, config: SoftmaxConfig):
        assert isinstance(config, SoftmaxConfig)
        self.config = config
        self.constants = c = constants_of(config)
        for key, value in timing(config).items():
            setattr(self, key, value)
        super().__init__({
            "i": In(stream.Signature(input_layout(config))),
            "o": Out(stream.Signature(sample_layout(config.output))),
        })

    def elaborate(self, platform):
        m = Module()
        q = self._storage(m)
        beat = self._input_pass(m, q)
        if self.config.max_mode == "online":
            online_pass(m, self, q, beat)
        else:
            self._max_pass(m, q, beat)
            self._exp_pass(m, q)
        self._reciprocals(m, q)
        self._output_pass(m, q)
        # ---------------------------------------------------------------- occupancy counters
        counters = [(q.e_credits, q.e_up, q.issue3), (q.rows_busy, q.row_started, q.row_fetched),
                    (q.out_credits, q.issue3, q.taken)]
        if self.x_depth:
            counters.insert(0, (q.x_count, q.accept, q.issue2))
        for counter, up, down in counters:
            # one adder per counter: the step is -1, 0 or +1
            step = Mux(up == down, 0, Mux(up, 1, -1))
            m.d.sync += counter.eq(counter + step)
        return m

    def _storage(self, m: Module) -> SimpleNamespace:
        """Row buffers, row-descriptor FIFOs and occupancy counters shared by the passes."""
        cfg, c, q = self.config, self.constants, SimpleNamespace()
        width = cfg.input.width
        if self.x_depth:
            m.submodules.x_buffer = x_mem = Memory(shape=width + 1, depth=self.x_depth, init=[])
        m.submodules.e_buffer = e_mem = Memory(shape=self.e_bits, depth=self.e_depth, init=[])
        if self.x_depth:
            q.x_write, q.x_read = x_mem.write_port(), x_mem.read_port()
        q.e_write, q.e_read = e_mem.write_port(), e_mem.read_port()
        q.n_bits = Shape.cast(range(1, cfg.n_max + 1)).width
        if self.x_depth:
            m.submodules.rows_in = q.rows_in = SyncFIFOBuffered(width=width + q.n_bits, depth=self.rows_in_flight + 3)
        m.submodules.row_lengths = q.lengths = SyncFIFOBuffered(width=q.n_bits + self.tag_bits,
                                                                depth=self.rows_in_flight)
        m.submodules.sums = q.sums = SyncFIFOBuffered(width=c.sum_max.bit_length(), depth=self.rows_in_flight)
        m.submodules.reciprocals = q.recips = SyncFIFOBuffered(width=c.qb, depth=self.rows_in_flight)

        q.x_count = Signal(range(self.x_depth + 1))      # x entries written, not yet re-read
        q.e_credits = Signal(range(self.e_depth + 1))    # e entries reserved, not yet re-read
        q.rows_busy = Signal(range(self.rows_in_flight + 1))  # rows between exp start and output fetch
        # Room flags are registered (one entry of margin: a count grows by one per cycle at
        # most), which keeps the counters' comparators off the handshake paths.
        q.x_room, q.e_room = Signal(), Signal()
        if self.x_depth:
            m.d.sync += q.x_room.eq(q.x_count < self.x_depth - 1)
        m.d.sync += q.e_room.eq(q.e_credits < self.e_depth - 1)
        q.issue2, q.issue3, q.taken = Signal(), Signal(), Signal()
        q.row_started, q.row_fetched = Signal(), Signal()
        q.e_up = q.issue2
        return q

    def _input_pass(self, m: Module, q) -> SimpleNamespace:
        """1. Input: accepting a beat needs no arithmetic. The beat is registered (``beat``),
        and with a row buffer written to the x buffer; ``row_end``: ``last`` or the n_max-th beat."""
        cfg = self.config
        width, n_max = cfg.input.width, cfg.n_max
        online = not self.x_depth
        count = Signal(range(n_max))
        at_first, at_cap = Signal(init=1), Signal()  # next beat starts / must end a row
        rows_room = Signal()
        q.accept = accept = Signal()
        payload = self.i.payload
        masked = payload.mask if cfg.mask else Const(0)
        row_end = payload.last | at_cap
        m.d.comb += [self.i.ready.eq((q.e_room if online else q.x_room) & rows_room),
                     accept.eq(self.i.valid & self.i.ready)]
        if online:  # a row counts from its last accepted beat; rows_busy grows by one at most
            m.d.sync += rows_room.eq(q.rows_busy < self.rows_in_flight - 1)
        else:
            x_wp = Signal(range(self.x_depth))
            m.d.comb += [q.x_write.en.eq(accept), q.x_write.addr.eq(x_wp),
                         q.x_write.data.eq(payload.data.as_unsigned() | (masked << width))]
            m.d.sync += rows_room.eq(q.rows_in.level < self.rows_in_flight)
        beat = SimpleNamespace(valid=Signal(), x=Signal(signed(width)), masked=Signal(), first=Signal(),
                               end=Signal(), n=Signal(range(1, n_max + 1)))
        m.d.sync += beat.valid.eq(accept)
        with m.If(accept):
            if not online:
                m.d.sync += x_wp.eq(x_wp + 1)
            m.d.sync += [count.eq(Mux(row_end, 0, count + 1)),
                         at_first.eq(row_end), at_cap.eq(~row_end & (count == n_max - 2)),
                         beat.x.eq(payload.data), beat.masked.eq(masked), beat.first.eq(at_first),
                         beat.end.eq(row_end), beat.n.eq(count + 1)]
        if online:
            m.d.comb += [q.row_started.eq(accept & row_end)]
            q.e_up = accept
        return beat

    def _max_pass(self, m: Module, q, beat) -> None:
        """Row buffer: the running maximum a cycle after the beat; a finished row's
        ``(max, n)`` is queued a cycle after that (so ``rows_in`` needs room for two more rows)."""
        cfg = self.config
        running_max = Signal(signed(cfg.input.width))
        previous = Mux(beat.first, cfg.input.min_int, running_max)
        push, push_n = Signal(), Signal(range(1, cfg.n_max + 1))
        m.d.sync += push.eq(beat.valid & beat.end)
        with m.If(beat.valid):
            m.d.sync += [running_max.eq(Mux(~beat.masked & (beat.x > previous), beat.x, previous)),
                         push_n.eq(beat.n)]
        m.d.comb += [q.rows_in.w_en.eq(push), q.rows_in.w_data.eq(Cat(running_max, push_n))]

    def _exp_pass(self, m: Module, q) -> None:
        """2. Row buffer: re-read the row, exp2 of the distance from its max, sum, write ``e_s``."""
        cfg, c = self.config, self.constants
        width = cfg.input.width
        count_shape = range(1, cfg.n_max + 1)
        cursor2 = _RowCursor("exp", count_shape, row_max=signed(width))
        max2 = cursor2.current["row_max"]
        first2 = Signal()
        x_rp = Signal(range(self.x_depth))
        issue2, end2 = q.issue2, Signal()
        m.d.comb += [
            issue2.eq(cursor2.active & q.e_room),
            end2.eq(issue2 & cursor2.last),
            q.x_read.en.eq(1), q.x_read.addr.eq(x_rp),
        ]
        rows_in = q.rows_in
        rows_in_n = rows_in.r_data[width:]
        fetch2 = cursor2.drive(m, issue2, rows_in.r_rdy & (q.rows_busy < self.rows_in_flight), rows_in_n,
                               row_max=rows_in.r_data[:width].as_signed())
        m.d.comb += [rows_in.r_en.eq(fetch2), q.row_started.eq(fetch2),
                     q.lengths.w_en.eq(fetch2), q.lengths.w_data.eq(rows_in_n)]
        m.d.sync += first2.eq(Mux(cursor2.start, 1, Mux(issue2, 0, first2)))
        with m.If(issue2):
            m.d.sync += x_rp.eq(x_rp + 1)

        pipe2 = StallPipeline(m, Const(1))
        s = pipe2.stage("read", go=issue2, row_max=max2, first=first2, last=end2)
        x2, mask2 = q.x_read.data[:width].as_signed(), q.x_read.data[width]
        s = pipe2.stage("distance", d=(s.row_max - x2).as_unsigned()[:width], zero=mask2,
                        go=s.go, first=s.first, last=s.last)
        e, r = exp2_pipeline(m, pipe2, c, s.d, s.zero, go=s.go, first=s.first, last=s.last)
        total = Signal(c.sum_max.bit_length())
        s = pipe2.stage("sum", go=r["go"], last=r["last"], total=Mux(r["go"], Mux(r["first"], 0, total) + e, total),
                        e_s=round_half_even(e, c.ef - c.es))
        assert pipe2.stages == self.exp_stages
        m.d.comb += total.eq(s.total)
        e_wp = Signal(range(self.e_depth))
        m.d.comb += [q.e_write.en.eq(s.go), q.e_write.addr.eq(e_wp), q.e_write.data.eq(s.e_s),
                     q.sums.w_en.eq(s.go & s.last), q.sums.w_data.eq(s.total)]
        with m.If(s.go):
            m.d.sync += e_wp.eq(e_wp + 1)

    def _reciprocals(self, m: Module, q) -> None:
        """``dividers`` units take the rows' sums in turn and hand back R in the same turn."""
        sums, recips = q.sums, q.recips
        dispatch, collect = Signal(range(self.dividers)), Signal(range(self.dividers))
        sent, returned = Signal(), Signal()
        for k in range(self.dividers):
            m.submodules[f"reciprocal{k}"] = recip = SequentialReciprocal(self.constants)
            m.d.comb += [recip.i.valid.eq(sums.r_rdy & (dispatch == k)), recip.i.payload.eq(sums.r_data),
                         recip.o.ready.eq(recips.w_rdy & (collect == k))]
            with m.If(dispatch == k):
                m.d.comb += [sums.r_en.eq(recip.i.ready), sent.eq(recip.i.valid & recip.i.ready)]
            with m.If(collect == k):
                m.d.comb += [recips.w_en.eq(recip.o.valid), recips.w_data.eq(recip.o.payload),
                             returned.eq(recip.o.valid & recips.w_rdy)]
        with m.If(sent):
            m.d.sync += dispatch.eq(Mux(dispatch == self.dividers - 1, 0, dispatch + 1))
        with m.If(returned):
            m.d.sync += collect.eq(Mux(collect == self.dividers - 1, 0, collect + 1))

    def _output_pass(self, m: Module, q) -> None:
        """3. Output: re-read ``e`` (online: shift it to the row's final max and round it),
        ``p = saturate(round_half_even(e_s * R))``. The pass runs free (no global stall): it
        issues a beat only while the output queue has room for everything in flight, so
        o.ready reaches nothing but that queue."""
        cfg, c = self.config, self.constants
        online = not self.x_depth
        m.submodules.output_queue = out_q = SyncFIFOBuffered(width=cfg.output.width + 1, depth=self.output_queue)
        q.out_credits = out_credits = Signal(range(self.output_queue + 1))  # issued, not yet taken from o
        out_room = Signal()
        m.d.sync += out_room.eq(out_credits < self.output_queue - 1)
        pipe3 = StallPipeline(m, Const(1))
        advance = out_room
        fields = dict(recip=c.qb, row_max=self.tag_bits) if online else dict(recip=c.qb)
        cursor3 = _RowCursor("out", range(1, cfg.n_max + 1), **fields)
        r3 = cursor3.current["recip"]
        e_rp = Signal(range(self.e_depth))
        issue3, end3 = q.issue3, Signal()
        m.d.comb += [
            # every e of a row is written before its R exists: no emptiness check needed
            issue3.eq(advance & cursor3.active),
            end3.eq(issue3 & cursor3.last),
            q.e_read.en.eq(1), q.e_read.addr.eq(e_rp),
        ]
        lengths, recips = q.lengths, q.recips
        extra = dict(row_max=lengths.r_data[q.n_bits:]) if online else {}
        fetch3 = cursor3.drive(m, issue3, recips.r_rdy & lengths.r_rdy, lengths.r_data[:q.n_bits],
                               recip=recips.r_data, **extra)
        m.d.comb += [recips.r_en.eq(fetch3), lengths.r_en.eq(fetch3), q.row_fetched.eq(fetch3)]
        with m.If(issue3):
            m.d.sync += e_rp.eq(e_rp + 1)
        if online:
            s = pipe3.stage("read", recip=r3, row_max=cursor3.current["row_max"], last=end3)
            s = pipe3.stage("hold", word=q.e_read.data, recip=s.recip, row_max=s.row_max, last=s.last)
            e_s = rescale_and_round(pipe3, c, s.word, s.row_max, recip=s.recip, last=s.last)
            s = SimpleNamespace(e=e_s[0], **e_s[1])
        else:
            s = pipe3.stage("read", recip=r3, last=end3)
            s = pipe3.stage("hold", e=q.e_read.data, recip=s.recip, last=s.last)  # RAM output to fabric
        product, r = pipelined_product(pipe3, s.e, s.recip, "scale", last=s.last)
        rounded, r = round_half_even_split(pipe3, product, c.es + c.q, "out", last=r["last"])
        s = pipe3.stage("saturate", result=saturate(rounded, cfg.output), last=r["last"])
        result, last = s.result, s.last
        assert pipe3.stages == self.output_stages
        m.d.comb += [q.taken.eq(self.o.valid & self.o.ready),
                     out_q.w_en.eq(pipe3.valid_chain(issue3, self.output_stages)),
                     out_q.w_data.eq(Cat(result, last)),
                     self.o.valid.eq(out_q.r_rdy), out_q.r_en.eq(self.o.ready),
                     self.o.payload.data.eq(out_q.r_data[:cfg.output.width]),
                     self.o.payload.last.eq(out_q.r_data[-1])]
