"""Gateware side of the host protocol: UART byte streams <-> any one-in/one-out stream block.

Contract
--------
:class:`HostBridge` speaks :mod:`fpga.host_protocol` (read that docstring for the frame
format and the commands) on a received-byte stream ``rx`` and a byte stream ``tx`` to send,
and drives a compute block through ``block_in`` / ``block_out`` (streams of the block's flat
payload width) and ``block_reset``.

* Receiving never stops: ``rx.ready`` is always high, every byte is unescaped, counted,
  CRC-checked and (after the 8-byte header-plus-arguments) written to the input buffer.
  At each ``END`` a non-empty frame is accepted only if its CRC residue is 0, its size is
  ``len + 6``, no UART error (``rx_error``) and no bad escape happened inside it, and it fits
  the buffer. A rejected frame pulses ``frame_bad``, increments the rejected-frame count and
  is answered with a ``NAK``; a frame that completes while the bridge is busy is dropped and
  counted (its bytes were not stored: the buffer is read-only while busy). So a lost,
  extra or corrupted byte costs exactly the frame it was in.
* Commands: ``INFO`` (constant answer plus the rejected count), ``RESET`` (``block_reset``
  high for two cycles), ``RUN`` (feed ``n_in`` beats from the buffer to ``block_in`` while
  collecting ``n_out`` beats from ``block_out`` into the output buffer; a watchdog of
  ``timeout_cycles`` cycles without progress ends the run with ``STATUS_TIMEOUT``; after a
  timeout the block must be reset, as the bridge withdraws a beat it may still be
  offering).
* Beats are assembled from / split into ``ceil(width / 8)`` bytes, little-endian, two
  cycles per input byte and one cycle per output byte (the UART is far slower).

Resources: two ``buffer_bytes`` x 8 memories (one block RAM each on iCE40 for 512 bytes).
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import host_protocol as hp

__all__ = ["HostBridge", "crc16_next"]

ARG_BYTES = 4   # RUN's n_in and n_out come before the buffered bytes


def crc16_next(crc: Value, byte: Value) -> Value:
    """CRC-16/CCITT-FALSE register after one more byte (mirrors :func:`hp.crc16`).

    The step is linear over GF(2): each next-state bit is the XOR of the register and data
    bits whose unit vectors set it (found by running the host's :func:`hp.crc16`), i.e. a
    flat XOR per bit rather than eight chained shift/XOR stages.
    """
    inputs = Cat(Value.cast(crc)[:16], Value.cast(byte)[:8])
    columns = [hp.crc16(bytes((0,)), 1 << i) for i in range(16)]
    columns += [hp.crc16(bytes((1 << i,)), 0) for i in range(8)]
    bits = []
    for j in range(16):
        taps = [inputs[i] for i, col in enumerate(columns) if col >> j & 1]
        bit = taps[0]
        for tap in taps[1:]:
            bit = bit ^ tap
        bits.append(bit)
    return Cat(*bits)


class HostBridge(wiring.Component):
    """Framed command interpreter between a UART and a stream block (module docstring)."""

    #: which REJECT_* checks are enforced (all; the test suite clears one to prove that the
    #: board bench notices a bridge that lets damaged frames through)
    checks = hp.REJECT_CRC | hp.REJECT_LENGTH | hp.REJECT_UART | hp.REJECT_ESCAPE

    def __init__(self, in_width: int, out_width: int, *, buffer_bytes: int = 512,
                 timeout_cycles: int = 1 << 22, design_id: int = 0, clock_hz: int = 0):
        self.in_width, self.out_width = int(in_width), int(out_width)
        self.in_bytes, self.out_bytes = hp.beat_bytes(in_width), hp.beat_bytes(out_width)
        assert buffer_bytes >= max(self.in_bytes, self.out_bytes) + hp.CRC_BYTES
        self.buffer_bytes = int(buffer_bytes)
        self.timeout_cycles = int(timeout_cycles)
        self.design_id, self.clock_hz = int(design_id), int(clock_hz)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "rx_error": In(1),
            "tx": Out(stream.Signature(8)),
            "block_in": Out(stream.Signature(self.in_width)),
            "block_out": In(stream.Signature(self.out_width)),
            "block_reset": Out(1),
            "busy": Out(1),
            "frame_ok": Out(1),
            "frame_bad": Out(1),
        })

    def info_bytes(self, rejected: Value) -> list:
        """The INFO payload, constant except for the live rejected-frame count."""
        info = hp.Info(hp.PROTOCOL_VERSION, self.in_bytes, self.out_bytes, self.buffer_bytes,
                       self.in_width, self.out_width, self.design_id, 0, self.clock_hz)
        raw = [Const(b, 8) for b in info.pack()]
        at = hp.INFO_BYTES - 6          # rejected count: bytes 15..16 of INFO_FORMAT
        raw[at], raw[at + 1] = rejected[:8], rejected[8:16]
        return raw

    def elaborate(self, platform):
        m = Module()
        m.submodules.inbuf = inbuf = Memory(shape=8, depth=self.buffer_bytes, init=[])
        m.submodules.outbuf = outbuf = Memory(shape=8, depth=self.buffer_bytes, init=[])
        in_w, in_r = inbuf.write_port(), inbuf.read_port()
        out_w, out_r = outbuf.write_port(), outbuf.read_port()
        busy = self.busy

        # ---------------------------------------------------------------- receive and check
        max_pos = hp.HEADER_BYTES + ARG_BYTES + self.buffer_bytes
        pos = Signal(range(max_pos + 1))
        crc = Signal(16, init=hp.CRC_INIT)
        escaped, bad_escape, uart_error, overflow = Signal(), Signal(), Signal(), Signal()
        cmd, seq, length, args = Signal(8), Signal(8), Signal(16), Signal(32)
        expect_pos = Signal(17)          # length + 6, registered when the length is complete
        data, data_valid, end = Signal(8), Signal(), Signal()
        rejected = Signal(16)
        # stage 0: the received byte and its comparisons, registered (bytes come at most
        # once per UART character, so this and the registered checks below lag harmlessly)
        byte, got_byte = Signal(8), Signal()
        is_end, is_esc, is_esc_end, is_esc_esc = Signal(), Signal(), Signal(), Signal()
        m.d.comb += self.rx.ready.eq(1)
        m.d.sync += [byte.eq(self.rx.payload), got_byte.eq(self.rx.valid),
                     is_end.eq(self.rx.payload == hp.END), is_esc.eq(self.rx.payload == hp.ESC),
                     is_esc_end.eq(self.rx.payload == hp.ESC_END),
                     is_esc_esc.eq(self.rx.payload == hp.ESC_ESC)]
        with m.If(got_byte):
            with m.If(is_end):
                m.d.comb += end.eq(1)
            with m.Elif(escaped):
                m.d.sync += escaped.eq(0)
                with m.If(is_esc_end | is_esc_esc):
                    m.d.comb += [data_valid.eq(1), data.eq(Mux(is_esc_end, hp.END, hp.ESC))]
                with m.Else():
                    m.d.sync += bad_escape.eq(1)
            with m.Elif(is_esc):
                m.d.sync += escaped.eq(1)
            with m.Else():
                m.d.comb += [data_valid.eq(1), data.eq(byte)]
        with m.If(self.rx_error):
            m.d.sync += uart_error.eq(1)
        with m.If(data_valid):
            m.d.sync += crc.eq(crc16_next(crc, data))
            with m.If(pos == max_pos):
                m.d.sync += overflow.eq(1)
            with m.Else():
                m.d.sync += pos.eq(pos + 1)
            with m.Switch(pos):
                with m.Case(0):
                    m.d.sync += cmd.eq(data)
                with m.Case(1):
                    m.d.sync += seq.eq(data)
                with m.Case(2):
                    m.d.sync += length.eq(Cat(length[8:], data))
                with m.Case(3):
                    m.d.sync += [length.eq(Cat(length[8:], data)),
                                 expect_pos.eq(Cat(length[8:], data)
                                               + hp.HEADER_BYTES + hp.CRC_BYTES)]
                with m.Case(4, 5, 6, 7):
                    m.d.sync += args.eq(Cat(args[8:], data))
            m.d.comb += [in_w.addr.eq(pos - hp.HEADER_BYTES - ARG_BYTES), in_w.data.eq(data),
                         in_w.en.eq(~busy & (pos >= hp.HEADER_BYTES + ARG_BYTES)
                                    & (pos != max_pos))]

        crc_bad, size_bad = Signal(), Signal()   # registered: valid one cycle after a byte
        m.d.sync += [crc_bad.eq(crc != 0), size_bad.eq(overflow | (pos != expect_pos))]
        reason = Cat(crc_bad, size_bad, uart_error, bad_escape) & self.checks
        nonempty = Signal()
        m.d.sync += nonempty.eq((pos != 0) | bad_escape | uart_error)
        start, start_nak, nak_reason = Signal(), Signal(), Signal(4)
        with m.If(end):
            m.d.sync += [pos.eq(0), crc.eq(hp.CRC_INIT), escaped.eq(0), bad_escape.eq(0),
                         uart_error.eq(0), overflow.eq(0)]
            with m.If(nonempty):
                with m.If((reason == 0) & ~busy):
                    m.d.comb += [start.eq(1), self.frame_ok.eq(1)]
                with m.Else():
                    m.d.comb += self.frame_bad.eq(1)
                    m.d.sync += rejected.eq(rejected + 1)
                    with m.If(~busy):
                        m.d.comb += [start_nak.eq(1), nak_reason.eq(reason)]

        # ---------------------------------------------------------------- run: feed + collect
        def stop():                      # the control FSM ends a run: back to IDLE
            with m.If(run_stop):
                m.next = "IDLE"

        x_args = Signal(32)              # RUN's arguments, latched at the start
        n_in = x_args[:16]
        n_out = Signal(16)               # latched: the parser goes on while a run is busy
        run_go, run_stop = Signal(), Signal()
        # counters sized by the buffer: RUN_CHECK has bounded n_in and n_out before a run
        beats_max = self.buffer_bytes // min(self.in_bytes, self.out_bytes)
        feed_left = Signal(range(beats_max + 1))
        feed_addr = Signal(range(self.buffer_bytes))
        feed_byte = Signal(range(self.in_bytes))
        feed_beat = Signal(8 * self.in_bytes)
        m.d.comb += [in_r.addr.eq(feed_addr), self.block_in.payload.eq(feed_beat)]
        with m.FSM(name="feeder") as feeder:
            with m.State("IDLE"):
                with m.If(run_go):
                    m.d.sync += [feed_left.eq(n_in), feed_addr.eq(0), feed_byte.eq(0)]
                    m.next = "READ"
            with m.State("READ"):           # in_r.data shows feed_addr's byte next cycle
                m.next = "CAPTURE"
                with m.If(feed_left == 0):
                    m.next = "DONE"
                stop()
            with m.State("CAPTURE"):
                m.d.sync += [feed_beat.eq(Cat(feed_beat[8:], in_r.data)),
                             feed_addr.eq(feed_addr + 1), feed_byte.eq(feed_byte + 1)]
                m.next = "READ"
                with m.If(feed_byte == self.in_bytes - 1):
                    m.d.sync += feed_byte.eq(0)
                    m.next = "OFFER"
                stop()
            with m.State("OFFER"):
                m.d.comb += self.block_in.valid.eq(1)
                with m.If(self.block_in.ready):
                    m.d.sync += feed_left.eq(feed_left - 1)
                    m.next = "READ"
                stop()
            with m.State("DONE"):
                stop()

        got, more = Signal(range(beats_max + 1)), Signal()
        out_addr = Signal(range(self.buffer_bytes + 1))
        out_byte = Signal(range(self.out_bytes))
        out_beat = Signal(8 * self.out_bytes)
        m.d.comb += [out_w.addr.eq(out_addr), out_w.data.eq(out_beat[:8])]
        with m.FSM(name="collector"):
            with m.State("IDLE"):
                with m.If(run_go):
                    m.d.sync += [got.eq(0), out_addr.eq(0), out_byte.eq(0),
                                 more.eq(x_args[16:] != 0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                # a register drives ready: it fans out to every stage enable of the block
                m.d.comb += self.block_out.ready.eq(more)
                with m.If(self.block_out.valid & self.block_out.ready):
                    m.d.sync += [out_beat.eq(self.block_out.payload), got.eq(got + 1),
                                 more.eq(got + 1 != n_out)]
                    m.next = "WRITE"
                stop()
            with m.State("WRITE"):
                m.d.comb += out_w.en.eq(1)
                m.d.sync += [out_addr.eq(out_addr + 1), out_byte.eq(out_byte + 1),
                             out_beat.eq(out_beat >> 8)]
                with m.If(out_byte == self.out_bytes - 1):
                    m.d.sync += out_byte.eq(0)
                    m.next = "WAIT"
                stop()

        # ---------------------------------------------------------------- command control
        x_cmd, x_seq, status = Signal(8), Signal(8), Signal(8)
        x_length, run_ok = Signal(16), Signal()
        resp_len = Signal(range(max(self.buffer_bytes, hp.INFO_BYTES) + 4))
        watchdog = Signal(range(self.timeout_cycles + 1))
        send_go, send_done = Signal(), Signal()
        with m.FSM(name="control") as control:
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [x_cmd.eq(cmd | hp.RESPONSE_FLAG), x_seq.eq(seq),
                                 status.eq(hp.STATUS_OK), resp_len.eq(1)]
                    with m.Switch(cmd):
                        with m.Case(hp.CMD_INFO):
                            m.d.sync += resp_len.eq(hp.INFO_BYTES)
                            m.next = "SEND"
                        with m.Case(hp.CMD_RESET):
                            m.next = "RESET"
                        with m.Case(hp.CMD_RUN):
                            m.d.sync += [x_length.eq(length), x_args.eq(args)]
                            m.next = "RUN_CHECK"
                        with m.Default():
                            m.d.sync += status.eq(hp.STATUS_BAD_COMMAND)
                            m.next = "SEND"
                with m.Elif(start_nak):
                    m.d.sync += [x_cmd.eq(hp.CMD_NAK), x_seq.eq(seq), status.eq(nak_reason),
                                 resp_len.eq(1)]
                    m.next = "SEND"
            with m.State("RUN_CHECK"):      # registered in, registered out: short paths
                m.d.sync += run_ok.eq((x_length == ARG_BYTES + x_args[:16] * self.in_bytes)
                                      & (x_args[16:] * self.out_bytes <= self.buffer_bytes))
                m.next = "RUN_START"
            with m.State("RUN_START"):
                with m.If(run_ok):
                    m.d.comb += run_go.eq(1)
                    m.d.sync += [watchdog.eq(0), n_out.eq(x_args[16:])]
                    m.next = "RUN"
                with m.Else():
                    m.d.sync += status.eq(hp.STATUS_BAD_LENGTH)
                    m.next = "SEND"
            with m.State("RESET"):
                m.d.comb += self.block_reset.eq(1)
                m.next = "RESET2"
            with m.State("RESET2"):
                m.d.comb += self.block_reset.eq(1)
                m.next = "SEND"
            with m.State("RUN"):
                progress = ((self.block_in.valid & self.block_in.ready)
                            | (self.block_out.valid & self.block_out.ready) | out_w.en)
                m.d.sync += watchdog.eq(Mux(progress, 0, watchdog + 1))
                finished = feeder.ongoing("DONE") & (got == n_out) & ~out_w.en
                with m.If(finished | (watchdog == self.timeout_cycles)):
                    m.d.comb += run_stop.eq(1)
                    m.d.sync += [resp_len.eq(3 + out_addr),
                                 status.eq(Mux(finished, hp.STATUS_OK, hp.STATUS_TIMEOUT))]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += send_go.eq(1)
                m.next = "SENDING"
            with m.State("SENDING"):
                with m.If(send_done):
                    m.next = "IDLE"
        m.d.comb += busy.eq(~control.ongoing("IDLE"))

        # ---------------------------------------------------------------- transmit (escaped)
        # tx_raw: a framing END, sent as is; every other byte is escaped when special
        tx_data, tx_raw, tx_full, tx_second = Signal(8), Signal(), Signal(), Signal()
        special = (tx_data == hp.END) | (tx_data == hp.ESC)
        escape_it = special & ~tx_raw
        m.d.comb += [
            self.tx.valid.eq(tx_full),
            self.tx.payload.eq(Mux(tx_second, Mux(tx_data == hp.END, hp.ESC_END, hp.ESC_ESC),
                                   Mux(escape_it, hp.ESC, tx_data))),
        ]
        with m.If(self.tx.valid & self.tx.ready):
            with m.If(escape_it & ~tx_second):
                m.d.sync += tx_second.eq(1)
            with m.Else():
                m.d.sync += [tx_full.eq(0), tx_second.eq(0)]

        tx_crc = Signal(16)
        index, last_index = Signal.like(resp_len), Signal.like(resp_len)
        info = Array(self.info_bytes(rejected))
        m.d.comb += out_r.addr.eq(index - 3)   # read ahead: valid long before it is needed
        body = Mux(x_cmd == (hp.CMD_INFO | hp.RESPONSE_FLAG), info[index],
                   Mux(index == 0, status, Mux(index == 1, got[:8],
                                               Mux(index == 2, got[8:], out_r.data))))

        # the CRC takes in a loaded byte one cycle later, from the register (short paths);
        # the CRC bytes are loaded no earlier than two cycles after the last body byte
        crc_due = Signal()
        m.d.sync += crc_due.eq(0)
        with m.If(crc_due):
            m.d.sync += tx_crc.eq(crc16_next(tx_crc, tx_data))

        def load(byte, *, raw=False, crc=True):
            m.d.sync += [tx_data.eq(byte), tx_raw.eq(raw), tx_full.eq(1), crc_due.eq(crc)]

        with m.FSM(name="sender"):
            with m.State("IDLE"):
                with m.If(send_go):
                    m.d.sync += [tx_crc.eq(hp.CRC_INIT), index.eq(0),
                                 last_index.eq(resp_len - 1)]
                    m.next = "START"
            with m.State("START"):
                with m.If(~tx_full):
                    load(hp.END, raw=True, crc=False)
                    m.next = "HEADER"
            with m.State("HEADER"):
                with m.If(~tx_full):
                    load(Array([x_cmd, x_seq, resp_len[:8], resp_len[8:]])[index])
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 3):
                        m.d.sync += index.eq(0)
                        m.next = "BODY"      # every response has a payload
            with m.State("BODY"):
                with m.If(~tx_full):
                    load(body)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == last_index):
                        m.next = "CRC_HI"
            with m.State("CRC_HI"):
                with m.If(~tx_full):
                    load(tx_crc[8:], crc=False)
                    m.next = "CRC_LO"
            with m.State("CRC_LO"):
                with m.If(~tx_full):
                    load(tx_crc[:8], crc=False)
                    m.next = "STOP"
            with m.State("STOP"):
                with m.If(~tx_full):
                    load(hp.END, raw=True, crc=False)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~tx_full):
                    m.d.comb += send_done.eq(1)
                    m.next = "IDLE"
        return m
