"""Benchmark: LUT-GEMV (with and without table symmetrisation) against the multiplier
baseline at W1..W4 x A8, on ice40-up5k and ecp5-25k, plus simulated cycle counts.

    python scripts/bench_lutgemv.py                 # synthesis + simulation, rewrites BENCHMARKS.md
    python scripts/bench_lutgemv.py --no-synth      # simulated cycle counts only

Every LUT-GEMV point is one build serving all precisions at run time (``bits_max: 4``):
at ``W`` bits it does ``rows * g / W`` MACs per cycle. Each baseline point is built for its
``W`` with ``rows * g = 48 / W`` multipliers, the same peak MACs per cycle, and the same
weight bits per beat. The ternary LUT-GEMV (48 MACs per cycle) is compared with the W2
baseline, which runs ternary weights as 2-bit codes. Area (``fpga.metrics``: iCE40 logic cells,
ECP5 LUT4 + 2 x CCU2C + LUTRAM; Fmax the median of seeds 1-3) includes the pin wrapper (about
one FF per port bit and a small XOR tree); every figure comes from a fresh run. Cycle counts come from the cocotb bench (``full_rate_cycle_count``: passes
of K = 256 at every precision, no stalls) under Verilator. Batched (``batch: 4``) and
per-row-scaled (``scale_bits: 8``) points are listed against the point each extends.
"""
from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


from lowbit.rtl_gen.families import parse_design
from lowbit.scripts.benchmarks_md import SYNTH_BASIS, calibration_section, markdown_table, update_section

COMMAND = "python scripts/bench_lutgemv.py"
PEAK = 48  # MACs per cycle at W1 (LUT-GEMV) = baseline MACs per cycle at every W
K_MAX = 256
LUT_POINTS = {  # name -> params
    "lut_g4_sym": dict(group=4, rows=12, bits_max=4, k_max=K_MAX, symmetric=True),
    "lut_g4_full": dict(group=4, rows=12, bits_max=4, k_max=K_MAX, symmetric=False),
    "lut_g2_sym": dict(group=2, rows=24, bits_max=4, k_max=K_MAX, symmetric=True),
    "lut_ternary": dict(group=3, rows=16, bits_max=2, k_max=192, symmetric=True, ternary=True),
}
BITPLANE_POINTS = [n for n in LUT_POINTS if not LUT_POINTS[n].get("ternary")]
MULT_POINTS = {f"mult_w{w}": dict(group=4, rows=PEAK // 4 // w, wbits=w, k_max=K_MAX)
               for w in (1, 2, 3, 4)}
TARGETS = ("ice40-up5k", "ecp5-25k")
#: batched (SAIL) and per-row-scaled points: name -> (family, params, the point it extends)
EXTRA_POINTS = {
    "lut_g2_sym_b4": ("lutgemv", dict(LUT_POINTS["lut_g2_sym"], rows=6, batch=4), "lut_g2_sym"),
    "lut_g4_sym_b4": ("lutgemv", dict(LUT_POINTS["lut_g4_sym"], rows=3, batch=4), "lut_g4_sym"),
    "mult_w2_b4": ("gemv_mult", dict(MULT_POINTS["mult_w2"], group=2, rows=3, batch=4), "mult_w2"),
    "lut_g4_sym_s8": ("lutgemv", dict(LUT_POINTS["lut_g4_sym"], scale_bits=8), "lut_g4_sym"),
    "mult_w2_s8": ("gemv_mult", dict(MULT_POINTS["mult_w2"], scale_bits=8), "mult_w2"),
}


def config(name):
    if name in EXTRA_POINTS:
        family, params = EXTRA_POINTS[name][:2]
    else:
        family, params = ("lutgemv", LUT_POINTS[name]) if name in LUT_POINTS else ("gemv_mult", MULT_POINTS[name])
    return parse_design({"family": family, "name": f"bench_{name}", "params": params}, "<bench_lutgemv>")


def params_of(name):
    return EXTRA_POINTS[name][1] if name in EXTRA_POINTS else LUT_POINTS.get(name) or MULT_POINTS[name]


def extra_rows(synth):
    """Batched / scaled points at W2 against the point each extends."""
    rows = []
    for target in TARGETS:
        for name, (family, _, base) in EXTRA_POINTS.items():
            r, b = synth.get((name, target)), synth.get((base, target))
            if r is None or b is None or "error" in b:
                continue
            if "error" in r:
                rows.append([target, name, base, "", "", "", "", "", "failed: " + r["error"].replace("|", "/"), "", "", ""])
                continue
            per = [x["area"] / (config(n).peak_macs_per_cycle // (2 if config(n).family == "lutgemv" else 1))
                   for n, x in ((name, r), (base, b))]
            macs = config(name).peak_macs_per_cycle // (2 if family == "lutgemv" else 1)
            rows.append([target, name, base, macs, f"{r['area']} {r['unit']}", r["lut4"], r["dsp"], r["bram"],
                         f"{per[0]:.1f}", f"{per[1]:.1f}", r["fmax_text"], b["fmax_text"]])
    return rows


def synth_one(job):
    from lowbit.fpga.flow import ToolError
    from lowbit.fpga.metrics import area, format_fmax, synth_seeds
    from lowbit.rtl_gen.generate import build_component

    name, target = job
    cfg = config(name)
    out = Path("build/bench_lutgemv") / name / target
    start = time.perf_counter()
    try:  # always a fresh run: no figure is taken from an earlier report
        result = synth_seeds(functools.partial(build_component, cfg), cfg.name, target, out)
    except ToolError as error:  # e.g. does not fit the device: reported, not hidden
        reason = str(error).split("ERROR: ")[-1].split(" (log:")[0]
        print(f"{name} {target}: FAILED {reason}", flush=True)
        return name, target, {"error": reason}
    report, a = result.report, area(result.report)
    print(f"{name} {target}: {a} {report.dsp} DSP {format_fmax(result)} MHz "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return name, target, dict(area=a.value, unit=a.unit, lut4=report.lut4, ff=report.ff,
                              dsp=report.dsp, bram=report.bram, fmax=result.fmax_median,
                              fmax_text=format_fmax(result))


def cycles_one(name):
    from lowbit.rtl_gen.generate import generate
    from lowbit.testbenches.runner import run

    cfg = config(name)
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(cfg, Path(tmp) / "build")
        out = Path(tmp) / "cycles.json"
        run(generated.verilog, generated.toplevel, "lowbit.testbenches.tb_lutgemv",
            cache_root=Path("build/sim_cache"), test_dir=Path(tmp) / "sim", seed=1,
            testcase="full_rate_cycle_count",
            env={"LOWBIT_CONFIG": str(generated.config), "LOWBIT_CYCLES_OUT": str(out)})
        return json.loads(out.read_text())


def comparison_rows(synth):
    rows = []
    for target in TARGETS:
        for w in (1, 2, 3, 4):
            base = synth.get((f"mult_w{w}", target))
            base_per = base and "error" not in base and base["area"] / (PEAK // w)
            for name in [*BITPLANE_POINTS, f"mult_w{w}"]:
                r = synth.get((name, target))
                if r is None or "error" in r:
                    continue
                cfg = config(name)
                macs = cfg.rows * cfg.group // (w if name in LUT_POINTS else 1)
                per = r["area"] / macs
                ratio = ("1 (baseline)" if name not in LUT_POINTS
                         else f"{base_per / per:.2f}" if base_per else "n/a (baseline failed)")
                rows.append(_row(target, f"W{w}A8", name, macs, r, per, ratio))
        ternary, base = synth.get(("lut_ternary", target)), synth.get(("mult_w2", target))
        if ternary and base and "error" not in ternary and "error" not in base:
            # the W2 baseline runs ternary codes (0, 1, 2; zero point 1)
            macs = config("lut_ternary").peak_macs_per_cycle
            per, base_per = ternary["area"] / macs, base["area"] / (PEAK // 2)
            rows.append(_row(target, "ternary x A8", "lut_ternary", macs, ternary, per,
                             f"{base_per / per:.2f} (vs mult_w2)"))
    return rows


def _row(target, precision, name, macs, r, per, ratio):
    return [target, precision, name, macs, f"{r['area']} {r['unit']}", r["lut4"], r["dsp"], r["bram"],
            f"{per:.1f}", f"{r['dsp'] / macs:.2f}", f"{r['bram'] / macs:.2f}", r["fmax_text"],
            f"{macs * r['fmax'] / r['area']:.2f}", ratio]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    names = [*LUT_POINTS, *MULT_POINTS, *EXTRA_POINTS]
    body = [f"## LUT-GEMV vs multiplier GEMV (W1..W4 x A8)\n\nRegenerate: `{COMMAND}`\n"]
    cyc = [[n, config(n).family, *(lambda c: [c["ideal"], c["measured"],
                                              f"{100 * c['measured'] / c['ideal']:.2f} %"])(cycles_one(n))]
           for n in names]
    body += ["### Cycles in simulation (Verilator, K = 256, no stalls, every precision 1..bits_max)\n",
             "Ideal = weight beats = sum over passes of (M/rows) * planes * (K/g); measured from the "
             "first weight beat to the last result, including the first table build, the "
             "per-vector restart (offset product, pipeline drain) and the output latency.\n",
             markdown_table(["design", "family", "ideal cycles", "measured", "measured / ideal"], cyc)]
    if not args.no_synth:
        jobs = [(n, t) for n in names for t in TARGETS]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            synth = {(n, t): r for n, t, r in pool.map(synth_one, jobs)}
        params = [[n, config(n).family, json.dumps(params_of(n))] for n in names]
        body += ["\n### Design points\n", markdown_table(["point", "family", "params"], params),
                 "\n### Resources per MAC/cycle (Yosys + nextpnr, pin wrapper included)\n",
                 SYNTH_BASIS + " MAC/cycle at that precision; *area* = iCE40 logic cells / ECP5 "
                 "LUT-equivalents; *MMAC/s per area* = MAC/cycle x median Fmax / area; "
                 "*ratio* = baseline area per MAC/cycle / this design's (above 1: LUT-GEMV is "
                 "denser). DSP: multipliers mapped to DSP blocks (iCE40 SB_MAC16, ECP5 MULT18).\n",
                 markdown_table(["target", "precision", "design", "MAC/cycle", "area", "LUT4", "DSP",
                                 "BRAM", "area per MAC/cycle", "DSP per MAC/cycle",
                                 "BRAM per MAC/cycle", "Fmax MHz median (min-max)",
                                 "MMAC/s per area", "ratio"], comparison_rows(synth)),
                 "\n### Batched (SAIL) and per-row-scaled points at W2A8\n",
                 "`batch: 4`: four activation vectors share every weight beat (four tables, one "
                 "index per row); `scale_bits: 8`: per-row unsigned 8-bit output scales (y * s "
                 "exact, one multiplier per result after the drain). MAC/cycle at W2 (LUT-GEMV: "
                 "rows x g x batch / 2). *base*: the point it extends. Batching divides the weight-stream "
                 "bits per MAC by the batch; it does not save logic per MAC here, since every "
                 "(vector, row) pair keeps its own table multiplexer and accumulator and each "
                 "vector's table is shifted per plane.\n",
                 markdown_table(["target", "design", "base", "MAC/cycle", "area", "LUT4", "DSP", "BRAM",
                                 "area per MAC/cycle", "base area per MAC/cycle",
                                 "Fmax MHz median (min-max)", "base Fmax MHz"], extra_rows(synth)),
                 calibration_section(TARGETS, jobs=args.jobs)]
    update_section("lutgemv", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
