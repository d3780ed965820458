"""Streaming fixed-point softmax unit (row buffer, base-2 exponent, exact reciprocal).

Algorithm: ``golden_models.softmax`` (this generator matches it bit for bit). Three
concurrent sections, each working on its own row, joined by two circular row buffers
(block RAM) and small row-descriptor FIFOs:

1. **Input** — accepts a beat per cycle, writes ``(x, mask)`` into the x buffer and keeps
   the running maximum of the unmasked scores; a row ends at ``last`` or at its ``n_max``-th
   beat (then that beat leaves with ``last`` set). At the row's end it queues
   ``(max, n)``.
2. **Exponent** — re-reads the row, ``e = 2**-((max - x) * log2 e)`` (``exp2_pipeline``:
   a constant multiply, an integer/fraction split, a piecewise polynomial for the fraction,
   a barrel shift for the integer part), writes ``e`` rounded to ``ob + g`` fraction bits
   into the e buffer and sums the unrounded ``e`` exactly. The row's sum goes to the
   reciprocal, ``R = floor(2**(ef+ob+g) / S)`` (``SequentialReciprocal``, ``QB`` cycles).
3. **Output** — re-reads ``e``, ``p = saturate(round_half_even(e * R))`` with ``last`` on the
   row's final beat, honouring backpressure (``StallPipeline``, 4 stages).

Interface
---------
``i``: ``In(stream.Signature(StructLayout({"data": signed(in_width), "last": 1[, "mask": 1]})))``
(``mask`` only with ``config.mask``: a masked beat outputs 0 and is not counted).
``o``: ``Out(stream.Signature(StructLayout({"data": unsigned(out_width), "last": 1})))``,
one beat per input beat, in order.

Timing
------
Throughput: one beat per cycle on ``i`` and ``o`` sustained over consecutive rows of
``n >= row_overhead`` beats (``2 QB + 3`` cycles: the reciprocal of a row must finish before
the next one's sum arrives); a row shorter than that occupies ``row_overhead`` cycles.
Latency: the exp pass of a row starts when its last beat is in and takes ``n`` cycles, so
the first output of a lone row of ``n`` beats comes ``2n + first_output_latency`` cycles
after its first input beat (``timing(config)``; ``QB + exp_stages + 14``). Over consecutive
rows the output trails the input by at most ``first_output_latency + 2 * max(n)`` cycles. Both buffers hold two rows (``2 * n_max`` entries, rounded
up to a power of two, the e buffer plus the pipeline slack), so the input pass of row
``i+1`` overlaps the exp pass of row ``i`` and the output pass of row ``i-1``.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden_models.softmax import constants_of

from .fixed import StallPipeline, round_half_even, sample_layout, saturate
from .softmax_arith import SequentialReciprocal, exp2_pipeline, exp2_stages
from .softmax_config import SoftmaxConfig

ROWS_IN_FLIGHT = 4  # rows between the exp pass and the output pass (descriptor FIFO depth)
OUTPUT_STAGES = 4   # read, multiply, round, saturate
OUTPUT_QUEUE = 8    # beats between the output pipeline and o (covers the pipeline's latency)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def timing(config: SoftmaxConfig) -> dict:
    """Cycle figures of the docstring for ``config`` (without building the component):
    ``exp_stages``, ``row_overhead``, ``first_output_latency``, ``x_depth``, ``e_depth``."""
    c = constants_of(config)
    exp_stages = 2 + exp2_stages(c) + 1  # read, distance, exp2..., sum/round
    return {"exp_stages": exp_stages, "row_overhead": 2 * c.qb + 3,
            # input registers 2, row descriptor queue 3, exp pass, sum queue 2, divider 2 QB + 1, reciprocal
            # queue 2, prefetch 1, output start 1, output pipeline, output queue 2, the consumer's edge 1
            "first_output_latency": 5 + exp_stages + 2 + 2 * c.qb + 1 + 2 + 2 + OUTPUT_STAGES + 2 + 1,
            "x_depth": _pow2_at_least(2 * config.n_max + 4),
            "e_depth": _pow2_at_least(2 * config.n_max + exp_stages + c.qb + 8)}


class _RowCursor:
    """Counts the beats of the row a pass is issuing. ``active``: a row is loaded; ``last``
    (a register, off every critical path): the next issued beat ends the row."""

    def __init__(self, name: str, count_shape):
        self.active = Signal(name=f"{name}_active")
        self.left = Signal(count_shape, name=f"{name}_left")
        self.last = Signal(name=f"{name}_last")

    def update(self, m: Module, issue, load, n) -> None:
        """``load`` a new row of ``n`` beats (may coincide with issuing the old row's end).

        Written as flat next-state expressions (no priority chain of enables)."""
        end = issue & self.last
        m.d.sync += [
            self.active.eq(load | (self.active & ~end)),
            self.left.eq(Mux(load, n, Mux(issue, self.left - 1, self.left))),
            self.last.eq(Mux(load, n == 1, Mux(issue, self.left == 2, self.last))),
        ]


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
        cfg, c = self.config, self.constants
        width, n_max = cfg.input.width, cfg.n_max
        count_shape = range(1, n_max + 1)

        # ---------------------------------------------------------------- buffers and queues
        m.submodules.x_buffer = x_mem = Memory(shape=width + 1, depth=self.x_depth, init=[])
        m.submodules.e_buffer = e_mem = Memory(shape=c.e_max.bit_length() - (c.ef - c.es) + 1,
                                               depth=self.e_depth, init=[])
        x_write, x_read = x_mem.write_port(), x_mem.read_port()
        e_write, e_read = e_mem.write_port(), e_mem.read_port()
        n_bits = Shape.cast(count_shape).width
        m.submodules.rows_in = rows_in = SyncFIFOBuffered(width=width + n_bits, depth=ROWS_IN_FLIGHT + 3)
        m.submodules.row_lengths = lengths = SyncFIFOBuffered(width=n_bits, depth=ROWS_IN_FLIGHT)
        m.submodules.sums = sums = SyncFIFOBuffered(width=c.sum_max.bit_length(), depth=ROWS_IN_FLIGHT)
        m.submodules.reciprocal = recip = SequentialReciprocal(c)
        m.submodules.reciprocals = recips = SyncFIFOBuffered(width=c.qb, depth=ROWS_IN_FLIGHT)

        x_count = Signal(range(self.x_depth + 1))      # x entries written, not yet re-read
        e_credits = Signal(range(self.e_depth + 1))    # e entries reserved, not yet re-read
        rows_busy = Signal(range(ROWS_IN_FLIGHT + 1))  # rows between exp start and output fetch
        # Room flags are registered (one entry of margin: a count grows by one per cycle at
        # most), which keeps the counters' comparators off the handshake paths.
        x_room, e_room = Signal(), Signal()
        m.d.sync += [x_room.eq(x_count < self.x_depth - 1), e_room.eq(e_credits < self.e_depth - 1)]

        # ---------------------------------------------------------------- 1. input pass
        # Accepting a beat needs no arithmetic: it is written to the x buffer and registered;
        # the running maximum is updated a cycle later, and a finished row's (max, n) is
        # queued a cycle after that (so ``rows_in`` needs room for two more rows).
        x_wp = Signal(range(self.x_depth))
        count = Signal(range(n_max))
        at_first, at_cap = Signal(init=1), Signal()  # next beat starts / must end a row
        rows_room = Signal()
        accept = Signal()
        payload = self.i.payload
        masked = payload.mask if cfg.mask else Const(0)
        row_end = payload.last | at_cap
        m.d.comb += [
            self.i.ready.eq(x_room & rows_room),
            accept.eq(self.i.valid & self.i.ready),
            x_write.en.eq(accept), x_write.addr.eq(x_wp),
            x_write.data.eq(payload.data.as_unsigned() | (masked << width)),
        ]
        m.d.sync += rows_room.eq(rows_in.level < ROWS_IN_FLIGHT)
        beat = SimpleNamespace(valid=Signal(), x=Signal(signed(width)), masked=Signal(), first=Signal(),
                               end=Signal(), n=Signal(count_shape))
        m.d.sync += beat.valid.eq(accept)
        with m.If(accept):
            m.d.sync += [x_wp.eq(x_wp + 1), count.eq(Mux(row_end, 0, count + 1)),
                         at_first.eq(row_end), at_cap.eq(~row_end & (count == n_max - 2)),
                         beat.x.eq(payload.data), beat.masked.eq(masked), beat.first.eq(at_first),
                         beat.end.eq(row_end), beat.n.eq(count + 1)]
        running_max = Signal(signed(width))
        previous = Mux(beat.first, cfg.input.min_int, running_max)
        push, push_n = Signal(), Signal(count_shape)
        m.d.sync += push.eq(beat.valid & beat.end)
        with m.If(beat.valid):
            m.d.sync += [running_max.eq(Mux(~beat.masked & (beat.x > previous), beat.x, previous)),
                         push_n.eq(beat.n)]
        m.d.comb += [rows_in.w_en.eq(push), rows_in.w_data.eq(Cat(running_max, push_n))]

        # ---------------------------------------------------------------- 2. exp pass
        cursor2 = _RowCursor("exp", count_shape)
        max2 = Signal(signed(width))
        first2 = Signal()
        x_rp = Signal(range(self.x_depth))
        issue2, end2, load2 = Signal(), Signal(), Signal()
        rows_in_max = rows_in.r_data[:width].as_signed()
        rows_in_n = rows_in.r_data[width:]
        row_started, row_fetched = Signal(), Signal()
        m.d.comb += [
            issue2.eq(cursor2.active & e_room),
            end2.eq(issue2 & cursor2.last),
            load2.eq(rows_in.r_rdy & (~cursor2.active | end2) & (rows_busy < ROWS_IN_FLIGHT)),
            rows_in.r_en.eq(load2), row_started.eq(load2),
            lengths.w_en.eq(load2), lengths.w_data.eq(rows_in_n),
            x_read.en.eq(1), x_read.addr.eq(x_rp),
        ]
        cursor2.update(m, issue2, load2, rows_in_n)
        with m.If(load2):
            m.d.sync += [max2.eq(rows_in_max), first2.eq(1)]
        with m.Elif(issue2):
            m.d.sync += first2.eq(0)
        with m.If(issue2):
            m.d.sync += x_rp.eq(x_rp + 1)

        pipe2 = StallPipeline(m, Const(1))
        s = pipe2.stage("read", go=issue2, row_max=max2, first=first2, last=end2)
        x2, mask2 = x_read.data[:width].as_signed(), x_read.data[width]
        s = pipe2.stage("distance", d=(s.row_max - x2).as_unsigned()[:width], zero=mask2,
                        go=s.go, first=s.first, last=s.last)
        e, r = exp2_pipeline(m, pipe2, c, s.d, s.zero, go=s.go, first=s.first, last=s.last)
        total = Signal(c.sum_max.bit_length())
        s = pipe2.stage("sum", go=r["go"], last=r["last"], total=Mux(r["go"], Mux(r["first"], 0, total) + e, total),
                        e_s=round_half_even(e, c.ef - c.es))
        assert pipe2.stages == self.exp_stages
        m.d.comb += total.eq(s.total)
        e_wp = Signal(range(self.e_depth))
        m.d.comb += [e_write.en.eq(s.go), e_write.addr.eq(e_wp), e_write.data.eq(s.e_s),
                     sums.w_en.eq(s.go & s.last), sums.w_data.eq(s.total)]
        with m.If(s.go):
            m.d.sync += e_wp.eq(e_wp + 1)

        # ---------------------------------------------------------------- reciprocal
        m.d.comb += [recip.i.valid.eq(sums.r_rdy), recip.i.payload.eq(sums.r_data),
                     sums.r_en.eq(recip.i.ready),
                     recips.w_en.eq(recip.o.valid), recips.w_data.eq(recip.o.payload),
                     recip.o.ready.eq(recips.w_rdy)]

        # ---------------------------------------------------------------- 3. output pass
        # The output pass runs free (no global stall): it issues a beat only while the output
        # queue has room for everything in flight, so o.ready reaches nothing but that queue.
        m.submodules.output_queue = out_q = SyncFIFOBuffered(width=cfg.output.width + 1, depth=OUTPUT_QUEUE)
        out_credits = Signal(range(OUTPUT_QUEUE + 1))  # beats issued, not yet taken from o
        out_room = Signal()
        m.d.sync += out_room.eq(out_credits < OUTPUT_QUEUE - 1)
        pipe3 = StallPipeline(m, Const(1))
        advance = out_room
        # The next row's (R, n) is fetched into registers ahead of time, so starting a row
        # (at the old row's last beat) never waits on a FIFO's read path.
        next_valid, next_r, next_n = Signal(), Signal(c.qb), Signal(count_shape)
        cursor3 = _RowCursor("out", count_shape)
        r3 = Signal(c.qb)
        e_rp = Signal(range(self.e_depth))
        issue3, end3, take3 = Signal(), Signal(), Signal()
        m.d.comb += [
            row_fetched.eq(~next_valid & recips.r_rdy & lengths.r_rdy),
            recips.r_en.eq(row_fetched), lengths.r_en.eq(row_fetched),
            # every e of a row is written before its R exists: no emptiness check needed
            issue3.eq(advance & cursor3.active),
            end3.eq(issue3 & cursor3.last),
            take3.eq(next_valid & (~cursor3.active | end3)),
            e_read.en.eq(1), e_read.addr.eq(e_rp),
        ]
        with m.If(row_fetched):
            m.d.sync += [next_valid.eq(1), next_r.eq(recips.r_data), next_n.eq(lengths.r_data)]
        with m.Elif(take3):
            m.d.sync += next_valid.eq(0)
        cursor3.update(m, issue3, take3, next_n)
        with m.If(take3):
            m.d.sync += r3.eq(next_r)
        with m.If(issue3):
            m.d.sync += e_rp.eq(e_rp + 1)
        s = pipe3.stage("read", recip=r3, last=end3)
        s = pipe3.stage("scale", product=e_read.data * s.recip, last=s.last)
        result, last = pipe3.narrow(s.product, c.es + c.q, cfg.output, "out", s.last)
        assert pipe3.stages == OUTPUT_STAGES
        taken = self.o.valid & self.o.ready
        m.d.comb += [out_q.w_en.eq(pipe3.valid_chain(issue3, OUTPUT_STAGES)),
                     out_q.w_data.eq(Cat(result, last)),
                     self.o.valid.eq(out_q.r_rdy), out_q.r_en.eq(self.o.ready),
                     self.o.payload.data.eq(out_q.r_data[:cfg.output.width]),
                     self.o.payload.last.eq(out_q.r_data[-1])]

        # ---------------------------------------------------------------- occupancy counters
        m.d.sync += [
            x_count.eq(x_count + accept - issue2),
            e_credits.eq(e_credits + issue2 - issue3),
            rows_busy.eq(rows_busy + row_started - row_fetched),
            out_credits.eq(out_credits + issue3 - taken),
        ]
        return m
