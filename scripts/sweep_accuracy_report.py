"""BENCHMARKS.md's ``sweep-accuracy`` section from an ``evaluate:`` sweep's results
(``lowbit sweep sweeps/accuracy.yaml``, then ``python -m lowbit.scripts.sweep_accuracy_report
--write``): the model-accuracy plot and the sweep's table, leaving the demo sweep's section
(``lowbit report``) as it is."""
from __future__ import annotations


def accuracy_section(results_json, root=None) -> str:
    """BENCHMARKS.md's ``sweep-accuracy`` section from an ``evaluate:`` sweep's results: the
    model-accuracy plot (into ``root/docs/benchmarks``) and the sweep's table."""
    from pathlib import Path

    from lowbit.scripts.sweep_plots import plot_model_accuracy
    from lowbit.scripts.sweep_report import REPO, _sweep_body
    from lowbit.scripts.sweep_results import load_results, rows

    root = Path(root or REPO)
    doc = load_results(results_json)
    table = rows(doc["records"])
    plot = plot_model_accuracy(table, root / "docs" / "benchmarks")
    lines = ["## Accuracy as a sweep axis (`lowbit sweep sweeps/accuracy.yaml`, then "
             "`python -m lowbit.scripts.sweep_accuracy_report --write`)", "",
             "Each point synthesised (median Fmax of nextpnr seeds 1-3; logic cells) and run on "
             "all-MiniLM-L6-v2 in its role (`scripts/sweep_accuracy.py`); n/a: the family has no "
             "operator in the model.", ""]
    if plot is not None:
        lines += [f"![{plot.stem}]({plot.relative_to(root).as_posix()})", ""]
    return "\n".join(lines + _sweep_body(doc, table))


def main(argv=None) -> int:
    import argparse

    from lowbit.scripts.benchmarks_md import update_section

    parser = argparse.ArgumentParser(description="render the accuracy sweep's BENCHMARKS.md section")
    parser.add_argument("results", nargs="?", default="build/sweeps/accuracy/results.json")
    parser.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md's section")
    args = parser.parse_args(argv)
    body = accuracy_section(args.results)
    print(body)
    if args.write:
        update_section("sweep-accuracy", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
