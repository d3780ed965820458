"""The AXI4-Stream shell of :mod:`fpga.axis` as an Amaranth component, for measurement.

:func:`axis_shell` wraps a block exactly as ``axis/<name>_axis.v`` does (the same
:func:`fpga.axis.axis_interface` description: TDATA fields at their places, TLAST = the
payload's ``last``, valid/ready wired through, ``aresetn`` active low), so the flow and
:mod:`fpga.metrics` can synthesise it beside the bare block (``scripts/bench_boards.py``).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axis import axis_interface
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
            rst = Signal()
            m.d.comb += rst.eq(~self.aresetn)
            m.submodules.block = ResetInserter(rst)(block)
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
                                 getattr(self, a["tready"]).eq(port.ready)]
                else:
                    bits = [payload[f["payload_lsb"]:f["payload_lsb"] + f["width"]]
                            for f in a["fields"]]
                    m.d.comb += tdata.eq(Cat(*bits))
                    if a["tlast"]:
                        m.d.comb += getattr(self, a["tlast"]).eq(payload[a["last_payload_lsb"]])
                    m.d.comb += [getattr(self, a["tvalid"]).eq(port.valid),
                                 port.ready.eq(getattr(self, a["tready"]))]
            return m

    return AxisShell()
