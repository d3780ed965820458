"""Per-family figures of a design point that need no tools: accuracy from the golden model
(bit-exact to the RTL) and storage; used by the sweep engine and the report.

``family_metrics(config)`` returns a flat dict; keys every family may fill:

* ``max_err_lsb`` / ``mean_err_lsb``: error of the golden model (= the RTL) in output LSBs
  against the correctly rounded float function (approximator families only);
* ``cost_bits``: coefficient / table storage where the family has it;
* ``throughput_per_cycle`` / ``throughput_unit``: results per clock at full rate (always set;
  a family without an entry gets one output beat per cycle).

A component attribute ``throughput`` (results per cycle), where a generator has one, wins.
"""
from __future__ import annotations

import numpy as np

EXHAUSTIVE_MAX_BITS = 16
SOFTMAX_ROWS = 64


def _activation(config) -> dict:
    from lowbit.golden_models import activation as golden

    if config.input.width <= EXHAUSTIVE_MAX_BITS:
        codes = config.input.all_values()
    else:
        codes = np.random.default_rng(1).integers(config.input.min_int, config.input.max_int + 1, 1 << 16)
    out = golden.model(config, codes)
    ref = golden.correctly_rounded(config.function, config.input, config.output, codes)
    worst, mean = golden.error_lsb(out, ref)
    return {"max_err_lsb": worst, "mean_err_lsb": round(mean, 5), "cost_bits": golden.coefficient_bits(config),
            "accuracy_inputs": "every input code" if config.input.width <= EXHAUSTIVE_MAX_BITS else "65536 random"}


def _softmax(config) -> dict:
    from lowbit.golden_models import softmax as golden

    rng = np.random.default_rng(1)
    fmt = config.input
    rows = [rng.integers(fmt.min_int, fmt.max_int + 1, int(rng.integers(1, config.n_max + 1)))
            for _ in range(SOFTMAX_ROWS)]
    outs = golden.model(config, rows)
    metrics = [golden.row_metrics(config, x, y) for x, y in zip(rows, outs)]
    return {"max_err_lsb": round(max(m["max_err"] for m in metrics), 4),
            "mean_err_lsb": round(float(np.mean([m["mean_err"] for m in metrics])), 5),
            "max_row_sum_err_lsb": max(abs(m["sum_err"]) for m in metrics),
            "accuracy_inputs": f"{SOFTMAX_ROWS} random rows (seed 1)"}


def _bitserial(config) -> dict:
    steps = {"weight_serial": config.wbits_max, "both_serial": config.wbits_max * config.abits,
             "parallel": 1}[config.mode]
    return {"throughput_per_cycle": config.rows * config.cols * config.lanes / steps,
            "throughput_unit": f"MAC/cycle at {config.wbits_max}-bit weights"}


#: results per cycle at full rate, from each generator's docstring (Timing: Throughput)
FAMILY_METRICS = {"activation": _activation, "softmax": _softmax, "bitserial": _bitserial}
THROUGHPUT_UNITS = {"activation": "results/cycle", "softmax": "probabilities/cycle (rows >= row_overhead)"}
APPROXIMATORS = ("activation", "softmax")


def family_metrics(config) -> dict:
    hook = FAMILY_METRICS.get(config.family)
    out = hook(config) if hook else {}
    out.setdefault("throughput_per_cycle", 1.0)
    out.setdefault("throughput_unit", THROUGHPUT_UNITS.get(config.family, "output beats/cycle"))
    return out
