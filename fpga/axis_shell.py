"""The AXI4-Stream shell of :mod:`fpga.axis` as an Amaranth component, for measurement.

:func:`axis_shell` wraps a block exactly as ``axis/<name>_axis.v`` does (the same
:func:`fpga.axis.axis_interface` description: TDATA fields at their places, TLAST = the
payload's ``last``, valid/ready wired through, ``aresetn`` active low through the same
registered reset stage, see :mod:`fpga.axis`), so the flow and :mod:`fpga.metrics` can
synthesise it beside the bare block (``scripts/bench_boards.py``). The block runs in a
domain ``block`` on the ``sync`` clock whose reset is the stage's last flip-flop
(``aresetn`` low or the ``sync`` reset, registered), so neither reset reaches the block's
flip-flops through a gate.
"""
from __future__ import annotations

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, DomainRenamer, Module,
                          ResetSignal, Signal)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axis import AXIS_RESET_STAGES, axis_interface
from .package import _streams

__all__ = ["axis_shell"]


def axis_shell(block):
    """The same shell as :func:`axis_verilog`, as an Amaranth component around ``block``
    (for measuring it with :mod:`fpga.metrics`: the flow synthesises components). Ports:
    ``aresetn`` and, per AXI4-Stream port of :func:`axis_interface`, ``<prefix>_tdata``,
    ``_tvalid``, ``_tready`` and ``_tlast``; the clock is the ``sync`` domain."""
    streams = _streams(block)
    ports = axis_interface(streams)

    class AxisShell(wiring.Component):
        def __init__(self):
            members = {"aresetn": In(1, init=1)}
            for a in ports:
                inward = a["direction"] == "in"
                data, ctrl = (In, Out) if inward else (Out, In)
                members[a["tdata"]] = data(a["tdata_width"])
                members[a["tvalid"]] = data(1)
                members[a["tready"]] = ctrl(1)
                if a["tlast"]:
                    members[a["tlast"]] = data(1)
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            # aresetn -> AXIS_RESET_STAGES reset-less FFs -> registered OR with the sync
            # reset -> the block's reset; live: the handshakes count only out of reset
            m.domains.block = domain = ClockDomain("block", local=True)
            stages = [Signal(reset_less=True, name=f"aresetn_stage{k}")
                      for k in range(AXIS_RESET_STAGES)]
            in_reset = Signal(init=1, reset_less=True)
            m.d.sync += [stage.eq(prev) for stage, prev in
                         zip(stages, [self.aresetn, *stages[:-1]])]
            m.d.sync += in_reset.eq(~stages[-1] | ResetSignal("sync"))
            live = Signal()
            m.d.comb += [domain.clk.eq(ClockSignal("sync")), domain.rst.eq(in_reset),
                         live.eq(self.aresetn & ~in_reset)]
            m.submodules.block = DomainRenamer({"sync": "block"})(block)
            for a in ports:
                port = getattr(block, a["stream"])
                payload = port.payload.as_value()
                tdata = getattr(self, a["tdata"])
                if a["direction"] == "in":
                    for f in a["fields"]:
                        m.d.comb += payload[f["payload_lsb"]:f["payload_lsb"] + f["width"]].eq(
                            tdata[f["lsb"]:f["lsb"] + f["width"]])
                    if a["tlast"]:
                        m.d.comb += payload[a["last_payload_lsb"]].eq(getattr(self, a["tlast"]))
                    m.d.comb += [port.valid.eq(getattr(self, a["tvalid"])),
                                 getattr(self, a["tready"]).eq(port.ready & live)]
                else:
                    bits = [payload[f["payload_lsb"]:f["payload_lsb"] + f["width"]]
                            for f in a["fields"]]
                    m.d.comb += tdata.eq(Cat(*bits))
                    if a["tlast"]:
                        m.d.comb += getattr(self, a["tlast"]).eq(payload[a["last_payload_lsb"]])
                    m.d.comb += [getattr(self, a["tvalid"]).eq(port.valid & live),
                                 port.ready.eq(getattr(self, a["tready"]))]
            return m

    return AxisShell()
