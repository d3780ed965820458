"""The GEMV benches' test harness (``testbenches.tb_lutgemv``): :class:`Bench` (the DUT's
stream drivers, monitors, golden model and scoreboard for one test, and the stimulus it
queues) and :func:`extreme_bound`.

Runs inside the simulator: the design point arrives as a YAML path in ``LOWBIT_CONFIG``.
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock

from lowbit.golden_models import lutgemv as golden
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.lutgemv_ram import timing as ram_timing
from lowbit.testbenches.drivers import StreamSink, StreamSource, reset_dut
from lowbit.testbenches.lutgemv_checks import XReadyCheck
from lowbit.testbenches.monitor import StreamMonitor
from lowbit.testbenches.payload import PayloadLayout
from lowbit.testbenches.pressure import pressure
from lowbit.testbenches.scoreboard import Scoreboard

class Bench:
    """DUT, four stream drivers, the ``y`` and ``w`` monitors, golden model and scoreboard for
    one test; ``gap`` and ``stall`` name the inputs' and the output's pressure
    (:data:`pressure.PRESSURES`)."""

    def __init__(self, dut, seed: int, gap: str, stall: str):
        self.dut = dut
        self.config = cfg = load_design(os.environ["LOWBIT_CONFIG"])
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.ternary = getattr(cfg, "ternary", False)
        #: tables: ram holds at most m_max rows per pass (rows per lane: m_max / rows)
        self.ram = golden.lutgemv_ram.in_ram(cfg)
        self.tiles_max = cfg.m_max // cfg.rows if self.ram else 1 << 30
        self.batch = golden.batch(cfg)
        self.exp_bits = golden.exp_bits(cfg)
        #: y's result fields: one, or one per batch vector (vector 0 in the low bits)
        self.y_fields = ["data"] if self.batch == 1 else [f"d{v}" for v in range(self.batch)]
        #: run-time precisions to test (ternary: codes 0..2 with zero point 1, "bits" 2)
        self.precisions = [2] if self.ternary else list(range(1, cfg.bits_max + 1))
        self.span = golden.span(cfg)  # activations per x beat (lookups * g)
        beat = (cfg.rows * 5 * golden.lookups(cfg) if self.ternary else
                cfg.rows * self.span * (1 if cfg.family == "lutgemv" else cfg.wbits))
        self.layouts = {
            "cmd": PayloadLayout([("bits", cfg.bits_max.bit_length(), False),
                                  ("zero_point", cfg.bits_max, False), ("last", 1, False)]),
            "x": PayloadLayout([("data", self.batch * self.span * cfg.act_bits, False)] +
                               ([("shift", self.batch * self.exp_bits, False)] if self.exp_bits else []) +
                               [("last", 1, False)]),
            "w": PayloadLayout([("data", beat, False), ("last", 1, False)]),
            "y": PayloadLayout([(name, golden.out_width(cfg), True) for name in self.y_fields] +
                               [("last", 1, False)]),
            "scale": PayloadLayout([("data", max(1, golden.scale_bits(cfg)), False), ("last", 1, False)]),
            "q": PayloadLayout([("scale", max(1, golden.qscale_bits(cfg)), False),
                                ("zero", cfg.bits_max, False), ("last", 1, False)]),
        }
        self.scale_bits = golden.scale_bits(cfg)
        self.qgroup = golden.qgroup(cfg)
        inputs = ("cmd", "x", "w") + (("scale",) if self.scale_bits else ()) + (("q",) if self.qgroup else ())
        self.sources = {name: StreamSource(dut, name, dut.clk,
                                           pause=pressure(gap).pauses(self.rng, seed, 2 + index))
                        for index, name in enumerate(inputs)}
        self.sink = StreamSink(dut, "y", dut.clk, pause=pressure(stall).pauses(self.rng, seed))
        self.scoreboard = Scoreboard("y", fmt=self._describe)
        #: the streams whose stalls coverage asks for
        self.monitors = {name: StreamMonitor(dut, name, dut.clk, layout=self.layouts[name])
                         for name in ("y", "w")}
        # tables: ram takes x into a ring of table slots, not two vector buffers (its x waits
        # for a free slot: rtl_gen.lutgemv_ram_build), so the shell's promise does not apply
        self.x_ready = None if self.ram else XReadyCheck(dut, dut.clk, self.layouts)
        self.results: list[int] = []
        self.held_commands: list[int] = []  # cmd beats queue() held back (hold_command)
        self.x_through: list[int] = []      # x beats queued up to and including each vector
        self.shapes: list[tuple[int, int, int]] = []  # (M, K, bits) of the passes queued
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    def _describe(self, raw: int) -> str:
        fields = self.layouts["y"].unpack(raw)
        return f"y={[fields[n] for n in self.y_fields]} last={fields['last']}"

    def work(self, m: int, k: int, bits: int) -> int:
        """Cycles a pass takes without stalls, for timeouts: its weight beats (tables: ram:
        the unit's stated timing, table builds and the drain included)."""
        if self.ram:
            return ram_timing(self.config, m, min(k, self.config.k_max), bits)
        return golden.ideal_cycles(self.config, m, k, bits)

    def held(self) -> dict[str, int]:
        """Stalled cycles (valid high, ready low) per monitored stream."""
        return {name: monitor.stalls for name, monitor in self.monitors.items()}

    async def start(self):
        await reset_dut(self.dut, self.dut.clk)

    def group_params(self, m: int, k: int, bits: int, qscales=None, qzeros=None):
        """Group scales and zero points (M, ceil(K/qgroup)) for a vector of ``k`` used columns:
        random unless given, with scale 0 and the maximum, zero point 0 and ``2**bits - 1``
        forced in, and some zero points above ``2**bits - 1`` (clamped by the unit)."""
        n = -(-k // self.qgroup)
        smax, bits = (1 << golden.qscale_bits(self.config)) - 1, golden.command(self.config, bits, 0)[0]
        rng = self.np_rng
        if qscales is None:
            qscales = rng.integers(0, smax + 1, (m, n))
            qscales.flat[rng.integers(0, m * n, 2)] = [0, smax]
        if qzeros is None:
            qzeros = rng.integers(0, 1 << bits, (m, n))
            qzeros.flat[rng.integers(0, m * n, 3)] = [0, (1 << bits) - 1, (1 << self.config.bits_max) - 1]
        return np.asarray(qscales)[:, :n], np.asarray(qzeros)[:, :n]

    def ignored_last(self) -> int:
        """A random ``last`` for the streams whose ``last`` the unit ignores (``cmd``, ``scale``,
        ``q``: rtl_gen.gemv_common), so no payload bit may depend on it."""
        return self.rng.getrandbits(1)

    def queue(self, codes, zero: int, x, bits: int, scales=None, shifts=None,
              qscales=None, qzeros=None, hold_command: bool = False) -> np.ndarray:
        """Send one vector (``x``: B x K, B = batch) with its command, weight pass and row
        scales if the point has them (random, with 0 and the maximum forced in, unless given);
        expect the golden rows. ``bits``, ``zero`` and K go out as given; the weight pass is
        that of the operands the unit uses (``golden.operands``: clamped, truncated).
        ``hold_command``: the ``cmd`` beat is appended to :attr:`held_commands` instead, for
        the test to send later; :attr:`x_through` counts the ``x`` beats queued up to and
        including each vector."""
        cfg, lay = self.config, self.layouts
        if self.scale_bits and scales is None:
            scales = self.np_rng.integers(0, 1 << self.scale_bits, len(codes))
            scales[self.np_rng.integers(0, len(codes), 2)] = [0, (1 << self.scale_bits) - 1]
        groups = x.shape[1] // self.span
        if self.exp_bits and shifts is None:  # random group shifts, 0 and the maximum forced in
            shifts = self.np_rng.integers(0, golden.max_shift(cfg) + 1, (self.batch, groups))
            shifts[:, self.np_rng.integers(0, groups, 2)] = [0, golden.max_shift(cfg)]
        used, zero_u, x_u, bits_u, shifts_u = golden.operands(cfg, codes, zero, x, bits, shifts)
        if self.qgroup:
            qscales, qzeros = self.group_params(len(codes), used.shape[1], bits, qscales, qzeros)
            for index, (sc, zp) in enumerate(golden.group_beats(cfg, qscales, qzeros, cfg.rows)):
                self.sources["q"].send_nowait(lay["q"].pack(scale=sc, zero=zp, last=self.ignored_last()))
        expected = golden.batch_model(cfg, codes, zero, x, bits, scales, shifts, qscales, qzeros)  # (M, B)
        xs = x_u if shifts is None else [golden.shifted(v, sh, self.span) for v, sh in zip(x_u, shifts_u)]
        if self.qgroup:  # the whole-layer model (vectorised, no tables)
            reference = golden.gemv(cfg, codes, x, bits, zero, qscales=qscales, qzeros=qzeros)
        else:
            reference = np.stack([golden.reference(used, zero_u, v) for v in xs], axis=1)
        if self.scale_bits:
            reference = reference * np.asarray(scales)[:, None]
            for index, s in enumerate(np.asarray(scales).tolist()):
                self.sources["scale"].send_nowait(lay["scale"].pack(data=s, last=self.ignored_last()))
        assert (expected == reference).all()  # the model is the function
        command = lay["cmd"].pack(bits=bits, zero_point=zero, last=self.ignored_last())
        if hold_command:
            self.held_commands.append(command)
        else:
            self.sources["cmd"].send_nowait(command)
        xs = golden.batch_activation_beats(x, self.span, cfg.act_bits)
        self.x_through.append((self.x_through[-1] if self.x_through else 0) + len(xs))
        for index, raw in enumerate(xs):
            extra = {}
            if self.exp_bits:
                extra["shift"] = sum(int(sh[index]) << (v * self.exp_bits) for v, sh in enumerate(shifts))
            self.sources["x"].send_nowait(lay["x"].pack(data=raw, **extra, last=int(index == len(xs) - 1)))
        ws = golden.weight_beats(cfg, used, bits_u)
        for raw, last in zip(ws, golden.weight_lasts(cfg, *used.shape, bits_u)):
            self.sources["w"].send_nowait(lay["w"].pack(data=raw, last=last))
        for row, ys in enumerate(expected.tolist()):
            self.scoreboard.expect(lay["y"].pack(**dict(zip(self.y_fields, ys)), last=int(row == len(expected) - 1)),
                                   stimulus=f"bits={bits} z={zero} K={x.shape[1]} row={row}")
        return expected

    def random_vector(self, bits: int, k: int | None = None, tiles: int | None = None):
        cfg, rng = self.config, self.np_rng
        k = k or self.span * int(rng.integers(1, cfg.k_max // self.span + 1))
        m = cfg.rows * min(tiles or int(rng.integers(1, 4)), self.tiles_max)
        x = rng.integers(-(1 << (cfg.act_bits - 1)), 1 << (cfg.act_bits - 1), (self.batch, k))
        if self.ternary:
            return rng.integers(0, 3, (m, k)), 1, x
        codes = rng.integers(0, 1 << bits, (m, k))
        return codes, int(rng.integers(0, 1 << bits)), x

    def extreme_vectors(self, bits: int):
        """Largest positive and negative results: codes at 0 / max, z at max / 0, x at min."""
        cfg = self.config
        k, m = cfg.k_max, cfg.rows
        low = np.full((self.batch, k), -(1 << (cfg.act_bits - 1)))
        top = (1 << bits) - 1
        scales = np.full(m, (1 << self.scale_bits) - 1) if self.scale_bits else None
        shifts = np.full((self.batch, k // self.span), golden.max_shift(cfg)) if self.exp_bits else None
        if self.ternary:
            return [(np.full((m, k), c), 1, low, scales, shifts) for c in (0, 2, 1)]

        def group(zero):  # the largest group scale everywhere, the pass's zero point in every group
            if not self.qgroup:
                return None, None
            n = -(-k // self.qgroup)
            return np.full((m, n), (1 << golden.qscale_bits(cfg)) - 1), np.full((m, n), zero)
        return [(np.zeros((m, k), int), top, low, scales, shifts, *group(top)),   # (0 - top) * low * K > 0
                (np.full((m, k), top), 0, low, scales, shifts, *group(0)),        # top * low * K < 0
                (np.full((m, k), top), top, low + 1, scales, shifts, *group(top))]  # zero result

    async def drain(self, count: int, timeout: int) -> None:
        await self.sink.wait_count(count, timeout_cycles=timeout)
        assert self.x_ready is None or not self.x_ready.violations, \
            f"x stalled with a buffer free: {self.x_ready.violations}"
        for raw in self.sink.received:
            self.scoreboard.observe(raw)
            fields = self.layouts["y"].unpack(raw)
            self.results += [fields[name] for name in self.y_fields]
        self.sink.clear()
        self.scoreboard.check_done()


def extreme_bound(cfg, bits: int) -> int:
    """The extreme result at ``bits``-bit weights (times the largest scale if scaled, shifted
    by the largest group shift if the point has ``exp_bits``)."""
    scale = ((1 << golden.scale_bits(cfg)) - 1 if golden.scale_bits(cfg) else 1) << golden.max_shift(cfg)
    if golden.qgroup(cfg):
        scale = (1 << golden.qscale_bits(cfg)) - 1
    if getattr(cfg, "ternary", False):
        return (1 << (cfg.act_bits - 1)) * cfg.k_max * scale
    return ((1 << bits) - 1) * (1 << (cfg.act_bits - 1)) * cfg.k_max * scale


__all__ = ["Bench", "extreme_bound"]
