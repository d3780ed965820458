"""Bit-serial mixed-precision MAC array (and its bit-parallel baseline), streaming.

Algorithm: ``golden_models.bitserial`` (which this generator matches bit for bit). An array
of ``rows x cols`` processing elements (PEs) computes one *tile*: ``R`` output rows times
``C`` activation columns over ``K`` weights, ``Y = sum_g S_g * (W - Z_g) . A``. Every group of
``G`` weights is swept once per bit-plane step (``weight_serial``: ``wbits`` steps;
``both_serial``: ``wbits * abits`` plane pairs in descending diagonals; ``parallel``: one
step), ``G / L`` chunks of ``L`` lanes per step, one chunk per cycle. In order:

1. **join** (:meth:`BitSerialArray._join`): every input port lands in a one-entry head
   register whose ``ready`` is a flip-flop decided a cycle ahead (from ``fire``'s next
   value); a beat *fires* when the ``w``, ``x``, ``cmd`` and ``s`` heads are all there. The ``cmd`` head is kept for the whole tile and the ``s`` head for the whole
   group (they are taken with the tile's / group's last beat), so no copy of either exists.
2. **plane sums** (:meth:`BitSerialArray._plane_sums`): each PE reduces its ``L`` lanes to a
   partial sum: in ``weight_serial`` a pair of lanes selects one of ``0, a0, a1, a0 + a1``
   (the pair sums are formed once per column and shared by every row), in ``both_serial``
   4-lane popcounts of AND slices, in ``parallel`` ``L`` products; then a tree of two-input
   adders, one registered level each. A zero-point bit ``z_i`` subtracts the column's
   ``sum(a)`` (one tree per column, only with ``zero_point``); a sign plane inverts the sum
   (its ``+1`` enters the accumulator as a carry).
3. **accumulate** (:meth:`BitSerialArray._accumulate`): Horner's rule, ``acc = 2*acc + psum``
   on a new plane, ``acc + psum`` otherwise, ``psum`` on a group's first beat, in parts of at
   most ``CARRY_BITS`` bits: part ``j`` works on a beat ``j`` cycles after part 0, with the
   carry and the shifted-out bit of part ``j - 1`` registered between them.
4. **rescale** (:meth:`BitSerialArray._rescale`): a finished group value is handed off to
   ``P`` shared rescalers that walk the PEs' values (``m`` each), multiply by the group scale
   (kept in a small ring from the group's last beat to its hand-off) and add into the tile
   totals (again in skewed parts); the last group's totals move into the ``y`` register.

Modules: the join in ``rtl_gen.bitserial_join`` (a head register on every port), the
plane sums and the accumulators in ``rtl_gen.bitserial_datapath`` (``CARRY_BITS``, ``parts``),
the rescalers and totals in ``rtl_gen.bitserial_rescale``; the stages are
``pipeline.FreePipeline``'s.

The datapath runs free: every stage register loads every cycle and a valid bit travels
beside it. Nothing downstream stalls it; the only stall is the join's, which holds back a
group's last beat while the hand-off or the output could not take it (registered flags).

Interface (layouts: :func:`layouts`)
------------------------------------
``cmd``: In(stream) ``{wbits, wsigned[, abits]}``, one beat per tile, taken with the tile's
    last beat. Run-time precisions are clamped into ``1..max`` (``parallel`` ignores wbits).
``s``: In(stream) ``{scale: R x unsigned(scale_bits), zero: R x wbits_max}`` (fields present
    when the design has them; no port when it has neither), one beat per group, taken with
    the group's last beat. ``zero`` holds two's-complement codes.
``w``: In(stream) per cycle the step's weight bit-plane, ``R x unsigned(L)`` (bit ``l`` of
    row ``r``); in ``parallel`` mode ``R x L x wbits_max``-bit weight codes.
``x``: In(stream) ``{data, last}``, per cycle ``C x L`` activations (``abits`` each) or, in
    ``both_serial``, ``C x unsigned(L)`` bits of the step's activation plane; ``last`` on
    the tile's final beat. ``w`` and ``x`` move together (one beat each per cycle).
``y``: Out(stream) ``R x C x signed(result_bits)``: one beat per tile (a register).
Every ``ready`` is a flip-flop (the heads'); ``y.valid`` and ``y.payload`` are flip-flops.

Widths: group accumulators ``acc_bits`` and totals ``result_bits`` come from
``golden_models.bitserial.plan`` (bounds over every run-time format and ``k_max``), so
nothing overflows.

Timing
------
Throughput: one ``w``/``x`` beat per cycle, no bubbles between groups or tiles while a group
lasts at least ``m + acc_parts - 1`` cycles (``steps * G / L``; ``plan`` keeps
``m <= G / L - 3``), a tile's last group end is followed by the next group end at least
``tile_spacing = max(m + acc_parts - 1, m + 1)`` cycles later (the copy into ``y`` reads and
clears the totals first) and a tile lasts at least the latency; a group's last beat waits
otherwise.
Cycles per tile: ``K/L * steps``.
Latency (``self.latency``, the tile's last beat accepted to ``y.valid``)::

    1 (head) + datapath_stages + acc_parts + m + product_stages + total_parts + 1 (into y)

with ``datapath_stages = tree_levels`` (the leaves are the first level) ``+ 2`` with zero
points ``+ 1`` in the serial modes (the sign), ``acc_parts = ceil(acc_bits / CARRY_BITS)``,
``total_parts = ceil(result_bits / CARRY_BITS)``, ``product_stages`` 2 when ``acc_bits > 16``
and there are scales (two DSP halves and their sum), else 1.
Back-pressure: while ``y`` is full, the next tile runs on until its first group's last beat;
two tiles may be finished and waiting (one in ``y``, one in the totals). Reset clears every
tile in flight.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.bitserial import plan

from .bitserial_config import BitserialConfig
from .bitserial_datapath import CARRY_BITS, DSP_BITS, accumulate, parts, plane_sums
from .bitserial_join import join
from .bitserial_rescale import rescale
from .pipeline import FreePipeline

__all__ = ["BitSerialArray", "layouts", "parts", "CARRY_BITS", "DSP_BITS"]


def layouts(cfg: BitserialConfig) -> dict[str, data.Layout]:
    """Payload layouts of every port (``s`` only when the design has scales or zero points)."""
    p = plan(cfg)
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    cmd = {"wbits": unsigned(cfg.wbits_max.bit_length()), "wsigned": 1}
    if cfg.mode == "both_serial":
        cmd["abits"] = unsigned(cfg.abits.bit_length())
    act = signed(cfg.abits) if cfg.asigned else unsigned(cfg.abits)
    if cfg.mode == "parallel":
        w = data.ArrayLayout(data.ArrayLayout(unsigned(cfg.wbits_max), L), R)
    else:
        w = data.ArrayLayout(unsigned(L), R)
    xdata = (data.ArrayLayout(unsigned(L), C) if cfg.mode == "both_serial"
             else data.ArrayLayout(data.ArrayLayout(act, L), C))
    out = {"cmd": data.StructLayout(cmd), "w": w,
           "x": data.StructLayout({"data": xdata, "last": 1}),
           "y": data.ArrayLayout(data.ArrayLayout(signed(p.result_bits), C), R)}
    group = {}
    if cfg.scale_bits:
        group["scale"] = data.ArrayLayout(unsigned(cfg.scale_bits), R)
    if cfg.zero_point:
        group["zero"] = data.ArrayLayout(unsigned(cfg.wbits_max), R)
    if group:
        out["s"] = data.StructLayout(group)
    return out




class BitSerialArray(wiring.Component):
    """The MAC array for one ``BitserialConfig`` (see the module docstring)."""

    def __init__(self, config: BitserialConfig):
        assert isinstance(config, BitserialConfig)
        self.config = cfg = config
        self.plan = p = plan(config)
        serial = cfg.mode != "parallel"
        if cfg.mode == "both_serial":
            leaves = -(-cfg.lanes // 4)
        elif cfg.mode == "weight_serial" and self.pair_select:
            leaves = -(-cfg.lanes // 2)
        else:
            leaves = cfg.lanes
        #: registered levels of the partial-sum tree (the leaves are the first)
        self.tree_levels = 1 + (leaves - 1).bit_length()
        #: tree levels, zero point (two stages), sign (serial modes)
        self.datapath_stages = self.tree_levels + 2 * (serial and cfg.zero_point) + serial
        self.acc_parts = len(parts(p.acc_bits))
        self.total_parts = len(parts(p.result_bits))
        self.product_stages = 2 if (p.acc_bits > DSP_BITS and cfg.scale_bits) else 1
        #: last beat accepted -> y.valid (the formula of the module docstring)
        self.latency = (1 + self.datapath_stages + self.acc_parts + p.entries_per_rescaler
                        + self.product_stages + self.total_parts + 1)
        #: least cycles between two groups' last beats (the hand-off registers are free again)
        self.handoff_spacing = p.entries_per_rescaler + self.acc_parts - 1
        #: least cycles from a tile's last group end to the next group end: the copy of the
        #: totals into y (part j, m + j cycles after the hand-off) must read and clear them
        #: before the next tile's first group adds into them (one cycle later)
        self.tile_spacing = max(self.handoff_spacing, p.entries_per_rescaler + 1)
        ports = {name: In(stream.Signature(layout)) for name, layout in layouts(config).items()}
        ports["y"] = Out(stream.Signature(layouts(config)["y"]))
        super().__init__(ports)

    @property
    def pair_select(self) -> bool:
        """weight_serial leaves select among ``0, a0, a1, a0 + a1`` per lane pair (the pair
        sums shared by the rows): cheaper than two AND leaves and an adder from two rows on."""
        return self.config.mode == "weight_serial" and self.config.rows >= 2 and self.config.lanes >= 2

    def elaborate(self, platform):
        m = Module()
        beat = self._join(m)
        pipe = FreePipeline(m, beat.fire)
        sums = self._plane_sums(m, pipe, beat)
        assert pipe.stages == self.datapath_stages, (pipe.stages, self.datapath_stages)
        groups = self._accumulate(m, pipe, sums)
        self._rescale(m, beat, groups)
        return m


    # the named parts, one module each (the steps of the module docstring)
    def _join(self, m: Module) -> SimpleNamespace:
        """1. Head registers, sequencer, ``fire`` (``rtl_gen.bitserial_join``)."""
        return join(self, m)

    def _plane_sums(self, m: Module, pipe: FreePipeline, beat) -> dict:
        """2. Leaves, adder tree, zero point, sign (``rtl_gen.bitserial_datapath``)."""
        return plane_sums(self, m, pipe, beat)

    def _accumulate(self, m: Module, pipe: FreePipeline, sums: dict) -> SimpleNamespace:
        """3. Horner accumulators in skewed parts (``rtl_gen.bitserial_datapath``)."""
        return accumulate(self, m, pipe, sums)

    def _rescale(self, m: Module, beat, groups) -> None:
        """4. Hand-off, scale ring, rescalers, totals, ``y`` (``rtl_gen.bitserial_rescale``)."""
        rescale(self, m, beat, groups)
