"""AXI4-Stream shell of a packaged block (``lowbit package --interface axis``).

Contract
--------
:func:`axis_interface` describes, from a package manifest's ``streams``, one AXI4-Stream
port per lowbit stream: ``s_axis_<name>_*`` for an input stream (the block is the slave),
``m_axis_<name>_*`` for an output stream, each with ``tdata``, ``tvalid``, ``tready`` and,
when the payload has a top-level one-bit ``last`` field, ``tlast`` (that field, left out of
TDATA). TDATA holds the payload's other leaf fields in their order, packed from bit 0 (the
manifest's ``streams[].fields`` with ``last`` removed), zero-padded to whole bytes
(``tdata_width``); padding bits of an input are ignored, of an output are 0. Each
field's place in TDATA is listed (``fields``: name, lsb, width, signed).
:func:`axis_verilog` writes the shell, module ``<name>_axis``: ``aclk``, ``aresetn``
(active low, synchronous to ``aclk`` as AXI requires), the ports above, and the block
instantiated with every stream wired through (the block's streams already are a
valid/ready handshake, so no beat is delayed: no added latency).

Reset: ``aresetn`` passes through ``AXIS_RESET_STAGES`` (2) reset-less flip-flops and a
third, ``in_reset`` (``~aresetn`` of two cycles before; in :func:`fpga.axis_shell.axis_shell`
ORed with the ``sync`` reset), which alone drives the block's reset: no gate sits between
``aresetn`` and the block's flip-flop resets, so the shell costs no clock rate. The block
is thus held in reset from the third clock edge after ``aresetn`` goes low until the third
after it goes high. So that no beat is taken or given while the block is (about to be) in
reset, each port's TREADY (inputs) and TVALID (outputs) is the block's ``and``
``live = aresetn & ~in_reset`` (one gate per port, at the port): a master may send from the
first edge with ``aresetn`` high, the beat waits until the block is out of reset.
``aresetn`` must stay low for at least 3 ``aclk`` cycles (Xilinx IP commonly asks 16): a
shorter pulse still resets the block, but ``live`` would rise before ``in_reset`` does. The
shell adds 3 flip-flops and one gate per port.
:func:`fpga.axis_shell.axis_shell` builds the same shell as an Amaranth component around a
block, so :mod:`fpga.metrics` can measure what it costs (``scripts/bench_boards.py``).
"""

from __future__ import annotations

__all__ = ["AXIS_RESET_STAGES", "axis_interface", "axis_verilog"]

#: reset-less flip-flops between ``aresetn`` and the registered block reset
AXIS_RESET_STAGES = 2


def axis_interface(streams: list[dict]) -> list[dict]:
    """The AXI4-Stream ports of ``streams`` (a manifest's), see the module docstring."""
    ports = []
    for s in streams:
        prefix = f"{'s' if s['direction'] == 'in' else 'm'}_axis_{s['name']}"
        top = s["layout"]
        last = None
        if top["kind"] == "struct":
            last = next((f for f in top["fields"] if f["name"] == "last"
                         and f["layout"]["kind"] == "scalar" and f["layout"]["width"] == 1),
                        None)
        fields, pos = [], 0
        for f in s["fields"]:
            if last is not None and f["name"] == "last":
                continue
            fields.append({"name": f["name"], "lsb": pos, "width": f["width"],
                           "signed": f["signed"], "payload_lsb": f["lsb"]})
            pos += f["width"]
        ports.append({
            "stream": s["name"], "direction": s["direction"], "prefix": prefix,
            "tdata": f"{prefix}_tdata", "tvalid": f"{prefix}_tvalid",
            "tready": f"{prefix}_tready", "tlast": f"{prefix}_tlast" if last else None,
            "data_bits": pos, "tdata_width": max(8, -(-pos // 8) * 8), "fields": fields,
            "last_payload_lsb": last["lsb"] if last else None,
        })
    return ports


def axis_verilog(name: str, streams: list[dict], has_reset: bool = True) -> str:
    """Verilog of module ``<name>_axis`` around module ``name`` (module docstring)."""
    axis = axis_interface(streams)
    decls = ["    input  wire aclk", "    input  wire aresetn"]
    n = AXIS_RESET_STAGES
    stages = [f"aresetn_stage{k}" for k in range(n)]
    body = ["    // aresetn -> reset-less flip-flops -> in_reset, the block's only reset (no gate",
            "    // before its flip-flop resets); live: beats are taken and given out of reset",
            "    " + "reg " + ", ".join(f"{x} = 1'b0" for x in stages) + ", in_reset = 1'b1;",
            "    always @(posedge aclk) begin",
            *(f"        {x} <= {prev};" for x, prev in zip(stages, ["aresetn", *stages[:-1]])),
            f"        in_reset <= ~{stages[-1]};",
            "    end",
            "    wire live = aresetn & ~in_reset;"]
    conns = ["        .clk(aclk)"]
    if has_reset:
        conns.append("        .rst(in_reset)")
    for a, s in zip(axis, streams):
        w, pw, inward = a["tdata_width"], s["payload_width"], a["direction"] == "in"
        io_in, io_out = ("input ", "output") if inward else ("output", "input ")
        decls.append(f"    // {a['stream']} ({a['direction']}): TDATA "
                     + ", ".join(f"[{f['lsb'] + f['width'] - 1}:{f['lsb']}] {f['name']}"
                                 for f in a["fields"])
                     + (" (rest 0)" if a["data_bits"] < w else "")
                     + ("; TLAST = last" if a["tlast"] else ""))
        decls += [f"    {io_in} wire [{w - 1}:0] {a['tdata']}",
                  f"    {io_in} wire {a['tvalid']}",
                  f"    {io_out} wire {a['tready']}"]
        if a["tlast"]:
            decls.append(f"    {io_in} wire {a['tlast']}")
        wire = f"{a['stream']}_payload"
        body.append(f"    wire [{pw - 1}:0] {wire};")
        for f in a["fields"]:
            p = f"{wire}[{f['payload_lsb'] + f['width'] - 1}:{f['payload_lsb']}]"
            t = f"{a['tdata']}[{f['lsb'] + f['width'] - 1}:{f['lsb']}]"
            body.append(f"    assign {p if inward else t} = {t if inward else p};")
        if a["tlast"]:
            p = f"{wire}[{a['last_payload_lsb']}]"
            body.append(f"    assign {p if inward else a['tlast']} = "
                        f"{a['tlast'] if inward else p};")
        if not inward and a["data_bits"] < w:
            body.append(f"    assign {a['tdata']}[{w - 1}:{a['data_bits']}] = "
                        f"{w - a['data_bits']}'d0;")
        gated = f"{a['stream']}_{'ready' if inward else 'valid'}"
        body += [f"    wire {gated};",
                 f"    assign {a['tready'] if inward else a['tvalid']} = {gated} & live;"]
        conns += [f"        .{s['payload']}({wire})",
                  f"        .{s['valid']}({a['tvalid'] if inward else gated})",
                  f"        .{s['ready']}({gated if inward else a['tready']})"]
    lines = [f"// AXI4-Stream shell of {name} (generated by lowbit package --interface axis).",
             "// One AXI4-Stream port per lowbit stream; TDATA layout per port in",
             "// manifest.json (interfaces.axis). No added latency; aresetn reaches the",
             "// block through registers only (see the reset stage below).",
             f"module {name}_axis (", ",\n".join(decls), ");", *body,
             f"    {name} u_{name} (", ",\n".join(conns), "    );", "endmodule", ""]
    return "\n".join(lines)

