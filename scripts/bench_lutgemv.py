"""Benchmark: LUT-GEMV against the multiplier baseline at W1, W2, W4 and ternary x A8, on
ice40-up5k and ecp5-25k, simulated cycle counts (K = 256 and K = 4,096), and a whole-device
point per target.

    python scripts/bench_lutgemv.py                 # synthesis + simulation, rewrites BENCHMARKS.md
    python scripts/bench_lutgemv.py --no-synth      # simulated cycle counts only
    python scripts/bench_lutgemv.py --no-device     # without the whole-device points

Every bit-plane LUT-GEMV point is one build serving all precisions at run time
(``bits_max: 4``): at ``W`` bits it does ``rows * lookups * g / W`` MACs per cycle. Each
baseline point is built for its ``W`` with ``rows * g = 48 / W`` multipliers (48 weight bits
per beat, 48 / W MACs per cycle) and the same K. The RAM-table points (``tables: ram``, ``rtl_gen.lutgemv_ram``)
are ``rows`` lanes of ``g`` MACs per cycle each at W1, also one build for W1..W4 at run
time. ``--points a,b,...`` runs only the named points (synthesis and simulation), for a run
that cannot place every point in the time it has; the section then names them. Ternary LUT-GEMV is compared with the W2 baseline, which
runs ternary weights as 2-bit codes. Area (``fpga.metrics``: iCE40 logic cells, ECP5 LUT4 +
2 x CCU2C + LUTRAM; Fmax the median of seeds 1-3) includes the pin wrapper; every figure
comes from a fresh run. The whole-device points (the largest LUT-GEMV and multiplier GEMV
tried that place on each part, both built for W1..W4) are one seed each. Cycle counts come
from the cocotb bench (``full_rate_cycle_count``: passes at every precision, no stalls)
under Verilator. The run ends with issue 13's goals against its own figures and the
calibration MAC of ``fpga.metrics`` placed in the same run.
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
PEAK = 48  # baseline MACs per cycle at every W
K_MAX = 256
#: name -> (family, params)
LUT_POINTS = {
    "lut_g2_l4": ("lutgemv", dict(group=2, lookups=4, rows=12, bits_max=4, k_max=K_MAX, symmetric=True)),
    "lut_ternary_l2": ("lutgemv", dict(group=3, lookups=2, rows=8, bits_max=2, k_max=192,
                                       symmetric=True, ternary=True)),
}
#: RAM tables (``tables: ram``): ``rows`` lanes, each a table RAM and an accumulator RAM;
#: 10 lanes use the UP5K's 30 SB_RAM40_4K (one for the table, two for 17-bit accumulators)
RAM_POINTS = {
    "ram_g4_p10": ("lutgemv", dict(tables="ram", group=4, rows=10, bits_max=4, k_max=K_MAX, m_max=320)),
    "ram_g8_p10": ("lutgemv", dict(tables="ram", group=8, rows=10, bits_max=4, k_max=K_MAX, m_max=320)),
}
LUT_POINTS.update(RAM_POINTS)
BITPLANE_POINTS = ["lut_g2_l4", *RAM_POINTS]
MULT_W = (1, 2, 4)
MULT_POINTS = {f"mult_w{w}": ("gemv_mult", dict(group=4, rows=PEAK // 4 // w, wbits=w, k_max=K_MAX))
               for w in MULT_W}
#: cycle-count points at an LLM's K (simulation only)
K4096_POINTS = {
    "lut_g2_l4_k4096": ("lutgemv", dict(LUT_POINTS["lut_g2_l4"][1], k_max=4096)),
    "lut_llm_q128": ("lutgemv", dict(group=2, rows=16, bits_max=4, k_max=4096, symmetric=True,
                                     qgroup=128, qscale_bits=8)),
    "mult_w4_k4096": ("gemv_mult", dict(group=4, rows=3, wbits=4, k_max=4096)),
    "ram_g4_p10_k4096": ("lutgemv", dict(RAM_POINTS["ram_g4_p10"][1], k_max=4096)),
}
TARGETS = ("ice40-up5k", "ecp5-25k")
#: whole-device points: target -> [(name, family, params)], both families built for W1..W4
DEVICE_POINTS = {
    "ice40-up5k": [("dev_lut_up5k", "lutgemv", dict(group=2, lookups=4, rows=16, bits_max=4, k_max=K_MAX)),
                   ("dev_mult_up5k", "gemv_mult", dict(group=4, rows=5, wbits=4, k_max=K_MAX))],
    "ecp5-25k": [("dev_ram_ecp5", "lutgemv", dict(tables="ram", group=8, rows=24, bits_max=4, k_max=K_MAX,
                                                  m_max=768)),
                 ("dev_lut_ecp5", "lutgemv", dict(group=2, lookups=4, rows=48, bits_max=4, k_max=K_MAX)),
                 ("dev_mult_ecp5", "gemv_mult", dict(group=4, rows=28, wbits=4, k_max=K_MAX))],
}
ALL = {**LUT_POINTS, **MULT_POINTS, **K4096_POINTS,
       **{n: (f, p) for pts in DEVICE_POINTS.values() for n, f, p in pts}}


def config(name):
    family, params = ALL[name]
    return parse_design({"family": family, "name": f"bench_{name}", "params": params}, "<bench_lutgemv>")


def synth_one(job):
    from lowbit.fpga.flow import ToolError
    from lowbit.fpga.metrics import SEEDS, area, format_fmax, synth_seeds
    from lowbit.rtl_gen.generate import build_component

    name, target, seeds = job
    cfg = config(name)
    out = Path("build/bench_lutgemv") / name / target
    start = time.perf_counter()
    try:  # always a fresh run: no figure is taken from an earlier report
        result = synth_seeds(functools.partial(build_component, cfg), cfg.name, target, out,
                             seeds=seeds or SEEDS)
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


def macs(name, w):
    """MACs per cycle of a point at ``w``-bit weights (``"t"``: ternary)."""
    cfg = config(name)
    if cfg.family == "gemv_mult" or cfg.ternary:
        return cfg.peak_macs_per_cycle
    return cfg.peak_macs_per_cycle // (2 if w == "t" else w)  # ternary as 2-bit codes


def comparison_rows(synth):
    rows, ratios = [], {}
    for target in TARGETS:
        for w in (*MULT_W, "t"):
            base_name = "mult_w2" if w == "t" else f"mult_w{w}"
            base = synth.get((base_name, target))
            base_per = base and "error" not in base and base["area"] / macs(base_name, w)
            names = ["lut_ternary_l2", *BITPLANE_POINTS] if w == "t" else [*BITPLANE_POINTS, base_name]
            for name in names:
                r = synth.get((name, target))
                if r is None or "error" in r:
                    continue
                n = macs(name, w)
                per = r["area"] / n
                if name == base_name:
                    ratio = "1 (baseline)"
                else:
                    ratio = f"{base_per / per:.2f}" if base_per else "n/a (baseline failed)"
                    ratios[(target, w, name)] = base_per / per if base_per else None
                if w == "t" and name != "lut_ternary_l2":
                    ratio += " (W2 codes)"
                label = "ternary x A8" if w == "t" else f"W{w}A8"
                rows.append([target, label, name, n, f"{r['area']} {r['unit']}", r["lut4"], r["dsp"],
                             r["bram"], f"{per:.1f}", r["fmax_text"], f"{n * r['fmax'] / r['area']:.2f}",
                             ratio + ("" if name == base_name else f" vs {base_name}")])
    return rows, ratios


def device_rows(synth):
    rows = []
    for target, points in DEVICE_POINTS.items():
        for name, family, params in points:
            r = synth.get((name, target))
            if r is None:
                continue
            if "error" in r:
                rows.append([target, name, family, json.dumps(params), "failed: " + r["error"].replace("|", "/"),
                             "", "", "", "", "", "", ""])
                continue
            gmacs = [f"{macs(name, w) * r['fmax'] / 1000:.2f}" for w in (1, 2, 4)]
            tern = f"{macs(name, 2) * r['fmax'] / 1000:.2f}"  # ternary as W2 codes
            rows.append([target, name, family, json.dumps(params), f"{r['area']} {r['unit']}", r["dsp"],
                         r["bram"], f"{r['fmax']:.1f}", *gmacs, tern])
    return rows


def _best(values):
    """The best (largest) of (figure, name) pairs, as text."""
    values = [v for v in values if v[0] is not None]
    return max(values) if values else (None, "n/a")


def goals_rows(synth, ratios, figures):
    """Issue 13's goals (and issue 12's timing goal) against this run's figures."""
    rows = []
    labels = {1: "W1", 2: "W2", "t": "ternary"}
    for target, ws, goal in (("ice40-up5k", (1, 2, "t"), 2.0), ("ecp5-25k", (1, "t"), 2.0)):
        got = []
        for w in ws:
            ratio, name = _best([(r, n) for (t, ww, n), r in ratios.items() if t == target and ww == w])
            got.append((w, ratio, name))
        text = ", ".join(f"{labels[w]} {r:.2f}x (`{n}`)" if r else f"{labels[w]} n/a" for w, r, n in got)
        rows.append([f"{target} density >= {goal:.0f}x the baseline at "
                     f"{' / '.join(labels[w] for w in ws)}", text,
                     "yes" if all(r and r >= goal for _, r, _ in got) else "no"])
    per = []
    for w, limit in ((1, 16), (2, 32), ("t", 24)):
        names = ["lut_ternary_l2", *BITPLANE_POINTS] if w == "t" else BITPLANE_POINTS
        cands = [(synth[(n, "ice40-up5k")]["area"] / macs(n, w), n) for n in names
                 if "error" not in synth.get((n, "ice40-up5k"), {"error": 1})]
        value, name = min(cands) if cands else (None, "n/a")
        per.append((labels[w], limit, value, name))
    rows.append(["ice40-up5k logic cells per MAC/cycle W1 <= 16, W2 <= 32, ternary <= 24",
                 ", ".join(f"{lab} {v:.1f} (`{n}`)" if v else f"{lab} n/a" for lab, _, v, n in per),
                 "yes" if all(v and v <= lim for _, lim, v, _ in per) else "no"])
    for target, goal in (("ice40-up5k", 80), ("ecp5-25k", 150)):
        got = [(synth[(n, target)]["fmax"], n, synth[(n, target)]["fmax_text"]) for n in LUT_POINTS
               if "error" not in synth.get((n, target), {"error": 1})]
        rows.append([f"{target} Fmax >= {goal} MHz (median of seeds 1-3)",
                     ", ".join(f"`{n}` {t}" for _, n, t in got),
                     "yes" if got and all(f >= goal for f, _, _ in got) else "no"])
    k = [(n, c) for n, c in figures.items() if config(n).family == "lutgemv" and config(n).k_max == 4096]
    rows.append(["cycles within 3 % of ideal at K = 4,096, table build included",
                 ", ".join(f"`{n}` {100 * c['measured'] / c['ideal']:.2f} %" for n, c in k),
                 "yes" if k and all(c["measured"] <= 1.03 * c["ideal"] for _, c in k) else "no"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-synth", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-device", action="store_true",
                        help="skip the whole-device points (several minutes of placement each)")
    parser.add_argument("--points", default="",
                        help="comma-separated point names: synthesise and simulate only these "
                             "(the section then says so; the goals use what was run)")
    args = parser.parse_args()
    chosen = [n for n in args.points.split(",") if n]
    unknown = [n for n in chosen if n not in ALL]
    if unknown:
        parser.error(f"--points: unknown {', '.join(unknown)}; choose from {', '.join(ALL)}")
    keep = (lambda n: n in chosen) if chosen else (lambda n: True)
    sim_names = [n for n in [*LUT_POINTS, *MULT_POINTS, *K4096_POINTS] if keep(n)]
    body = [f"## LUT-GEMV vs multiplier GEMV (W1, W2, W4, ternary x A8)\n\nRegenerate: `{COMMAND}`\n"]
    if chosen:
        body.append(f"This run: `{COMMAND} --points {args.points}"
                    f"{' --no-device' if args.no_device else ''} --jobs {args.jobs}` (only these points).\n")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        figures = dict(zip(sim_names, pool.map(cycles_one, sim_names)))
    cyc = [[n, config(n).family, config(n).k_max, c["ideal"], c["measured"],
            f"{100 * c['measured'] / c['ideal']:.2f} %"] for n, c in figures.items()]
    body += ["### Cycles in simulation (Verilator, no stalls, every precision 1..bits_max)\n",
             "Ideal = weight beats = sum over passes of (M/rows) * planes * (K/(lookups * g)); "
             "measured from the first weight beat to the last result, including the first table "
             "build, the per-vector restart (offset product, pipeline drain) and the output latency.\n",
             markdown_table(["design", "family", "K", "ideal cycles", "measured", "measured / ideal"], cyc)]
    if not args.no_synth:
        jobs = [(n, t, None) for n in [*LUT_POINTS, *MULT_POINTS] for t in TARGETS if keep(n)]
        if not args.no_device:
            jobs += [(n, t, (1,)) for t, pts in DEVICE_POINTS.items() for n, _, _ in pts if keep(n)]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            synth = {(n, t): r for n, t, r in pool.map(synth_one, jobs)}
        params = [[n, *ALL[n][:1], json.dumps(ALL[n][1])] for n in [*LUT_POINTS, *MULT_POINTS, *K4096_POINTS]
                  if keep(n)]
        rows, ratios = comparison_rows(synth)
        body += ["\n### Design points\n", markdown_table(["point", "family", "params"], params),
                 "\n### Resources per MAC/cycle (Yosys + nextpnr, pin wrapper included, K = 256)\n",
                 SYNTH_BASIS + " MAC/cycle at that precision; *area* = iCE40 logic cells / ECP5 "
                 "LUT-equivalents; *MMAC/s per area* = MAC/cycle x median Fmax / area; "
                 "*ratio* = baseline area per MAC/cycle / this design's (above 1: LUT-GEMV is "
                 "denser). DSP: multipliers mapped to DSP blocks (iCE40 SB_MAC16, ECP5 MULT18).\n",
                 markdown_table(["target", "precision", "design", "MAC/cycle", "area", "LUT4", "DSP",
                                 "BRAM", "area per MAC/cycle", "Fmax MHz median (min-max)",
                                 "MMAC/s per area", "ratio"], rows),
                 "\n### Whole-device points (one seed each; both built for W1..W4; ternary runs as W2 codes)\n",
                 "Not run (`--no-device`)." if args.no_device else
                 markdown_table(["target", "design", "family", "params", "area", "DSP", "BRAM", "Fmax MHz",
                                 "GMAC/s W1", "GMAC/s W2", "GMAC/s W4", "GMAC/s ternary"], device_rows(synth)),
                 "\n### Issue 13's goals against this run\n",
                 markdown_table(["goal", "measured", "reached"], goals_rows(synth, ratios, figures)),
                 calibration_section(TARGETS, Path("build/bench_lutgemv/calibration"), jobs=args.jobs)]
    update_section("lutgemv", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
