"""Gowin GW1NR-9 (Tang Nano 9K) as a third target: the real pip-only flow (yowasp Yosys
``synth_gowin`` -> yowasp nextpnr-himbaechel-gowin -> Apycula's gowin_pack) on a small
design, the Tang Nano 9K board top with the host link, and the counting rules of its
reports."""
import json

import pytest

from lowbit.fpga import metrics
from lowbit.fpga.report import count_resources, logic_area
from lowbit.fpga.targets import TARGETS, get_target
from lowbit.rtl_gen.config import DEFAULT_TARGETS, KNOWN_TARGETS

DESIGN = "hw/gelu_table_q3_4.yaml"


@pytest.fixture(scope="module")
def gowin_run(tmp_path_factory):
    from lowbit.scripts.cli import main

    build = tmp_path_factory.mktemp("gowin")
    assert main(["synth", DESIGN, "--target", "gowin-gw1nr9", "--build-dir", str(build)]) == 0
    out = build / "gelu_table_q3_4" / "gowin-gw1nr9"
    return out, json.loads((out / "report.json").read_text())


def test_one_list_of_target_names():
    assert tuple(TARGETS) == KNOWN_TARGETS          # rtl_gen owns the names, fpga asserts them
    assert "gowin-gw1nr9" in KNOWN_TARGETS and "gowin-gw1nr9" not in DEFAULT_TARGETS
    assert DEFAULT_TARGETS == ("ice40-up5k", "ecp5-25k")
    t = get_target("gowin-gw1nr9")
    assert (t.family, t.device, t.lut4, t.dsp, t.bram) == ("gowin", "GW1NR-LV9QN88PC6/I5",
                                                          8640, 20, 26)
    assert t.pack_argv("top_pnr.json", "top.fs") == ["-d", "GW1N-9C", "-o", "top.fs",
                                                     "top_pnr.json"]


def test_flow_writes_a_gowin_bitstream_and_report(gowin_run):
    out, report = gowin_run
    assert report["target"] == "gowin-gw1nr9" and report["bitstream"] == "top.fs"
    assert 1_500_000 < (out / "top.fs").stat().st_size < 3_000_000     # ~2 MB, uncompressed
    for key in ("lut4", "ff", "lut_equiv", "fmax_mhz", "constraint_mhz"):
        assert report[key] > 0, key
    assert report["lut_equiv"] == report["lut4"] + report["carry"]
    assert report["constraint_mhz"] == get_target("gowin-gw1nr9").default_freq_mhz
    assert set(report["tool_versions"]) == {"yosys", "nextpnr", "gowin_pack"}
    assert "Apycula" in report["tool_versions"]["gowin_pack"]
    cst = (out / "top.cst").read_text()
    assert 'IO_LOC "clk" 52;' in cst and cst.count("IO_LOC") == 4   # the pin shell's four
    a = metrics.area(report)
    assert (a.unit, a.value, a.family) == ("LUT-eq", report["lut_equiv"], "gowin")


def test_gowin_counting_rules():
    cells = {"LUT1": 3, "LUT2": 2, "LUT3": 1, "LUT4": 4, "ALU": 6, "MUX2_LUT5": 9,
             "DFF": 5, "DFFRE": 2, "RAM16SDP4": 2, "MULT18X18": 1, "MULT9X9": 3,
             "SDPB": 2, "pROM": 1}
    res = count_resources("gowin", cells)
    assert res == dict(lut4=10 + 8, lutram=8, ff=7, carry=6, dsp=1 + 2, bram=3, spram=0)
    assert logic_area("gowin", cells, {}) == dict(logic_cells=None, lut_equiv=18 + 6,
                                                  slices=None)
    report = {"target": "gowin-gw1nr9", "lut4": 18, "carry": 6, "dsp": 3, "bram": 3}
    assert metrics.area(report).value == 24          # without lut_equiv: ALU counts once


def test_an_unwrapped_design_beyond_the_pins_is_refused_in_one_line():
    t = get_target("gowin-gw1nr9")
    ports = [("clk", 1), ("a", len(t.io_pins))]
    with pytest.raises(ValueError) as exc:
        t.constraints(ports)
    assert "pin shell" in str(exc.value) and "\n" not in str(exc.value)
    name, text = t.constraints([("a", 2), ("clk", 1)])
    assert name == "top.cst" and text.splitlines()[1:] == [
        'IO_LOC "clk" 52;', 'IO_LOC "a[0]" 4;', 'IO_LOC "a[1]" 18;']
    assert get_target("ecp5-25k").constraints(ports) is None


def test_tang_nano_board_top_with_the_host_link(tmp_path):
    """``lowbit synth --board tangnano9k``'s path: the board top (UART host link, bridge,
    block, LEDs) on the Tang Nano 9K's pins from amaranth-boards, through Yosys,
    nextpnr-himbaechel and gowin_pack to a .fs bitstream, timing met at the 27 MHz
    oscillator."""
    from lowbit.fpga.board_flow import build_board
    from lowbit.rtl_gen.families import load_design

    report = build_board(load_design(DESIGN), "tangnano9k", tmp_path)
    assert report["bitstream"] == "top.fs" and report["pll"] is None
    assert 1_500_000 < (tmp_path / "top.fs").stat().st_size < 4_000_000   # BSRAM data too
    assert report["clock_mhz"] == 27.0 and report["timing_met"], report
    assert report["resources"]["bram"] >= 2                      # the two frame buffers
    cst = (tmp_path / report["folder"] / "top.cst").read_text()
    for pin in ("52", "17", "18", "10"):                         # clock, UART tx/rx, LED 0
        assert f" {pin};" in cst, (pin, cst)
    assert "openFPGALoader -b tangnano9k top.fs" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="no PLL"):
        build_board(load_design(DESIGN), "tangnano9k", tmp_path / "pll", freq_mhz=50)
