"""Board tops: any stream block (any number of input and output streams) behind the UART
host link, on real boards.

Contract
--------
* :func:`stream_ports` finds the block's ``In`` and ``Out`` ``amaranth.lib.stream``
  members, in signature order (payload width and leaf fields from the signature, nested
  arrays and structs flattened by :func:`fpga.layout.leaves`); any other kind of port is
  refused with ``ValueError`` naming it.
* :class:`BoardCore` is everything that runs on the chip in the ``sync`` domain:
  :class:`~fpga.uart.UARTReceiver` -> :class:`~fpga.bridge.HostBridge` ->
  :class:`~fpga.uart.UARTTransmitter`, the block (reset by the power-on reset and by the
  ``RESET`` command) and three status LEDs: ``leds[0]`` heartbeat (about 1 Hz),
  ``leds[1]`` busy/activity (stretched to ~50 ms), ``leds[2]`` "last frame was rejected"
  (cleared by the next good frame). Its ports ``uart_rx``, ``uart_tx``, ``leds`` plus the
  implicit ``clk``/``rst`` are what the cocotb board bench drives.
* :class:`BoardTop` puts a :class:`BoardCore` on a board of :data:`BOARDS` through its
  ``amaranth-boards`` platform: the board oscillator feeds a PLL when the requested clock
  differs from it (:mod:`fpga.pll`), the ``sync`` domain is held in reset until the PLL has
  locked and ~15 us more (iCE40 block RAMs read zero right after configuration), the UART
  pins are the board's USB-UART (FTDI) pins and the LEDs the board's user LEDs (iCEBreaker:
  heartbeat ``led_g`` 0, busy on the snap-off PMOD's first green LED, error ``led_r`` 0;
  ULX3S and Tang Nano 9K: ``led`` 0, 1, 2).
"""

import json
from dataclasses import dataclass

from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Module,
                          ResetSignal, Shape, Signal)
from amaranth.lib import io, stream, wiring
from amaranth.lib.wiring import In, Out

from . import host_protocol as hp
from .bridge import HostBridge, reset_tap
from .layout import leaves
from .pll import PLLSettings, ecp5_pll, ice40_pll
from .uart import UARTReceiver, UARTTransmitter, uart_divisor

__all__ = ["BOARDS", "Board", "BoardCore", "BoardTop", "StreamPort", "block_design_id",
           "stream_ports"]


@dataclass(frozen=True)
class StreamPort:
    """One stream port of a block: Verilog prefix, flat payload width, leaf fields."""

    name: str
    width: int
    fields: tuple[tuple[str, int, bool], ...]   # (name, width, signed), low bits first

    def as_dict(self) -> dict:
        return {"name": self.name, "width": self.width,
                "fields": [{"name": n, "width": w, "signed": s} for n, w, s in self.fields]}


def _fields(shape) -> tuple[tuple[str, int, bool], ...]:
    """Leaf fields ``(name, width, signed)``, low bits first: nested arrays and structs are
    flattened (``data[0]``, ``data[1]``, ...; :func:`fpga.layout.leaves`)."""
    return tuple((name, width, signed) for name, _lsb, width, signed in leaves(shape))


def stream_ports(component: wiring.Component) -> tuple[list[StreamPort], list[StreamPort]]:
    """``(inputs, outputs)``: the stream ports of a block (see the module docstring)."""
    ins, outs = [], []
    for name, member in component.signature.members.items():
        if not (member.is_signature and isinstance(member.signature, stream.Signature)):
            raise ValueError(f"{type(component).__name__}.{name} is not a stream port; the "
                             f"board top drives blocks whose ports are all streams")
        shape = member.signature.members["payload"].shape
        port = StreamPort(name, Shape.cast(shape).width, _fields(shape))
        (ins if member.flow == In else outs).append(port)
    if not ins or not outs:
        raise ValueError(f"{type(component).__name__} has {len(ins)} input and {len(outs)} "
                         f"output streams; the board top needs at least one of each")
    return ins, outs


def block_design_id(name: str, component: wiring.Component) -> int:
    """The id the bitstream reports in ``INFO`` (:func:`host_protocol.design_id`)."""
    meta = json.dumps(wiring.ComponentMetadata(component).as_json(), sort_keys=True)
    return hp.design_id(name, meta)


class BoardCore(wiring.Component):
    """UART + host bridge + block + status LEDs, in the ``sync`` domain (module docstring)."""

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    leds: Out(3)

    def __init__(self, block: wiring.Component, name: str, *, clk_hz: float, baud: int,
                 buffer_bytes: int = 512, out_buffer_bytes: int | None = None,
                 timeout_cycles: int | None = None):
        self.block = block
        self.in_ports, self.out_ports = stream_ports(block)
        self.clk_hz, self.baud = float(clk_hz), int(baud)
        self.divisor = uart_divisor(clk_hz, baud)
        # default watchdog: ~0.1 s, at least 64 byte times
        self.timeout_cycles = int(timeout_cycles or max(int(clk_hz) // 10, 640 * self.divisor))
        self.buffer_bytes = int(buffer_bytes)
        self.out_buffer_bytes = int(out_buffer_bytes or buffer_bytes)
        self.design_id = block_design_id(name, block)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx, tx = UARTReceiver(self.divisor), UARTTransmitter(self.divisor)
        m.submodules.rx = reset_tap(m, rx, "uart_rx", 5)     # the bridge's taps are 1-4
        m.submodules.tx = reset_tap(m, tx, "uart_tx", 6)
        m.submodules.bridge = bridge = HostBridge(
            [p.width for p in self.in_ports], [p.width for p in self.out_ports],
            buffer_bytes=self.buffer_bytes, out_buffer_bytes=self.out_buffer_bytes,
            timeout_cycles=self.timeout_cycles, design_id=self.design_id,
            clock_hz=int(self.clk_hz))
        # the block's reset: the bridge's RESET pulse or the board reset, ORed into one
        # flip-flop (a cycle later), the only reset of the block's own domain: no gate
        # between a reset source and the block's flip-flops
        m.domains.block = cd_block = ClockDomain("block", local=True)
        block_rst = Signal(init=1, reset_less=True)
        m.d.sync += block_rst.eq(bridge.block_reset | ResetSignal("sync"))
        m.d.comb += [cd_block.clk.eq(ClockSignal("sync")), cd_block.rst.eq(block_rst)]
        m.submodules.block = DomainRenamer({"sync": "block"})(self.block)
        m.d.comb += [rx.line.eq(self.uart_rx), self.uart_tx.eq(tx.line),
                     bridge.rx_error.eq(rx.error)]
        for k, port in enumerate(self.in_ports):
            src, dst = getattr(bridge, f"block_in{k}"), getattr(self.block, port.name)
            m.d.comb += [dst.valid.eq(src.valid), dst.payload.as_value().eq(src.payload),
                         src.ready.eq(dst.ready)]
        for k, port in enumerate(self.out_ports):
            src, dst = getattr(self.block, port.name), getattr(bridge, f"block_out{k}")
            m.d.comb += [dst.valid.eq(src.valid), dst.payload.eq(src.payload.as_value()),
                         src.ready.eq(dst.ready)]
        wiring.connect(m, rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, tx.i)

        frame_ok, frame_bad = Signal(), Signal()    # registered: LEDs need no short path
        m.d.sync += [frame_ok.eq(bridge.frame_ok), frame_bad.eq(bridge.frame_bad)]
        # a free-running counter in two parts (an 8-bit prescaler whose registered wrap
        # steps the rest: no carry chain longer than the board clock allows): its top bit
        # blinks at ~1 Hz, and the activity LED, set by every frame, is cleared when the
        # counter's low bits next wrap (~20..40 ms later)
        width = max(10, (int(self.clk_hz) // 2 - 1).bit_length())
        prescale, step = Signal(8), Signal()
        ticks = Signal(width - 8)
        m.d.sync += [prescale.eq(prescale + 1), step.eq(prescale == 0xFF)]
        with m.If(step):
            m.d.sync += ticks.eq(ticks + 1)
        blink = ticks[-1]
        stretch_bits = max(1, min(width - 9, (int(self.clk_hz) // 40).bit_length() - 8))
        wrapped = Signal()
        m.d.sync += wrapped.eq(step & (ticks[:stretch_bits] == 0))
        activity = Signal()
        with m.If(bridge.busy | frame_ok):
            m.d.sync += activity.eq(1)
        with m.Elif(wrapped):
            m.d.sync += activity.eq(0)
        rejected = Signal()
        with m.If(frame_bad):
            m.d.sync += rejected.eq(1)
        with m.Elif(frame_ok):
            m.d.sync += rejected.eq(0)
        m.d.comb += [self.leds[0].eq(blink), self.leds[1].eq(activity),
                     self.leds[2].eq(rejected)]
        return m


@dataclass(frozen=True)
class Board:
    """A supported board: its ``amaranth-boards`` platform and what the top needs of it."""

    name: str
    platform: str                   # "module:Class" in amaranth_boards
    family: str                     # "ice40" / "ecp5"
    target: str                     # fpga.targets name (resource counts for reports)
    clock: str                      # oscillator resource
    clock_hz: float
    leds: tuple[str, ...]           # three LED resources: heartbeat, activity, error
    default_freq_mhz: float         # clock requested when the caller gives none
    program: str                    # how to load the bitstream (README / report)
    extra_resources: str = ""       # platform attribute to add first (iCEBreaker's PMOD LEDs)
    buffer_bytes: int = 4096        # host-link input buffer (a RUN's sections)
    out_buffer_bytes: int = 2048    # host-link output buffer
    max_baud: int = 3_000_000       # the fastest UART rate its USB bridge runs

    def make_platform(self):
        import importlib
        module, _, cls = self.platform.partition(":")
        return getattr(importlib.import_module(module), cls)()

    @property
    def has_pll(self) -> bool:
        """Whether the board top can clock the design from a PLL (the Gowin top: not yet)."""
        return self.family != "gowin"

    def pll(self, target_hz: float) -> PLLSettings:
        if not self.has_pll:
            raise ValueError(f"the {self.name} board top has no PLL yet; it runs at the "
                             f"{self.clock_hz / 1e6:g} MHz oscillator (leave --freq out)")
        return (ice40_pll if self.family == "ice40" else ecp5_pll)(self.clock_hz, target_hz)


BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "ice40-up5k",
          "clk12", 12e6, ("led_g", "led_g", "led_r"), 48.0,
          "iceprog {bitstream}", "break_off_pmod", max_baud=12_000_000),   # FT2232H
    *(Board(f"ulx3s-{size}f", f"amaranth_boards.ulx3s:ULX3S_{size}F_Platform", "ecp5",
            "ecp5-85k" if size == 85 else "ecp5-25k", "clk25", 25e6,
            ("led", "led", "led"), 100.0, "openFPGALoader -b ulx3s {bitstream}",
            buffer_bytes=32768, out_buffer_bytes=2048, max_baud=3_000_000)       # FT231X
      for size in (12, 25, 45, 85)),
)}
BOARDS["ulx3s"] = BOARDS["ulx3s-85f"]
# Tang Nano 9K (GW1NR-LV9QN88PC6/I5): pins from amaranth-boards' TangNano9kPlatform
# (27 MHz oscillator on pin 52, the BL702's UART on pins 17/18, LEDs 0-5 active low on pins
# 10-16). No PLL yet: the board top runs at the oscillator's 27 MHz. The BL702 USB-UART
# bridge's top rate is not in a datasheet we have; 3 Mbaud (9 cycles per bit at 27 MHz) is
# the rate assumed here, as for the ULX3S's FT231X.
BOARDS["tangnano9k"] = Board(
    "tangnano9k", "amaranth_boards.tang_nano_9k:TangNano9kPlatform", "gowin", "gowin-gw1nr9",
    "clk27", 27e6, ("led", "led", "led"), 27.0, "openFPGALoader -b tangnano9k {bitstream}",
    buffer_bytes=4096, out_buffer_bytes=2048, max_baud=3_000_000)


class BoardTop(Elaboratable):
    """A :class:`BoardCore` on ``board`` with ``pll`` (``None``: the oscillator's clock)."""

    def __init__(self, core: BoardCore, board: Board, pll: PLLSettings | None):
        self.core, self.board, self.pll = core, board, pll

    def elaborate(self, platform):
        m = Module()
        board = self.board
        m.domains.sync = cd_sync = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", local=True)
        locked = Signal()
        if self.pll is None:
            m.submodules.clk_buffer = clk = io.Buffer("i", platform.request(board.clock, 0,
                                                                            dir="-"))
            m.d.comb += [cd_sync.clk.eq(clk.i), locked.eq(1)]
        else:
            pin = platform.request(board.clock, 0, dir="-")
            if board.family == "ice40":     # SB_PLL40_PAD takes the pad itself
                clk_in = pin.io
            else:
                m.submodules.clk_buffer = clk_buffer = io.Buffer("i", pin)
                clk_in = clk_buffer.i
            m.submodules.pll = self.pll.instance(clk_in, cd_sync.clk, locked)
        platform.add_clock_constraint(cd_sync.clk, self.core.clk_hz)
        delay = max(2, int(15e-6 * self.core.clk_hz))
        # ready (the sync domain's reset released) about `delay` cycles after lock: the
        # count's compare in two registered halves and a sticky flag, so the reset's source
        # is a flip-flop behind one gate (it fans out to the whole design)
        timer = Signal(range(delay + 4))
        low, high = Signal(), Signal()
        cut = 6
        reached, ready = Signal(), Signal()
        m.d.por += [low.eq(timer[:cut] == delay % (1 << cut)),
                    high.eq(timer[cut:] == delay >> cut),
                    reached.eq(reached | low & high), ready.eq(reached)]
        with m.If(~reached):
            m.d.por += timer.eq(timer + 1)
        m.d.comb += [cd_por.clk.eq(cd_sync.clk), cd_por.rst.eq(~locked), cd_sync.rst.eq(~ready)]

        if board.extra_resources:
            platform.add_resources(getattr(platform, board.extra_resources))
        m.submodules.core = core = self.core
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.uart_rx.eq(uart_rx.i), uart_tx.o.eq(core.uart_tx)]
        used = {}
        for k, resource in enumerate(board.leds):
            index = used.get(resource, 0)
            used[resource] = index + 1
            m.submodules[f"led_{k}"] = led = io.Buffer(
                "o", platform.request(resource, index, dir="-"))
            m.d.comb += led.o.eq(core.leds[k])
        return m
