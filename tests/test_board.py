"""Board host link: UART, protocol codec, PLL search, the board core under Verilator, builds.

* UART halves in Amaranth's simulator: loopback of random bytes at several divisors, a
  receiver fed by a bit-banged line running a few per cent fast or slow, glitches ignored,
  a low stop bit reported and the byte dropped.
* The protocol codec: CRC-16 check value, round trips with every special byte, and every
  single-byte loss / bit flip of a frame detected.
* PLL searches obey the datasheet limits and give the fastest clock at or below the request.
* ``testbenches.tb_board`` (the host driver end to end, damaged frames, noisy link,
  watchdog) passes on the activation unit's board core, and FAILS when the bridge lets
  frames with a bad CRC through.
* ``lowbit synth --board icebreaker`` path: a bitstream and a report with timing met at a
  clock the design reaches; the ULX3S build (slower place and route) is marked slow.
"""
import json
import random

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.sim import Simulator

from lowbit.fpga import host_protocol as hp
from lowbit.testbenches.board_sim import run_board_sim
from lowbit.fpga.pll import ecp5_pll, ice40_pll
from lowbit.fpga.uart import UARTReceiver, UARTTransmitter, uart_divisor
from lowbit.rtl_gen.families import load_design
from lowbit.testbenches.runner import SimulationFailed

DESIGN = "hw/gelu_q3_4.yaml"


def _sim(dut, bench, *extra):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    for proc in extra:
        sim.add_process(proc)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_loopback(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0xC0, 0xDB]
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.line.eq(tx.line)
    received = []

    async def bench(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
            for _ in range(rng.randrange(3)):
                await ctx.tick()
        for _ in range(12 * divisor):
            await ctx.tick()

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        async for clk_edge, rst, valid, payload, error in ctx.tick().sample(
                rx.o.valid, rx.o.payload, rx.error):
            assert not error
            if valid:
                received.append(payload)

    _sim(m, bench, sink)
    assert received == data


@pytest.mark.parametrize("skew", [-0.03, 0.0, 0.03])
def test_uart_receiver_tolerates_skew_rejects_glitches_and_bad_stops(skew):
    divisor = 16
    rx = UARTReceiver(divisor)
    rng = random.Random(int(skew * 100))
    bit = divisor * (1 + skew)
    words = [(rng.randrange(256), True) for _ in range(12)] + [(0x55, False), (0xA3, True)]
    seen, errors = [], []

    async def line(ctx):
        time = 0.0

        async def hold(level, cycles):
            nonlocal time
            ctx.set(rx.line, level)
            start = round(time)
            time += cycles
            for _ in range(round(time) - start):
                await ctx.tick()

        await hold(1, 20)
        await hold(0, divisor // 4)           # a glitch shorter than half a bit
        await hold(1, 3 * divisor)
        for byte, stop in words:
            await hold(0, bit)
            for k in range(8):
                await hold(byte >> k & 1, bit)
            await hold(int(stop), bit)
            await hold(1, 2 * bit)
        await hold(1, 4 * divisor)

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        async for _clk, _rst, valid, payload, error in ctx.tick().sample(
                rx.o.valid, rx.o.payload, rx.error):
            if valid:
                seen.append(payload)
            if error:
                errors.append(len(seen))

    _sim(rx, line, sink)
    assert seen == [b for b, stop in words if stop]
    assert errors == [12], errors          # exactly the bad stop bit, after 12 good bytes


def test_uart_divisor_rejects_bad_rates():
    assert uart_divisor(12e6, 115200) == round(12e6 / 115200)
    with pytest.raises(ValueError, match="at least 4"):
        uart_divisor(1e6, 921600)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(1.2e6, 230400)        # 5.2 cycles -> 5: 4 % off


def test_protocol_codec_round_trip_and_damage_detected():
    assert hp.crc16(b"123456789") == 0x29B1    # the CRC-16/CCITT-FALSE check value
    rng = random.Random(5)
    decoder = hp.FrameDecoder()
    for n in range(30):
        payload = bytes(rng.choice([hp.END, hp.ESC, hp.ESC_END, hp.ESC_ESC, rng.randrange(256)])
                        for _ in range(rng.randrange(40)))
        frame = hp.encode_frame(hp.CMD_RUN, n, payload)
        assert frame.count(hp.END) == 2
        (got,) = decoder.feed(frame)
        assert got.ok and (got.cmd, got.seq, got.payload) == (hp.CMD_RUN, n, payload)
    frame = hp.encode_frame(hp.CMD_RUN, 9, bytes(range(0xBE, 0xE0)))
    for k in range(1, len(frame) - 1):
        lost = frame[:k] + frame[k + 1:]
        for bit in range(8):
            flipped = frame[:k] + bytes((frame[k] ^ 1 << bit,)) + frame[k + 1:]
            assert all(not f.ok for f in hp.FrameDecoder().feed(flipped)), (k, bit)
        assert all(not f.ok for f in hp.FrameDecoder().feed(lost)), k


@pytest.mark.parametrize("f_in, target", [(12e6, 48e6), (12e6, 30e6), (12e6, 100e6)])
def test_ice40_pll_search(f_in, target):
    pll = ice40_pll(f_in, target)
    p = pll.params
    f_pfd = f_in / (p["DIVR"] + 1)
    f_vco = f_pfd * (p["DIVF"] + 1)
    assert 10e6 <= f_pfd <= 133e6 and 533e6 <= f_vco <= 1066e6
    assert pll.f_out_hz == f_vco / 2 ** p["DIVQ"] <= target
    assert pll.f_out_hz > 0.97 * target    # the grid is fine enough near these targets


@pytest.mark.parametrize("target", [48e6, 75e6, 100e6])
def test_ecp5_pll_search(target):
    pll = ecp5_pll(25e6, target)
    p = pll.params
    assert pll.f_out_hz == 25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"] <= target
    assert 400e6 <= pll.f_out_hz * p["CLKOP_DIV"] <= 800e6
    assert pll.f_out_hz > 0.97 * target


@pytest.mark.parametrize("design, count", [(DESIGN, 300), ("hw/lutgemv_g4_n4_q32.yaml", 16)])
def test_board_bench_passes(design, count):
    """Every board-bench case on a one-in/one-out block and on a five-stream GEMV."""
    result = run_board_sim(load_design(design), "build", count=count)
    assert result.tests == 4 and result.failed == 0


def _walk_board(config) -> str | None:
    """The smallest board whose host link takes ``config``'s vectors (None: none does)."""
    from lowbit.fpga.boards import BOARDS
    from lowbit.fpga.host import check_fits

    for board in ("icebreaker", "ulx3s"):
        try:
            check_fits(config, BOARDS[board], count=WALK_COUNT)
            return board
        except ValueError as exc:
            assert "largest vector" in str(exc) and "\n" not in str(exc), exc
    return None


WALK_COUNT = 1


def test_catalogue_fits_a_board_or_is_refused_in_one_line():
    """Every design in hw/ has a host adapter whose beats fit its stream widths, and fits
    the iCEBreaker's host link or the ULX3S's; the CLI refuses, in one line and before
    building, a design whose vectors do not fit the board it is asked to run on."""
    from lowbit.rtl_gen.catalogue import catalogue
    from lowbit.scripts.cli import main

    boards = {name: _walk_board(load_design(path)) for name, path in catalogue().items()}
    assert None not in boards.values(), boards
    assert main(["run", "--sim", "bitserial_both_w8a8", "--count", "1"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(__import__("lowbit.rtl_gen.catalogue",
                                                   fromlist=["catalogue"]).catalogue()))
def test_catalogue_walk_runs_on_the_simulated_board(name):
    """``lowbit run --sim``'s path for every design in hw/: the adapter's vectors through
    the host driver, UART models and the board core under Verilator, against the golden
    model, on the smallest board whose host link takes them."""
    from lowbit.rtl_gen.catalogue import catalogue

    config = load_design(catalogue()[name])
    result = run_board_sim(config, "build", count=WALK_COUNT, testcase="driver_end_to_end",
                           board=_walk_board(config))
    assert result.tests == 1 and result.failed == 0


def test_board_bench_catches_a_bridge_that_ignores_crc(monkeypatch):
    from lowbit.fpga import bridge

    monkeypatch.setattr(bridge.HostBridge, "checks",
                        hp.REJECT_LENGTH | hp.REJECT_UART | hp.REJECT_ESCAPE)
    result = run_board_sim(load_design(DESIGN), "build/broken_board", seed=11,
                           testcase="damaged_frames_rejected", check=False)
    assert result.tests == 1 and result.failed == 1


def test_icebreaker_bitstream(tmp_path):
    from lowbit.fpga.board_flow import build_board

    report = build_board(load_design(DESIGN), "icebreaker", tmp_path, freq_mhz=24)
    bitstream = tmp_path / report["bitstream"]
    assert 100_000 <= bitstream.stat().st_size <= 110_000        # a UP5K image
    assert report["timing_met"] and report["fmax_mhz"] >= report["clock_mhz"]
    assert report["pll"] is not None and abs(report["clock_mhz"] - 24) < 0.5
    assert report["resources"]["bram"] >= 2                      # the two frame buffers
    assert json.loads((tmp_path / "report.json").read_text())["design"] == "gelu_q3_4"
    assert "iceprog" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_ulx3s_bitstream(tmp_path):
    from lowbit.fpga.board_flow import build_board

    report = build_board(load_design(DESIGN), "ulx3s", tmp_path, freq_mhz=50)
    assert (tmp_path / report["bitstream"]).stat().st_size > 100_000
    assert report["timing_met"], report


def test_cli_run_sim(capsys):
    from lowbit.scripts.cli import main

    assert main(["run", "--sim", "gelu_q3_4", "--count", "60", "--seed", "4"]) == 0
    assert "matched the golden model" in capsys.readouterr().out


def test_serial_transport_and_dead_link():
    """pyserial's loop:// echoes what is written: the transport moves bytes both ways, and
    a link that never answers (an echo is no answer) ends in ProtocolError after retries."""
    from lowbit.fpga.host import SerialTransport, run_on_port

    transport = SerialTransport("loop://", 115200)
    transport.write(b"\xc0abc\xc0")
    assert transport.read(0.5) == b"\xc0abc\xc0" and transport.read(0.01) == b""
    transport.close()
    with pytest.raises(hp.ProtocolError, match="no valid answer"):
        run_on_port(load_design(DESIGN), "loop://", timeout_s=0.05, log=lambda _m: None)


class _Widen(__import__("amaranth").lib.wiring.Component):
    """A 3-byte-in / 2-byte-out stream block: y = (a + b) with a 'last' bit, one cycle."""

    def __init__(self):
        from amaranth.hdl import signed
        from amaranth.lib import data, stream
        from amaranth.lib.wiring import In, Out

        super().__init__({
            "a_in": In(stream.Signature(data.StructLayout(
                {"a": signed(10), "b": signed(9), "last": 1}))),
            "y_out": Out(stream.Signature(data.StructLayout({"y": signed(11), "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.y_out.ready | ~self.y_out.valid):
            m.d.sync += [self.y_out.valid.eq(self.a_in.valid),
                         self.y_out.payload.y.eq(self.a_in.payload.a + self.a_in.payload.b),
                         self.y_out.payload.last.eq(self.a_in.payload.last)]
        m.d.comb += self.a_in.ready.eq(self.y_out.ready | ~self.y_out.valid)
        return m


def test_bridge_is_generic_over_stream_widths():
    """HostBridge + an odd-width block at byte level (no UART): 20-bit beats in 3 bytes,
    12-bit beats in 2, struct fields packed as the host driver packs them."""
    from amaranth.lib import wiring

    from lowbit.fpga.boards import stream_ports
    from lowbit.fpga.bridge import HostBridge
    from lowbit.fpga.host import pack, unpack

    block = _Widen()
    (in_port,), (out_port,) = stream_ports(block)
    assert (in_port.width, out_port.width) == (20, 12)
    bridge = HostBridge([in_port.width], [out_port.width], buffer_bytes=64, timeout_cycles=200)
    m = Module()
    m.submodules.block, m.submodules.bridge = block, bridge
    wiring.connect(m, bridge.block_in0, block.a_in)
    wiring.connect(m, block.y_out, bridge.block_out0)
    rng = random.Random(3)
    beats = [{"a": rng.randrange(-512, 512), "b": rng.randrange(-256, 256), "last": k % 3 == 2}
             for k in range(12)]
    frame = hp.encode_frame(hp.CMD_RUN, 5, hp.run_payload(
        [[pack(in_port, b) for b in beats]], [in_port.width], [len(beats)], [out_port.width]))
    answer = []

    async def bench(ctx):
        for byte in frame:
            ctx.set(bridge.rx.payload, byte)
            ctx.set(bridge.rx.valid, 1)
            await ctx.tick()
            ctx.set(bridge.rx.valid, 0)
            await ctx.tick().repeat(3)
        ctx.set(bridge.tx.ready, 1)
        for _ in range(3000):
            await ctx.tick()
            if ctx.get(bridge.tx.valid):
                answer.append(ctx.get(bridge.tx.payload))
                if answer.count(hp.END) == 2:
                    break

    _sim(m, bench)
    (reply,) = hp.FrameDecoder().feed(bytes(answer))
    assert reply.ok and (reply.cmd, reply.seq) == (hp.CMD_RUN | hp.RESPONSE_FLAG, 5)
    status, (out,) = hp.parse_run_answer(reply.payload, [len(beats)], [out_port.width])
    assert status == hp.STATUS_OK
    assert [unpack(out_port, r) for r in out] == [
        {"y": b["a"] + b["b"], "last": int(b["last"])} for b in beats]


def test_stream_ports_refuses_other_ports():
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from lowbit.fpga.boards import stream_ports

    class Plain(wiring.Component):
        x: In(8)
        y: Out(8)

        def elaborate(self, platform):
            return Module()

    plain = Plain()
    Fragment.get(plain, None)   # used: elaborated (no UnusedElaboratable warning)
    with pytest.raises(ValueError, match="not a stream port"):
        stream_ports(plain)
