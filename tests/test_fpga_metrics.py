"""fpga.metrics: area on each family's basis, density, median-of-seeds Fmax, calibration.

The parsing tests build report dicts from the structure nextpnr 0.11 writes with
``--report`` (``utilization`` / ``fmax``) and Yosys ``stat -json`` cell counts; one real
flow run places the calibration MAC on the UP5K with one seed (a few seconds).
"""
import json

import pytest

from lowbit.fpga import metrics
from lowbit.fpga.report import SynthReport, count_placed_slices, count_resources, logic_area

# nextpnr-ice40 --report of the calibration MAC in the pin wrapper (UP5K, seed 1), trimmed
ICE40_UTILISATION = {"ICESTORM_DSP": {"available": 8, "used": 1},
                     "ICESTORM_LC": {"available": 5280, "used": 95},
                     "ICESTORM_RAM": {"available": 30, "used": 0},
                     "SB_GB": {"available": 8, "used": 3}, "SB_IO": {"available": 39, "used": 4}}
ICE40_CELLS = {"SB_CARRY": 23, "SB_DFF": 51, "SB_DFFSR": 41, "SB_LUT4": 33, "SB_MAC16": 1}
# nextpnr-ecp5 --report (0.11: TRELLIS_COMB / TRELLIS_FF, no SLICE entry)
ECP5_UTILISATION = {"DP16KD": {"available": 56, "used": 2},
                    "MULT18X18D": {"available": 28, "used": 1},
                    "TRELLIS_COMB": {"available": 24288, "used": 63},
                    "TRELLIS_FF": {"available": 24288, "used": 92},
                    "TRELLIS_RAMW": {"available": 3036, "used": 1}}
ECP5_CELLS = {"CCU2C": 12, "LUT4": 33, "MULT18X18D": 1, "TRELLIS_FF": 92,
              "TRELLIS_DPR16X4": 2, "DP16KD": 2}
ECP5_CONFIG = """.device LFE5U-25F
.tile R10C12:PLC2
arc: A0 V01N0001
enum: SLICEA.MODE CCU2
word: SLICEA.K0.INIT 1111000011110000
enum: SLICEB.REG0.SD 0
.tile R10C13:PLC2
enum: SLICEA.GSR DISABLED
.tile CIB_R13C64:CIB_DSP
enum: MULT18_R13C64.REG_INPUTA_CLK NONE
"""


def _report(family_target, cells, utilisation, fmax=100.0, seed=1, config=None, tmp=None):
    family = "ice40" if family_target.startswith("ice40") else "ecp5"
    placed = None
    if config is not None:
        placed = tmp / "top.config"
        placed.write_text(config)
    return SynthReport(
        design="d", target=family_target, **count_resources(family, cells),
        **logic_area(family, cells, utilisation, placed), cells=cells, fmax_mhz=fmax,
        constraint_mhz=48.0, timing_met=True, utilisation=utilisation, bitstream=tmp / "top.bin",
        report_json=tmp / "report.json", report_md=tmp / "report.md", step_seconds={},
        tool_versions={}, seed=seed)


def test_ice40_area_is_nextpnr_logic_cells_not_lut4(tmp_path):
    r = _report("ice40-up5k", ICE40_CELLS, ICE40_UTILISATION, tmp=tmp_path)
    assert (r.logic_cells, r.lut_equiv, r.slices) == (95, None, None)
    a = metrics.area(r)
    assert (a.value, a.unit, a.dsp, a.bram, a.lut4, a.ff) == (95, "LC", 1, 0, 33, 92)
    assert a.value >= max(a.lut4, a.ff)   # FF-heavy designs cost their flip-flops


def test_ecp5_lut_equiv_counts_lutram_once_and_carries_twice(tmp_path):
    r = _report("ecp5-25k", ECP5_CELLS, ECP5_UTILISATION, config=ECP5_CONFIG, tmp=tmp_path)
    assert r.lutram == 8 and r.lut4 == 33 + 8            # lut4 already holds the LUTRAM
    assert r.lut_equiv == 33 + 2 * 12 + 8 and r.logic_cells is None
    assert r.slices == 3                                 # R10C12 A, B; R10C13 A; DSP tile not
    a = metrics.area(r)
    assert (a.value, a.unit, a.dsp, a.bram, a.slices) == (65, "LUT-eq", 1, 2, 3)


def test_slices_prefer_a_utilisation_entry_and_parse_configs():
    assert count_placed_slices(ECP5_CONFIG) == 3
    util = dict(ECP5_UTILISATION, SLICE={"available": 12144, "used": 41})
    assert logic_area("ecp5", ECP5_CELLS, util)["slices"] == 41
    assert logic_area("ecp5", ECP5_CELLS, ECP5_UTILISATION)["slices"] is None


def test_area_reads_report_json_dicts_including_old_ones(tmp_path):
    r = _report("ice40-up5k", ICE40_CELLS, ICE40_UTILISATION, tmp=tmp_path)
    d = json.loads(json.dumps(r.to_dict()))
    assert metrics.area(d).value == 95
    old = {k: v for k, v in d.items() if k not in ("logic_cells", "lut_equiv", "slices")}
    assert metrics.area(old).value == 95                 # from the stored utilisation
    assert SynthReport.from_dict(old, tmp_path).logic_cells is None
    e = _report("ecp5-25k", ECP5_CELLS, ECP5_UTILISATION, tmp=tmp_path).to_dict()
    del e["lut_equiv"]
    assert metrics.area(e).value == 65
    with pytest.raises(ValueError, match="ICESTORM_LC"):
        metrics.area({**old, "utilisation": {}})


def test_density_divides_area_and_keeps_dsp_bram_beside(tmp_path):
    r = _report("ecp5-25k", ECP5_CELLS, ECP5_UTILISATION, tmp=tmp_path)
    d = metrics.density(r, 4)
    assert d == {"area": 65, "unit": "LUT-eq", "per_mac": 16.25, "dsp": 1, "bram": 2,
                 "dsp_per_mac": 0.25, "bram_per_mac": 0.5}
    with pytest.raises(ValueError):
        metrics.density(r, 0)


def test_fmax_is_the_median_of_the_seeds_with_min_and_max(tmp_path):
    assert metrics.fmax_stats([111.6, 116.8, 114.9]) == (114.9, 111.6, 116.8)
    assert metrics.fmax_stats([80.0]) == (80.0, 80.0, 80.0)
    assert metrics.fmax_stats([10.0, 30.0]) == (20.0, 10.0, 30.0)
    with pytest.raises(ValueError):
        metrics.fmax_stats([])
    reports = [_report("ice40-up5k", ICE40_CELLS, dict(ICE40_UTILISATION,
                                                       ICESTORM_LC={"available": 5280, "used": lc}),
                       fmax=f, seed=s, tmp=tmp_path)
               for s, f, lc in ((1, 116.8, 95), (2, 111.6, 96), (3, 114.9, 95))]
    res = metrics.SeedResult("d", "ice40-up5k", (1, 2, 3), reports)
    assert (res.fmax_median, res.fmax_min, res.fmax_max) == (114.9, 111.6, 116.8)
    assert res.area.value == 95 and res.areas == [95, 96, 95]   # seed 1's figure is quoted
    assert metrics.format_fmax(res) == "114.9 (111.6-116.8)"
    cells = metrics.synth_cells(res)
    assert len(cells) == len(metrics.SYNTH_COLUMNS) and cells[0] == "95 LC"
    summary = res.summary()
    assert summary["fmax_median"] == 114.9 and summary["resources_from_seed"] == 1
    json.dumps(summary)


def test_calibration_mac_places_on_up5k_with_one_seed(tmp_path):
    res = metrics.calibration_row("ice40-up5k", tmp_path, seeds=(1,))
    r = res.report
    assert (tmp_path / "ice40-up5k" / "seed1" / "report.json").is_file()
    assert r.logic_cells > 0 and r.fmax_mhz > 0
    assert r.ff >= 8 + 8 + 24                            # registered inputs and accumulator
    on_disk = json.loads(r.report_json.read_text())
    assert on_disk["logic_cells"] == r.logic_cells == metrics.area(on_disk).value
    assert metrics.format_fmax(res).endswith("(seed 1 only)")


def test_later_seeds_place_the_first_seeds_netlist_only_when_top_v_is_the_same(tmp_path):
    res = metrics.calibration_row("ice40-up5k", tmp_path, seeds=(1, 2))
    first, second = res.reports
    seed1 = tmp_path / "ice40-up5k" / "seed1"
    assert first.netlist_from is None and first.step_seconds["yosys"] > 0
    assert second.netlist_from == str(seed1.resolve()) and second.step_seconds["yosys"] == 0
    assert second.seed == 2 and (second.lut4, second.ff, second.carry) == (first.lut4, first.ff, first.carry)
    assert json.loads(second.report_json.read_text())["netlist_from"] == second.netlist_from
    # a different design (here: the fabric MAC) does not take seed 1's netlist: Yosys runs
    from lowbit.fpga.flow import synthesize
    other = synthesize(metrics.calibration_mac(), "fabric", "ice40-up5k", tmp_path / "other",
                       seed=3, fabric_multipliers=True, netlist_from=seed1)
    assert other.netlist_from is None and other.step_seconds["yosys"] > 0 and other.dsp == 0


def test_nextpnr_over_its_time_limit_is_stopped_and_named(tmp_path):
    from lowbit.fpga.flow import ToolError, synthesize
    with pytest.raises(ToolError, match=r"nextpnr .*did not finish within 0.01 s"):
        synthesize(metrics.calibration_mac(), "cal", "ice40-up5k", tmp_path, pnr_timeout_s=0.01)
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_calibration_rows_three_seeds_on_ecp5(tmp_path):
    rows = metrics.calibration_rows("ecp5-25k", tmp_path)
    assert [r.report.notes != [] for r in rows] == [False, True]   # as mapped, then fabric
    for res in rows:
        assert len(res.fmax) == 3 and res.fmax_min <= res.fmax_median <= res.fmax_max
        assert res.report.lut_equiv > 0 and res.report.slices > 0


def test_keep_going_leaves_a_failed_later_seed_out_and_names_it(tmp_path, monkeypatch):
    from amaranth.hdl import Fragment

    from lowbit.fpga import flow

    real = flow.synthesize

    def seed_two_too_slow(component, name, target, out_dir, *, seed=1, **kw):
        if seed == 2:
            Fragment.get(component, None)   # elaborated, as the flow would (no unused warning)
            raise flow.ToolError(f"nextpnr (x) did not finish within 900 s: ... (log: {out_dir}/nextpnr.log)")
        return real(component, name, target, out_dir, seed=seed, **kw)

    monkeypatch.setattr(flow, "synthesize", seed_two_too_slow)
    res = metrics.synth_seeds(metrics.calibration_mac, "cal", "ice40-up5k", tmp_path,
                              seeds=(1, 2, 3), keep_going=True)
    assert res.seeds == (1, 3) and len(res.reports) == 2 and list(res.failed) == [2]
    assert metrics.format_fmax(res).endswith("; seed 2: nextpnr over 900 s")
    with pytest.raises(flow.ToolError):
        metrics.synth_seeds(metrics.calibration_mac, "cal", "ice40-up5k", tmp_path, seeds=(1, 2))
