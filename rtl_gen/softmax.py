"""Streaming fixed-point softmax unit (row buffer or online max, base-2 exponent, exact reciprocal).

Algorithm: ``golden_models.softmax`` (this generator matches it bit for bit). With
``max_mode: buffer``, three concurrent passes, each working on its own row, joined by two
circular row buffers (block RAM) and small row-descriptor queues (``RowQueue``):

1. **Input** — accepts a beat per cycle, writes ``(x, mask)`` into the x buffer; a row ends
   at ``last`` or at its ``n_max``-th beat (that beat then leaves with ``last`` set). The
   max pass keeps two running maxima of the unmasked scores (odd and even positions of the
   row, so each compare-and-load loop spans two cycles) and joins them at the row's end,
   queueing ``(max, n)``.
2. **Exponent** — re-reads the row (``RowCursor``), ``e = 2**-((max - x) * log2 e)``
   (``exp2_pipeline``: a constant multiply, an integer/fraction split, a piecewise
   polynomial for the fraction, a two-stage barrel shift for the integer part), writes
   ``e`` rounded to ``ob + g`` fraction bits into the e buffer and sums the unrounded ``e``
   exactly (``row_sums``: a running total that never restarts, in 12-bit chunk
   accumulators, and a row's sum as the difference of two snapshots). The row's sum goes
   to the reciprocal ``R = floor(2**(hf+ob+g) / (S >> (ef-hf)))`` (``SequentialReciprocal``:
   non-restoring division, two cycles per quotient bit, carry-select halves).
3. **Output** — re-reads ``e``, ``p = saturate(round_half_even(e * R))`` with ``last`` on the
   row's final beat; the product is pipelined (``pipelined_product``), the rounding split
   (``round_half_even_split``).

With ``max_mode: online`` (``rtl_gen.softmax_online``) passes 1 and 2 merge into one: each
accepted beat goes straight through the exponent pipeline against the *running* integer
base-2 max, the partial sum is rescaled by a right shift (floor) whenever the max rises, and
the e buffer keeps each unrounded ``e`` with its max tag; the output pass shifts ``e`` to the
row's final max (floor), rounds it (half even) and scales it as above. There is no x buffer
and no max pass: the first output comes ``n`` cycles sooner (trade-offs: that module's
docstring).

Structure (the stream-pipeline idiom of ``rtl_gen.pipeline``): ``i.ready`` is a register
(room in the buffers and the row queues, with margins); every datapath is a
``FreePipeline`` (no clock enable, a valid bit beside each stage); the output pass issues a
beat only while its ``CreditQueue`` (registered ``admit``) has a credit, so ``o.ready``
reaches only that queue. The row queues' heads, the cursors' decisions and the dividers'
control are registers or one LUT from registers, a row start loads no wide register (the
cursor's two slots and a toggle), no carry chain in a stage is longer than 12 bits beside
the 16-bit DSP products, and every block-RAM read is registered before arithmetic.

Interface
---------
``i``: ``In(stream.Signature(StructLayout({"data": signed(in_width), "last": 1[, "mask": 1]})))``
(``mask`` only with ``config.mask``: a masked beat outputs 0 and is not counted).
``o``: ``Out(stream.Signature(StructLayout({"data": unsigned(out_width), "last": 1})))``,
one beat per input beat, in order.

Timing (``timing(config)`` gives every figure without building the component)
------
Throughput: one beat per cycle on ``i`` and ``o``, sustained over consecutive rows of
``n >= row_overhead`` beats: no bubble between such rows. One division takes ``2 QB + 2``
cycles after its start (``2 QB + 3`` with the hand-off); ``dividers = min(4, ceil((2 QB +
3) / n_max))`` units take rows in turn, so ``row_overhead = ceil((2 QB + 3) / dividers)``
(at most ``n_max`` unless four units are not enough). A shorter row occupies
``row_overhead`` cycles (the bubble after it is ``row_overhead - n``).
Latency: the exp pass of a row starts when its last beat is in and takes ``n`` cycles, so
the first output of a lone row of ``n`` beats comes ``passes n + first_output_latency``
cycles after its first input beat (``passes`` = 2; online: 1, the exp pass is the input
pass); ``first_output_latency`` is the sum of the stages ``timing`` lists (the max pass,
the queues, the exp and row-sum pipelines, the division, the output pipeline, the credit
queue). Over consecutive rows the output trails the input by at most
``first_output_latency + passes max(n)`` cycles. The x buffer holds two rows plus margin, the e
buffer two rows plus the pipeline and divider slack (powers of two), so the input pass of
row ``i+1`` overlaps the exp pass of row ``i`` and the output pass of row ``i-1``. Online:
no x buffer; the e buffer (same depth) holds ``e`` (``ef`` fraction bits) and its max tag.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.softmax import constants_of, online_tag_range

from .fixed import sample_layout, saturate
from .pipeline import CreditQueue, FreePipeline
from .softmax_arith import (SequentialReciprocal, at_most, exp2_pipeline, exp2_stages, pipelined_product,
                            product_stages, round_half_even_split, round_stages, row_sum_stages, row_sums)
from .softmax_config import SoftmaxConfig
from .softmax_online import online_pass, online_stages, rescale_and_round, rescale_stages
from .softmax_rows import RowCursor, RowQueue

MAX_DIVIDERS = 4    # reciprocal units taking rows in turn (enough for rows of n_max)
SUM_CHUNK = 12      # longest carry chain of the row-sum accumulators and their difference
MAX_STAGES = 4      # the row buffer's max pass (``SoftmaxUnit._max_pass``)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def timing(config: SoftmaxConfig) -> dict:
    """Cycle figures of the docstring for ``config`` (without building the component):
    ``passes`` (input passes over a row before its first output: 2 with the row buffer, 1
    online), ``exp_stages``, ``sum_stages`` (buffer: the row-sum pipeline after the exp
    stages), ``output_stages``, ``output_queue`` (the output ``CreditQueue``'s credits),
    ``dividers``, ``rows_in_flight``, ``row_overhead``, ``first_output_latency``,
    ``x_depth`` (0 online), ``e_depth``, ``e_bits``, ``tag_bits`` (online max tag, 0 with
    the row buffer)."""
    c = constants_of(config)
    online = config.max_mode == "online"
    e_s_bits = c.e_max.bit_length() - (c.ef - c.es) + 1
    sum_bits = c.sum_max.bit_length()
    if online:
        lo, hi = online_tag_range(c)
        tag_bits = (hi - lo).bit_length()  # the max, as an offset from the lowest one
        exp_stages = online_stages(exp2_stages(c), sum_bits)
        e_bits = c.e_max.bit_length() + tag_bits
        sum_stages = 0
    else:
        tag_bits = 0
        # read, hold, distance, distance hold, exp2..., round (split)
        exp_stages = 4 + exp2_stages(c) + round_stages(c.e_max.bit_length(), c.ef - c.es, SUM_CHUNK)
        e_bits = e_s_bits
        sum_stages = row_sum_stages(sum_bits, SUM_CHUNK)
    # read, hold, [online: rescale amount, coarse, fine, round,] the product e_s * R (1 or 3
    # stages), round (2); the saturation is written into the output queue
    output_stages = (2 + (rescale_stages(c) if online else 0) + product_stages(e_s_bits, c.qb)
                     + round_stages(e_s_bits + c.qb, c.es + c.q, SUM_CHUNK))
    credits = output_stages + CreditQueue.LATENCY + 2
    division = 2 * c.qb + 3  # cycles one divider spends on a row (2 QB + 2, and the hand-off)
    dividers = min(MAX_DIVIDERS, -(-division // config.n_max))
    # rows between the exp pass's fetch and the output pass's fetch (queue depth): enough to
    # cover a row's way through the exp pass and a divider at one row per n_max
    rows_in_flight = max(5, -(-(config.n_max + exp_stages + sum_stages + division + 16) // config.n_max) + 1)
    # after a lone row's last beat is accepted: row buffer: beat register 1, max 4, row queue 2,
    # cursor fetch 1 + start 1; online: beat register 1. Then the exp stages (and the row sums),
    # the sum queue 2, dispatch 1, the division 2 QB + 2, the reciprocal queue 2, the output
    # cursor's fetch 1 and start 1, the output stages, the credit queue, the consumer's edge 1
    front = 1 + exp_stages if online else 5 + MAX_STAGES + exp_stages + sum_stages
    latency = front + 2 + 1 + 2 * c.qb + 2 + 2 + 2 + output_stages + CreditQueue.LATENCY + 1
    return {"passes": 1 if online else 2, "exp_stages": exp_stages, "sum_stages": sum_stages,
            "output_stages": output_stages, "output_queue": credits, "dividers": dividers,
            "rows_in_flight": rows_in_flight,
            "row_overhead": -(-division // dividers),
            "first_output_latency": latency,
            "x_depth": 0 if online else _pow2_at_least(2 * config.n_max + 4),
            "e_depth": _pow2_at_least(2 * config.n_max + exp_stages + sum_stages + 2 * c.qb + 16),
            "e_bits": e_bits, "tag_bits": tag_bits}


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
        self.constants = constants_of(config)
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
        # (counter, up, down, late): one adder per counter, the step -1, 0 or +1; the wide
        # buffer counters take their steps from registers (a cycle late: their room flags
        # keep one entry more of margin), so no handshake reaches their carry chains
        counters = [(q.e_credits, q.e_up, q.issue3, True), (q.rows_busy, q.row_started, q.row_fetched, False)]
        if self.x_depth:
            counters += [(q.x_count, q.accept, q.issue2, True),
                         (q.rows_waiting, q.row_ended, q.row_started, False)]
        for counter, up, down, late in counters:
            if late:
                up_late, down_late = Signal(name=f"{counter.name}_up"), Signal(name=f"{counter.name}_down")
                m.d.sync += [up_late.eq(up), down_late.eq(down)]
                up, down = up_late, down_late
            step = Mux(up == down, 0, Mux(up, 1, -1))
            m.d.sync += counter.eq(counter + step)
        return m

    def _storage(self, m: Module) -> SimpleNamespace:
        """Row buffers, row-descriptor queues and occupancy counters shared by the passes."""
        cfg, c, q = self.config, self.constants, SimpleNamespace()
        width = cfg.input.width
        if self.x_depth:
            # no_rw_check: an entry is never read in the cycle it is written (a row is re-read
            # only once it is all in), so Yosys adds no read-during-write logic
            m.submodules.x_buffer = x_mem = Memory(shape=width + 1, depth=self.x_depth, init=[],
                                                   attrs={"no_rw_check": 1})
            q.x_write, q.x_read = x_mem.write_port(), x_mem.read_port(transparent_for=())
        m.submodules.e_buffer = e_mem = Memory(shape=self.e_bits, depth=self.e_depth, init=[],
                                               attrs={"no_rw_check": 1})
        q.e_write, q.e_read = e_mem.write_port(), e_mem.read_port(transparent_for=())
        q.n_bits = Shape.cast(range(1, cfg.n_max + 1)).width
        rows = self.rows_in_flight
        if self.x_depth:
            m.submodules.rows_in = q.rows_in = RowQueue(width + q.n_bits, rows + 1)
        # (a RowQueue holds one word more than its ring's depth)
        m.submodules.row_lengths = q.lengths = RowQueue(q.n_bits + self.tag_bits, rows - 1)
        m.submodules.sums = q.sums = RowQueue(c.sum_max.bit_length(), rows - 1)
        m.submodules.reciprocals = q.recips = RowQueue(c.qb, rows - 1)

        q.x_count = Signal(range(self.x_depth + 1))      # x entries written, not yet re-read
        q.e_credits = Signal(range(self.e_depth + 1))    # e entries reserved, not yet re-read
        q.rows_busy = Signal(range(rows + 1))            # rows between exp start and output fetch
        q.rows_waiting = Signal(range(rows + 3))         # rows ended at the input, not yet in the exp pass
        # Room flags are registered (margins: a count grows by one per cycle at most), which
        # keeps the counters' comparators off the handshake paths.
        q.e_room, q.rows_ok = Signal(), Signal()
        m.d.sync += [q.e_room.eq(q.e_credits < self.e_depth - 2), q.rows_ok.eq(q.rows_busy < rows - 1)]
        q.issue2, q.issue3 = Signal(), Signal()
        q.row_started, q.row_fetched, q.row_ended = Signal(), Signal(), Signal()
        q.e_up = q.issue2
        return q

    def _input_pass(self, m: Module, q) -> SimpleNamespace:
        """1. Input: ``i.ready`` is a register (room for the beat in the x buffer, online the
        e buffer, and for its row, with two beats of margin); accepting a beat needs no
        arithmetic. The beat is registered (``beat``), and with a row buffer written to the
        x buffer; ``row_end``: ``last`` or the n_max-th beat."""
        cfg = self.config
        width, n_max = cfg.input.width, cfg.n_max
        online = not self.x_depth
        count = Signal(range(n_max))
        at_first, at_cap = Signal(init=1), Signal()  # next beat starts / must end a row
        q.accept = accept = Signal()
        payload = self.i.payload
        masked = payload.mask if cfg.mask else Const(0)
        row_end = payload.last | at_cap
        ready = Signal(name="in_ready")
        if online:  # a row counts from its last accepted beat
            m.d.sync += ready.eq((q.e_credits < self.e_depth - 3) & (q.rows_busy < self.rows_in_flight - 2))
        else:
            m.d.sync += ready.eq((q.x_count < self.x_depth - 3) & (q.rows_waiting < self.rows_in_flight))
            x_wp = Signal(range(self.x_depth))
            m.d.comb += [q.x_write.en.eq(accept), q.x_write.addr.eq(x_wp),
                         q.x_write.data.eq(payload.data.as_unsigned() | (masked << width))]
            m.d.sync += x_wp.eq(x_wp + accept)  # (the strobe as a carry-in: no wide enable)
        m.d.comb += [self.i.ready.eq(ready), accept.eq(self.i.valid & ready), q.row_ended.eq(accept & row_end)]
        beat = SimpleNamespace(valid=Signal(), x=Signal(signed(width)), masked=Signal(), first=Signal(),
                               end=Signal(), n=Signal(range(1, n_max + 1)), key=Signal(width))
        m.d.sync += [beat.valid.eq(accept), beat.x.eq(payload.data), beat.masked.eq(masked),
                     beat.key.eq(Mux(masked, 0, Cat(payload.data[:-1], ~payload.data[-1]))),  # offset binary
                     beat.first.eq(at_first), beat.end.eq(row_end), beat.n.eq(count + 1)]
        with m.If(accept):
            m.d.sync += [count.eq(Mux(row_end, 0, count + 1)),
                         at_first.eq(row_end), at_cap.eq(~row_end & (count == n_max - 2))]
        if online:
            m.d.comb += q.row_started.eq(accept & row_end)
            q.e_up = accept
        return beat

    def _max_pass(self, m: Module, q, beat) -> None:
        """Row buffer: the row maximum, queued with the row's length ``MAX_STAGES`` cycles
        after its last beat. Two running maxima, of the odd and of the even positions of
        the row, so each loop spans two cycles (a comparator of registers, registered; then
        the load enable), joined at the row's end (compare, then select). Scores are
        compared in offset binary (unsigned); a masked beat's key is the lowest, which never
        wins and starts a row at the minimum (the golden model's max of no element)."""
        cfg = self.config
        width = cfg.input.width
        best = [Signal(width, name=f"running_max{k}", reset_less=True) for k in range(2)]
        pipe = FreePipeline(m, beat.valid)
        parity = ~beat.n[0]  # position 1, 3, ... -> 0
        s = pipe.stage("max_compare", key=beat.key, parity=parity, restart=beat.n <= 2, end=beat.end,
                       n=beat.n, **{f"not_above{k}": at_most(beat.key, acc) for k, acc in enumerate(best)})
        for k, acc in enumerate(best):
            with m.If(pipe.valid & (s.parity == k) & (s.restart | ~getattr(s, f"not_above{k}"))):
                m.d.sync += acc.eq(s.key)
        s = pipe.stage("max_update", end=s.end, n=s.n)
        s = pipe.stage("max_join", end=s.end, n=s.n, single=s.n == 1, even=best[0], odd=best[1],
                       odd_at_most=at_most(best[1], best[0]))
        s = pipe.stage("max_pick", end=s.end, n=s.n, key=Mux(s.single | s.odd_at_most, s.even, s.odd))
        assert pipe.stages == MAX_STAGES
        row_max = Cat(s.key[:-1], ~s.key[-1]).as_signed()
        m.d.comb += [q.rows_in.w_en.eq(pipe.valid & s.end), q.rows_in.w_data.eq(Cat(row_max, s.n))]

    def _exp_pass(self, m: Module, q) -> None:
        """2. Row buffer: re-read the row, exp2 of the distance from its max, write ``e_s``,
        and sum the unrounded ``e`` (``row_sums``: split accumulators, no restart mux)."""
        cfg, c = self.config, self.constants
        width = cfg.input.width
        cursor = RowCursor("exp", cfg.n_max, row_max=signed(width))
        x_rp = Signal(range(self.x_depth))
        issue = q.issue2
        m.d.comb += [issue.eq(cursor.active & q.e_room), q.x_read.en.eq(1), q.x_read.addr.eq(x_rp)]
        rows_in = q.rows_in
        rows_in_n = rows_in.r_data[width:]
        cursor.drive(m, issue, rows_in, rows_in_n, allow=q.rows_ok, row_max=rows_in.r_data[:width].as_signed())
        m.d.comb += [q.row_started.eq(rows_in.r_en),
                     q.lengths.w_en.eq(rows_in.r_en), q.lengths.w_data.eq(rows_in_n)]
        m.d.sync += x_rp.eq(x_rp + issue)

        pipe = FreePipeline(m, issue)
        s = pipe.stage("read", row_max=cursor.current("row_max"), first=cursor.first, last=cursor.last)
        s = pipe.stage("hold", x=q.x_read.data[:width].as_signed(), mask=q.x_read.data[width],  # RAM output
                       row_max=s.row_max, first=s.first, last=s.last)
        s = pipe.stage("distance", d=(s.row_max - s.x).as_unsigned()[:width], zero=s.mask, last=s.last)
        # registered again: Yosys takes the register in front of a multiply into the DSP block,
        # which would leave the subtractor's carry chain ending at the DSP input
        s = pipe.stage("distance_hold", d=s.d, zero=s.zero, last=s.last)
        e, r = exp2_pipeline(m, pipe, c, s.d, s.zero, last=s.last)
        e_s, r = round_half_even_split(pipe, e, c.ef - c.es, "round", SUM_CHUNK, e=e, last=r["last"])
        assert pipe.stages == self.exp_stages
        e_wp = Signal(range(self.e_depth))
        m.d.comb += [q.e_write.en.eq(pipe.valid), q.e_write.addr.eq(e_wp), q.e_write.data.eq(e_s)]
        m.d.sync += e_wp.eq(e_wp + pipe.valid)
        total, end = row_sums(pipe, r["e"], r["last"], c.sum_max.bit_length(), SUM_CHUNK)
        assert pipe.stages == self.exp_stages + self.sum_stages
        m.d.comb += [q.sums.w_en.eq(end), q.sums.w_data.eq(total)]

    def _reciprocals(self, m: Module, q) -> None:
        """``dividers`` units take the rows' sums in turn (a unit starts in the cycle it is
        handed a sum: the decision reads registers only) and finish in the same turn (they
        all take ``2 QB + 1`` cycles), so the reciprocal queue is written in row order."""
        sums, recips = q.sums, q.recips
        turn = [Signal(name=f"divider_turn{k}", init=k == 0) for k in range(self.dividers)]  # one-hot
        taken, done, result = [], [], []
        for k in range(self.dividers):
            m.submodules[f"reciprocal{k}"] = recip = SequentialReciprocal(self.constants)
            go = sums.r_valid & recip.idle & turn[k]
            m.d.comb += [recip.start.eq(go), recip.sum.eq(sums.r_data)]
            taken.append(go)
            done.append(recip.done)
            result.append(Mux(recip.done, recip.quotient, 0))
        went = Cat(*taken).any()
        m.d.comb += [sums.r_en.eq(went), recips.w_en.eq(Cat(*done).any()),
                     recips.w_data.eq(_or(result))]
        if self.dividers > 1:
            with m.If(went):
                m.d.sync += [turn[k].eq(turn[k - 1]) for k in range(self.dividers)]

    def _output_pass(self, m: Module, q) -> None:
        """3. Output: re-read ``e`` (online: shift it to the row's final max and round it),
        ``p = saturate(round_half_even(e_s * R))``. A free-running pipeline into a
        ``CreditQueue`` (registered ``admit``): a beat issues only while a credit is free,
        so o.ready reaches only the queue's flags and output registers."""
        cfg, c = self.config, self.constants
        online = not self.x_depth
        layout = sample_layout(cfg.output)
        m.submodules.output_queue = out_q = CreditQueue(layout, credits=self.output_queue, registered=True)
        fields = dict(recip=c.qb, row_max=self.tag_bits) if online else dict(recip=c.qb)
        cursor = RowCursor("out", cfg.n_max, **fields)
        e_rp = Signal(range(self.e_depth))
        issue = q.issue3
        # every e of a row is written before its R exists: no emptiness check needed
        m.d.comb += [issue.eq(out_q.admit & cursor.active), out_q.accept.eq(issue),
                     q.e_read.en.eq(1), q.e_read.addr.eq(e_rp)]
        lengths, recips = q.lengths, q.recips
        extra = dict(row_max=lengths.r_data[q.n_bits:]) if online else {}
        cursor.drive(m, issue, recips, lengths.r_data[:q.n_bits], recip=recips.r_data, **extra)
        m.d.comb += [lengths.r_en.eq(recips.r_en), q.row_fetched.eq(recips.r_en)]
        m.d.sync += e_rp.eq(e_rp + issue)
        pipe = FreePipeline(m, issue)
        if online:
            s = pipe.stage("read", recip=cursor.current("recip"), row_max=cursor.current("row_max"),
                           last=cursor.last)
            s = pipe.stage("hold", word=q.e_read.data, recip=s.recip, row_max=s.row_max, last=s.last)
            e_s = rescale_and_round(pipe, c, s.word, s.row_max, recip=s.recip, last=s.last)
            s = SimpleNamespace(e=e_s[0], **e_s[1])
        else:
            s = pipe.stage("read", recip=cursor.current("recip"), last=cursor.last)
            s = pipe.stage("hold", e=q.e_read.data, recip=s.recip, last=s.last)  # RAM output to fabric
        product, r = pipelined_product(pipe, s.e, s.recip, "scale", last=s.last)
        rounded, r = round_half_even_split(pipe, product, c.es + c.q, "out", SUM_CHUNK, last=r["last"])
        assert pipe.stages == self.output_stages
        m.d.comb += [out_q.w.valid.eq(pipe.valid), out_q.w.payload.data.eq(saturate(rounded, cfg.output)),
                     out_q.w.payload.last.eq(r["last"])]
        wiring.connect(m, out_q.o, wiring.flipped(self.o))


def _or(values):
    """The bitwise OR of ``values`` (at most one of them non-zero)."""
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
