"""Gateware side of the host protocol: UART byte streams <-> a block with any number of streams.

Contract
--------
:class:`HostBridge` speaks :mod:`fpga.host_protocol` (read that docstring for the frame
format and the commands) on a received-byte stream ``rx`` and a byte stream ``tx`` to send,
and drives a compute block through ``block_in<k>`` (one stream per block input, in the
block's port order, each of that input's flat payload width), ``block_out<k>`` (one per
block output) and ``block_reset``. It is composed of four parts joined by wires:

* :class:`~fpga.bridge_rx.FrameReceiver`: every byte unescaped, CRC-checked, counted and
  stored (``rx.ready`` is always high); a damaged frame is answered with a ``NAK`` and
  counted, a frame that completes while the bridge is busy is dropped and counted. So a
  lost, extra or corrupted byte costs exactly the frame it was in.
* :class:`~fpga.bridge_streams.StreamFeeder` and :class:`~fpga.bridge_streams.StreamCollector`:
  a ``RUN``'s sections fed to every input stream at once and every output stream collected
  at once, each stream behind its own registered beat (so the block sees flip-flops on
  every valid, ready and payload it receives).
* :class:`~fpga.bridge_tx.FrameSender`: the response, escaped, with its CRC.

The control here is a small FSM: ``INFO`` (constant answer with the live rejected count),
``RESET`` (``block_reset`` high for two cycles), ``RUN`` (section bases computed one stream
per cycle, lengths checked, then the run; a watchdog of about ``timeout_cycles`` cycles
without a beat moving ends it with ``STATUS_TIMEOUT``; after a timeout the block must be
reset, as the bridge withdraws a beat it may still be offering).

Resources: an input buffer of ``buffer_bytes`` and an output buffer of ``out_buffer_bytes``
(bytes; block RAM), one beat register per stream. Timing: no multiplier, no carry chain
longer than the 16-bit lengths, every decision registered (the board top's clock is set by
the block, not by the bridge).
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Module, Mux,
                          ResetSignal, Signal, signed)
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import host_protocol as hp
from .bridge_rx import FrameReceiver, crc16_next
from .bridge_streams import StreamCollector, StreamFeeder
from .bridge_tx import FrameSender

__all__ = ["HostBridge", "crc16_next", "reset_tap"]

WATCHDOG_PRESCALE = 64


def reset_tap(m, part, name: str, depth: int):
    """``part`` in a domain ``name`` on the ``sync`` clock whose reset is the ``sync``
    reset delayed by ``depth`` reset-less flip-flops (``depth`` >= 1, distinct per part).

    So each part's reset is a flip-flop of its own, placed near the part, rather than one
    net from the board's reset source to every flip-flop; distinct depths keep Yosys from
    merging the taps into one. A reset reaches the part ``depth`` cycles late.
    """
    chain = [Signal(init=1, reset_less=True, name=f"{name}_rst{k}") for k in range(depth)]
    m.d.sync += [tap.eq(prev) for tap, prev in zip(chain, [ResetSignal("sync"), *chain[:-1]])]
    domain = ClockDomain(name, local=True)
    m.domains += domain
    m.d.comb += [domain.clk.eq(ClockSignal("sync")), domain.rst.eq(chain[-1])]
    return DomainRenamer({"sync": name})(part)


class HostBridge(wiring.Component):
    """Framed command interpreter between a UART and a stream block (module docstring)."""

    #: which REJECT_* checks are enforced (all; the test suite clears one to prove that the
    #: board bench notices a bridge that lets damaged frames through)
    checks = hp.REJECT_CRC | hp.REJECT_LENGTH | hp.REJECT_UART | hp.REJECT_ESCAPE

    def __init__(self, in_widths, out_widths, *, buffer_bytes: int = 512,
                 out_buffer_bytes: int | None = None, timeout_cycles: int = 1 << 22,
                 design_id: int = 0, clock_hz: int = 0):
        self.in_widths = [int(w) for w in in_widths]
        self.out_widths = [int(w) for w in out_widths]
        assert self.in_widths and self.out_widths
        self.buffer_bytes = int(buffer_bytes)
        self.out_buffer_bytes = int(out_buffer_bytes or buffer_bytes)
        assert self.buffer_bytes >= max(map(hp.beat_bytes, self.in_widths)) + hp.CRC_BYTES
        assert self.out_buffer_bytes >= max(map(hp.beat_bytes, self.out_widths))
        assert max(self.buffer_bytes, self.out_buffer_bytes) <= 0xFFFF
        self.timeout_cycles = int(timeout_cycles)
        self.design_id, self.clock_hz = int(design_id), int(clock_hz)
        self.arg_bytes = hp.run_arg_bytes(len(self.in_widths), len(self.out_widths))
        members = {"rx": In(stream.Signature(8)), "rx_error": In(1),
                   "tx": Out(stream.Signature(8)), "block_reset": Out(1), "busy": Out(1),
                   "frame_ok": Out(1), "frame_bad": Out(1)}
        for k, w in enumerate(self.in_widths):
            members[f"block_in{k}"] = Out(stream.Signature(w))
        for k, w in enumerate(self.out_widths):
            members[f"block_out{k}"] = In(stream.Signature(w))
        super().__init__(members)

    def info(self) -> hp.Info:
        """The INFO answer, rejected count 0."""
        return hp.Info(hp.PROTOCOL_VERSION, self.buffer_bytes, self.out_buffer_bytes,
                       tuple(self.in_widths), tuple(self.out_widths), self.design_id, 0,
                       self.clock_hz)

    def elaborate(self, platform):
        m = Module()
        n_in, n_out = len(self.in_widths), len(self.out_widths)
        busy = Signal()
        m.submodules.inbuf = inbuf = Memory(shape=8, depth=self.buffer_bytes, init=[])
        m.submodules.outbuf = outbuf = Memory(shape=8, depth=self.out_buffer_bytes, init=[])
        in_w, in_r = inbuf.write_port(), inbuf.read_port()
        out_w, out_r = outbuf.write_port(), outbuf.read_port()
        rx = FrameReceiver(self.buffer_bytes, self.arg_bytes, self.checks)
        feeder = StreamFeeder(self.in_widths, self.buffer_bytes)
        coll = StreamCollector(self.out_widths, self.out_buffer_bytes)
        m.submodules.receiver = reset_tap(m, rx, "receiver", 1)
        m.submodules.feeder = reset_tap(m, feeder, "feeder", 2)
        m.submodules.collector = reset_tap(m, coll, "collector", 3)
        info_len = hp.info_bytes(n_in, n_out)
        run_head = 1 + 2 * n_out
        tx = FrameSender(max(info_len, run_head), self.out_buffer_bytes)
        m.submodules.sender = reset_tap(m, tx, "sender", 4)

        wiring.connect(m, wiring.flipped(self.rx), rx.rx)
        wiring.connect(m, tx.tx, wiring.flipped(self.tx))
        m.d.comb += [
            rx.rx_error.eq(self.rx_error), rx.busy.eq(busy),
            self.frame_ok.eq(rx.frame_ok), self.frame_bad.eq(rx.frame_bad),
            in_w.addr.eq(rx.wr_addr), in_w.data.eq(rx.wr_data), in_w.en.eq(rx.wr_en),
            in_r.addr.eq(feeder.rd_addr), feeder.rd_data.eq(in_r.data),
            out_w.addr.eq(coll.wr_addr), out_w.data.eq(coll.wr_data), out_w.en.eq(coll.wr_en),
            out_r.addr.eq(tx.rd_addr), tx.rd_data.eq(out_r.data),
        ]
        for k in range(n_in):
            wiring.connect(m, getattr(feeder, f"o{k}"), wiring.flipped(getattr(self, f"block_in{k}")))
        for k in range(n_out):
            wiring.connect(m, wiring.flipped(getattr(self, f"block_out{k}")), getattr(coll, f"i{k}"))

        # ------------------------------------------------------------ progress and watchdog
        fires = [getattr(self, f"block_in{k}").valid & getattr(self, f"block_in{k}").ready
                 for k in range(n_in)]
        fires += [getattr(self, f"block_out{k}").valid & getattr(self, f"block_out{k}").ready
                  for k in range(n_out)]
        progress, tick, timed_out = Signal(), Signal(), Signal()
        m.d.sync += progress.eq(Cat(*fires).any())
        prescale = Signal(range(WATCHDOG_PRESCALE))
        limit = max(2, -(-self.timeout_cycles // WATCHDOG_PRESCALE))
        ticks = Signal(range(limit + 1))
        m.d.sync += [prescale.eq(prescale + 1), tick.eq(prescale == WATCHDOG_PRESCALE - 1),
                     timed_out.eq(ticks == limit)]

        # ------------------------------------------------------------ command control
        # the response's fields: data registers, set at a decision, no reset of their own
        x_cmd, x_seq, status = (Signal(8, reset_less=True) for _ in range(3))
        is_info = Signal(reset_less=True)
        lens = Signal(8 * self.arg_bytes, reset_less=True)
        resp_len = Signal(16, reset_less=True)
        head_count = Signal.like(tx.head_count, reset_less=True)
        m.d.comb += [feeder.lens.eq(lens[:16 * n_in]), coll.lens.eq(lens[16 * n_in:]),
                     tx.cmd.eq(x_cmd), tx.seq.eq(x_seq), tx.length.eq(resp_len),
                     tx.head_count.eq(head_count)]
        info = [Const(b, 8) for b in self.info().pack()]
        info[hp.INFO_REJECTED_AT] = rx.rejected[:8]
        info[hp.INFO_REJECTED_AT + 1] = rx.rejected[8:]
        run = [status] + [getattr(coll, f"got{k}")[8 * j:8 * (j + 1)]
                          for k in range(n_out) for j in (0, 1)]
        head = []
        for k in range(tx.head_bytes):
            a = info[k] if k < len(info) else Const(0, 8)
            b = run[k] if k < len(run) else Const(0, 8)
            head.append(Mux(is_info, a, b))
        m.d.comb += tx.head.eq(Cat(*head))

        # the command decoded every cycle into registered flags: cmd is stable long before
        # the receiver's start pulse, so the control FSM sees one flip-flop per command
        cmd_info, cmd_reset, cmd_run = Signal(), Signal(), Signal()
        # the parts' setup / go / stop: registered pulses (no path from the FSM's decisions
        # into the feeder's and collector's enables)
        setup, go, stop, send_go = Signal(), Signal(), Signal(), Signal()
        m.d.sync += send_go.eq(0)
        m.d.comb += tx.go.eq(send_go)
        in_ok, out_ok = Signal(), Signal()       # the length checks, registered every cycle
        len_minus = Signal(signed(18), reset_less=True)      # the sections' bytes
        x_payload = Signal(signed(18), reset_less=True)
        m.d.sync += [len_minus.eq(rx.length - self.arg_bytes), in_ok.eq(feeder.total == x_payload),
                     out_ok.eq(coll.total <= self.out_buffer_bytes)]
        m.d.sync += [setup.eq(0), go.eq(0), stop.eq(0)]
        m.d.comb += [feeder.setup.eq(setup), coll.setup.eq(setup), feeder.go.eq(go),
                     coll.go.eq(go), feeder.stop.eq(stop), coll.stop.eq(stop)]
        m.d.sync += [cmd_info.eq(rx.cmd == hp.CMD_INFO), cmd_reset.eq(rx.cmd == hp.CMD_RESET),
                     cmd_run.eq(rx.cmd == hp.CMD_RUN)]
        # the control: one-hot state flip-flops; every condition a flip-flop, so each
        # state's next value and each register's enable is a gate or two of flip-flops
        st = SimpleNamespace(**{n: Signal(init=(n == "idle"), name=f"control_{n}") for n in (
            "idle", "taken", "refused", "reset1", "reset2", "setup", "settle1", "settle2",
            "wait", "check", "start_ok", "start_bad", "run", "send", "sending")})
        cmd_bad, parts_ready, parts_done = Signal(), Signal(), Signal()
        m.d.sync += [cmd_bad.eq(~((rx.cmd == hp.CMD_INFO) | (rx.cmd == hp.CMD_RESET)
                                   | (rx.cmd == hp.CMD_RUN))),
                     parts_ready.eq(feeder.ready & coll.ready),
                     parts_done.eq(feeder.done & coll.done)]
        # taken / refused: the receiver's start / nak pulse one cycle on (its cmd, seq,
        # length and args hold until the next frame's bytes, a UART character away), so
        # every field below is loaded by one flip-flop
        begin, refuse = st.taken, st.refused
        run_end = st.run & (parts_done | timed_out)
        m.d.sync += [
            st.idle.eq(st.idle & ~rx.start & ~rx.nak | st.sending & tx.done),
            st.taken.eq(st.idle & rx.start), st.refused.eq(st.idle & ~rx.start & rx.nak),
            st.reset1.eq(begin & cmd_reset), st.reset2.eq(st.reset1),
            st.setup.eq(begin & cmd_run), st.settle1.eq(st.setup), st.settle2.eq(st.settle1),
            st.wait.eq(st.settle2 | st.wait & ~parts_ready),
            st.check.eq(st.wait & parts_ready),   # in_ok / out_ok follow the totals
            st.start_ok.eq(st.check & in_ok & out_ok),
            st.start_bad.eq(st.check & ~(in_ok & out_ok)),
            st.run.eq(st.start_ok | st.run & ~parts_done & ~timed_out),
            st.send.eq(begin & (cmd_info | cmd_bad) | refuse | st.reset2
                       | st.start_bad | run_end),
            st.sending.eq(st.send | st.sending & ~tx.done),
        ]
        with m.If(begin):
            m.d.sync += [x_cmd.eq(rx.cmd | hp.RESPONSE_FLAG), x_seq.eq(rx.seq),
                         status.eq(Mux(cmd_bad, hp.STATUS_BAD_COMMAND, hp.STATUS_OK)),
                         resp_len.eq(Mux(cmd_info, info_len, 1)),
                         head_count.eq(Mux(cmd_info, info_len, 1)), is_info.eq(cmd_info),
                         x_payload.eq(len_minus), lens.eq(rx.args)]
        with m.If(begin & cmd_reset):
            m.d.sync += self.block_reset.eq(1)
        with m.If(refuse):
            m.d.sync += [x_cmd.eq(hp.CMD_NAK), x_seq.eq(rx.seq), resp_len.eq(1),
                         head_count.eq(1), is_info.eq(0), status.eq(rx.nak_reason)]
        with m.If(st.reset2):
            m.d.sync += self.block_reset.eq(0)
        with m.If(st.setup):
            m.d.sync += setup.eq(1)
        with m.If(st.start_ok):
            m.d.sync += [go.eq(1), resp_len.eq(run_head + coll.total),
                         head_count.eq(run_head)]
        with m.If(st.start_bad):
            m.d.sync += status.eq(hp.STATUS_BAD_LENGTH)
        # the watchdog: cleared outside a run and by every beat moved, stepped by the
        # prescaler's tick; both decisions registered (a cycle late: ticks are 64 cycles)
        ticks_clear, ticks_step = Signal(init=1), Signal()
        m.d.sync += [ticks_clear.eq(~st.run | progress), ticks_step.eq(tick)]
        with m.If(ticks_clear):
            m.d.sync += ticks.eq(0)
        with m.Elif(ticks_step):
            m.d.sync += ticks.eq(ticks + 1)
        with m.If(run_end):
            m.d.sync += stop.eq(1)
        with m.If(st.run & ~parts_done & timed_out):
            m.d.sync += status.eq(hp.STATUS_TIMEOUT)
        with m.If(st.send):
            m.d.sync += send_go.eq(1)
        # registered: busy reaches the receiver's end-of-frame decisions and the LEDs; a
        # frame cannot end within a cycle of the start pulse that made the bridge busy
        m.d.sync += busy.eq(~st.idle)
        m.d.comb += self.busy.eq(busy)
        return m
