"""The ``lowbit`` command line: a thin argparse layer over the Python API.

    lowbit list                         catalogue in hw/ and the block families
    lowbit params FAMILY                every parameter of a family (kind, range, default)
    lowbit generate DESIGN              Verilog into build/<name>/
    lowbit sim DESIGN [--seed N] [--waves]
    lowbit synth DESIGN [--target T]    Yosys -> nextpnr -> bitstream + report
    lowbit synth --board icebreaker DESIGN   board bitstream (UART host link, PLL, LEDs)
    lowbit run --port /dev/ttyUSB1 DESIGN    random vectors on a board vs the golden model
    lowbit run --sim DESIGN             the same against the Verilator board simulation
    lowbit package DESIGN               IP package: Verilog, .f, FuseSoC .core, manifest
    lowbit flow DESIGN                  all three, then a summary table
    lowbit verify DESIGN [--mutants N]  bench + coverage, stream proofs, mutation: verify.json
    lowbit sweep SWEEP.yaml             design-space sweep (local workers or Dask)
    lowbit report                       BENCHMARKS.md sweep/tools sections + plots
    lowbit evaluate --linear D --gelu D --softmax D   MiniLM accuracy of design points

DESIGN is a YAML file, the name of a file in hw/, or omitted with ``--family`` and
``-p key=value`` parameters. ``-p`` also overrides parameters of a YAML file. This module
sees every package and nothing imports it.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import yaml

from lowbit.rtl_gen.catalogue import DEFAULT_DESIGN, catalogue, catalogue_dir
from lowbit.rtl_gen.sweep_spec import DEFAULT_MAX_POINTS
from lowbit.scripts.cli_steps import progress, step
from lowbit.scripts.cli_errors import (OneLineParser, StepFailed, nonnegative_int,
                                       positive_float, positive_int, run_command)
from lowbit.rtl_gen.config import ConfigError, parse_param_value, read_yaml
from lowbit.rtl_gen.families import FAMILIES, load_design, parse_design

def resolve_design(args) -> "object":
    """The validated config named by ``args.design`` / ``--family`` plus ``-p`` overrides."""
    overrides = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("<command line>", f"-p {item}", "expected key=value, such as -p input=Q4.11")
        try:
            overrides[key.strip()] = parse_param_value(value)
        except yaml.YAMLError as exc:
            raise ConfigError("<command line>", f"-p {item}", "the value is not valid YAML "
                              f"({getattr(exc, 'problem', None) or 'unreadable'}); quote text, "
                              "write lists as [a, b]") from None
    if args.design is None and args.family is None:
        args.design = DEFAULT_DESIGN
    if args.design is not None:
        path = Path(args.design)
        if not path.is_file():
            known = catalogue()
            if args.design not in known:
                raise ConfigError(args.design, "<file>", "is neither a YAML file nor a design in "
                                  f"{catalogue_dir()} (known: {', '.join(known) or 'none'})")
            path = known[args.design]
        if not overrides and not args.name:
            return load_design(path)
        config = load_design(path)  # validates the file itself first
        doc = read_yaml(path)
        source = str(path)
        if not args.name:   # an override never shares build/<name>/ with the unmodified design
            doc["name"] = derived_name(config.name, overrides)
    else:
        doc = {"family": args.family, "name": args.name or f"{args.family}_custom"}
        source = "<command line>"
    doc["params"] = {**(doc.get("params") or {}), **overrides}
    if args.name:
        doc["name"] = args.name
    return parse_design(doc, source)


def derived_name(name: str, overrides: dict) -> str:
    """``gelu_q3_4`` with ``-p order=2`` -> ``gelu_q3_4__order2`` (the sweep's point names)."""
    def token(value) -> str:
        text = "_".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"

    return name + "__" + "_".join(f"{k}{token(v)}" for k, v in sorted(overrides.items()))


def check_build_dir(args) -> None:
    """``--build-dir`` must be a folder (or not exist yet)."""
    build = Path(getattr(args, "build_dir", "build") or "build")
    if build.exists() and not build.is_dir():
        raise ConfigError("<command line>", "--build-dir", f"{build} is a file; expected a folder "
                          "(or a path that does not exist yet)")


def check_targets(targets) -> None:
    from lowbit.fpga.targets import TARGETS

    for target in targets:
        if target not in TARGETS:
            raise ConfigError("<command line>", "--target", f"{target!r} is not allowed; expected "
                              f"one of {', '.join(TARGETS)}")


def cmd_list(args) -> int:
    print("block families:", ", ".join(sorted(FAMILIES)))
    print(f"designs in {catalogue_dir()}:")
    for name, path in catalogue().items():
        try:
            config = load_design(path)
            params = ", ".join(f"{k}={v}" for k, v in config.params().items())
            print(f"  {name:24s} {config.family:12s} {params}")
        except ConfigError as exc:
            print(f"  {name:24s} INVALID: {exc}")
    return 0


def do_generate(config, args):
    from lowbit.rtl_gen.generate import generate

    start = step(f"generate {config.name}")
    result = generate(config, Path(args.build_dir))
    print(f"  wrote {result.verilog} (sha256 {result.sha256[:12]}, latency {result.latency} cycles) "
          f"in {time.perf_counter() - start:.1f} s")
    return result


def do_sim(config, generated, args):
    from lowbit.testbenches.runner import run_generated

    from lowbit.rtl_gen.generate import test_module

    start = step(f"simulate {config.name} (cocotb + Verilator)")
    out = Path(args.build_dir) / config.name / "sim"
    result = run_generated(generated, test_module(config),
                           cache_root=(Path(args.build_dir) / "sim_cache").resolve(),
                           test_dir=out.resolve(), seed=args.seed, waves=args.waves)
    print(f"  {result.tests} tests passed (seed {result.seed}) in {time.perf_counter() - start:.1f} s")
    if result.waves:
        print(f"  waves: {result.waves}")
    return result


def do_synth(config, args):
    from lowbit.fpga.flow import synthesize

    from lowbit.rtl_gen.generate import build_component
    from lowbit.rtl_gen.provenance import provenance

    targets = args.target or list(config.targets)
    check_targets(targets)
    reports = []
    for target in targets:
        start = step(f"synthesise {config.name} for {target}")
        report = synthesize(build_component(config), config.name, target,
                            Path(args.build_dir) / config.name / target,
                            freq_mhz=args.freq, seed=args.pnr_seed, progress=progress,
                            provenance=provenance(config))
        print(f"  {report.lut4} LUT4, {report.ff} FF, {report.dsp} DSP, {report.bram} BRAM, "
              f"Fmax {report.fmax_mhz:.1f} MHz in {time.perf_counter() - start:.1f} s")
        for note in report.notes:
            print(f"  note: {note}")
        reports.append(report)
    return reports


def check_timing(reports, args) -> int:
    """0, or with ``--strict`` a :class:`StepFailed` naming every target that missed timing."""
    missed = [f"{r.target} {r.fmax_mhz:.1f} of {r.constraint_mhz:g} MHz" for r in reports
              if not r.timing_met]
    if missed and args.strict:
        raise StepFailed("timing not met (--strict): " + ", ".join(missed))
    return 0


def cmd_params(args) -> int:
    from lowbit.rtl_gen.params import text_lines

    if args.family not in FAMILIES:
        raise ConfigError("<command line>", "family", f"{args.family!r} is not a block family; "
                          f"expected one of {', '.join(sorted(FAMILIES))}")
    print(f"parameters of family {args.family} (params: in a design file, -p KEY=VALUE):")
    for line in text_lines(FAMILIES[args.family]):
        print(f"  {line}")
    return 0


def cmd_generate(args) -> int:
    do_generate(resolve_design(args), args)
    return 0


def cmd_sim(args) -> int:
    config = resolve_design(args)
    do_sim(config, do_generate(config, args), args)
    return 0


def cmd_synth(args) -> int:
    from lowbit.fpga.flow import format_table

    config = resolve_design(args)
    if args.board:
        from lowbit.scripts.cli_board import board_synth, check_board_clock, check_board_design

        check_board_clock(args.board, args.freq)
        check_board_design(config, host=False)
        return board_synth(config, args)
    reports = do_synth(config, args)
    print(format_table(reports))
    return check_timing(reports, args)


def cmd_run(args) -> int:
    from lowbit.scripts.cli_board import run_design

    return run_design(resolve_design(args), args)


def cmd_package(args) -> int:
    from lowbit.fpga.package import package

    config = resolve_design(args)
    out = Path(args.out) if args.out else Path(args.build_dir) / config.name / "package"
    manifest = package(config, out, build_root=Path(args.build_dir), force=args.force,
                       interface=args.interface)
    print(f"wrote {out}: {', '.join(manifest['files'])}, manifest.json")
    return 0


def cmd_flow(args) -> int:
    from lowbit.fpga.flow import format_table

    config = resolve_design(args)
    generated = do_generate(config, args)
    sim = do_sim(config, generated, args)
    reports = do_synth(config, args)
    print()
    print(f"## {config.name} ({config.family}: "
          + ", ".join(f"{k}={v}" for k, v in config.params().items()) + ")")
    print(f"verilog: {generated.verilog}  latency: {generated.latency} cycles")
    print(f"simulation: {sim.tests} cocotb tests passed under Verilator (seed {sim.seed})")
    print(format_table(reports))
    for report in reports:
        print(f"bitstream ({report.target}): {report.bitstream}")
    return check_timing(reports, args)


def cmd_verify(args) -> int:
    from lowbit.scripts.verify import verify_command

    return verify_command(resolve_design(args), args)


def cmd_sweep(args) -> int:
    from lowbit.scripts.sweep_main import sweep_command  # the engine sits in scripts/ (imports all)

    return sweep_command(args.sweep, workers=args.workers, scheduler=args.scheduler, out=args.out,
                         retry_failed=args.retry_failed, quiet=args.quiet,
                         max_points=args.max_points)


def cmd_report(args) -> int:
    from lowbit.scripts.sweep_report import report_command

    return report_command(args.results, tools_bench=args.tools_bench, workers=args.workers,
                          write=args.write, force=args.force)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="lowbit", description=__doc__.split("\n\n")[0],
                           epilog="exit status: 0 done, 1 a step failed, 2 bad input, 130 interrupted")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=OneLineParser)
    sub.add_parser("list", help="list the designs in hw/ and the block families").set_defaults(func=cmd_list)
    p = sub.add_parser("params", help="list a block family's parameters (kind, range, default)")
    p.add_argument("family", help=f"one of {', '.join(sorted(FAMILIES))}")
    p.set_defaults(func=cmd_params)

    def design_command(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("design", nargs="?", help=f"YAML file or name in hw/ (default {DEFAULT_DESIGN})")
        p.add_argument("--family", choices=sorted(FAMILIES), help="build from -p parameters without a YAML file")
        p.add_argument("--name", help="design name (build/<name>/); overrides the file's")
        p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="set a parameter (repeatable)")
        p.add_argument("--build-dir", default="build", help="output root (default build/)")
        p.set_defaults(func=func)
        return p

    design_command("generate", cmd_generate, "write Verilog into build/<name>/")
    for name, func, text in (("sim", cmd_sim, "run the cocotb bench under Verilator"),
                             ("flow", cmd_flow, "generate, simulate and synthesise")):
        p = design_command(name, func, text)
        p.add_argument("--seed", type=nonnegative_int, help="random seed of the bench (printed; replays a run)")
        p.add_argument("--waves", action="store_true", help="keep an FST waveform")
    for name, func, text in (("synth", cmd_synth, "Yosys + nextpnr to a bitstream and report"),
                             ("flow", cmd_flow, None)):
        p = sub.choices[name] if name in sub.choices else design_command(name, func, text)
        p.add_argument("--target", action="append", help="FPGA target (repeatable; default: the design's targets)")
        p.add_argument("--freq", type=positive_float, help="clock constraint in MHz (default per target)")
        p.add_argument("--pnr-seed", type=nonnegative_int, default=1, help="nextpnr placement seed")
        p.add_argument("--strict", action="store_true",
                       help="exit 1 when a target misses its clock constraint")
    from lowbit.fpga.board_flow import BOARD_BAUD
    from lowbit.fpga.boards import BOARDS

    sub.choices["synth"].add_argument("--board", choices=sorted(BOARDS),
                                      help="build a board bitstream (host link, PLL, LEDs)")
    sub.choices["synth"].add_argument("--baud", type=positive_int, default=BOARD_BAUD,
                                      help=f"board UART baud rate (default {BOARD_BAUD})")
    p = design_command("run", cmd_run, "send random vectors to a board, check the results")
    p.add_argument("--port", help="serial port of the board (pyserial name or URL)")
    p.add_argument("--sim", action="store_true", help="use the Verilator board simulation")
    p.add_argument("--board", choices=sorted(BOARDS), default="icebreaker",
                   help="the board (its host-link buffers; --sim models its board core)")
    p.add_argument("--baud", type=positive_int, default=BOARD_BAUD, help=f"default {BOARD_BAUD}")
    p.add_argument("--count", type=positive_int, default=256, help="random vectors (plus corners)")
    p.add_argument("--seed", type=nonnegative_int, help="stimulus seed")
    p.add_argument("--timeout", type=positive_float, default=2.0, help="seconds to wait for an answer")
    p = design_command("package", cmd_package, "write an IP package (Verilog, .core, manifest)")
    p.add_argument("--out", help="package folder (default build/<name>/package)")
    p.add_argument("--force", action="store_true",
                   help="write into a folder lowbit did not make (its files are kept)")
    p.add_argument("--interface", choices=("native", "axis"), default="native",
                   help="axis: add an AXI4-Stream shell (axis/<name>_axis.v, FuseSoC target axis)")
    p = design_command("verify", cmd_verify, "bench with coverage, stream proofs, mutation campaign")
    p.add_argument("--seed", type=nonnegative_int, help="random seed of the bench (printed; replays a run)")
    p.add_argument("--mutants", type=nonnegative_int, default=0, help="mutants to run (default 0: none)")
    p.add_argument("--mutation-seed", type=nonnegative_int, default=1, help="seed choosing the mutants")
    p.add_argument("--no-bench", action="store_true", help="leave out the cocotb bench")
    p.add_argument("--no-formal", action="store_true", help="leave out the stream proofs")
    p = sub.add_parser("sweep", help="run a design-space sweep (sweeps/*.yaml)")
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--workers", type=positive_int, help="worker processes (default: every local core)")
    p.add_argument("--scheduler", help="Dask scheduler address, or 'local' for a local Dask cluster")
    p.add_argument("--out", help="results folder (default build/sweeps/<name>/)")
    p.add_argument("--retry-failed", action="store_true", help="redo points that failed before")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--max-points", type=positive_int, default=DEFAULT_MAX_POINTS,
                   help=f"refuse a sweep of more points (default {DEFAULT_MAX_POINTS:,})")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("report", help="render BENCHMARKS.md's sweep section + plots from results")
    p.add_argument("results", nargs="*", help="results.json files (default: every build/sweeps/*/)")
    p.add_argument("--tools-bench", action="store_true", help="also rerun the tools benchmark")
    p.add_argument("--write", action="store_true",
                   help="rewrite the committed BENCHMARKS.md and docs/benchmarks/ (default: build/report/)")
    p.add_argument("--force", action="store_true",
                   help="with --write: replace a section even with one made from fewer results")
    p.add_argument("--workers", type=positive_int, help="workers of the speed-up measurement (default: all)")
    p.set_defaults(func=cmd_report)
    from lowbit.scripts.evaluate_cli import add_arguments, evaluate_command
    add_arguments(sub.add_parser("evaluate", help="MiniLM embedding accuracy of design points")
                  ).set_defaults(func=evaluate_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; failures are one line on stderr (exit codes: ``cli_errors``)."""
    args = build_parser().parse_args(argv)

    def command(args) -> int:
        check_build_dir(args)
        return args.func(args)

    return run_command(command, args)


if __name__ == "__main__":
    sys.exit(main())
