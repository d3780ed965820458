"""Per-family figures of a design point that need no tools: accuracy from the golden model
(bit-exact to the RTL) and storage; used by the sweep engine and the report.

``family_metrics(config)`` returns a flat dict; keys every family may fill:

* ``max_err_lsb`` / ``mean_err_lsb``: error of the golden model (= the RTL) in output LSBs
  against the correctly rounded float function (approximator families only);
* ``cost_bits``: coefficient / table storage where the family has it.

Families without an entry get ``{}``; their points still sweep, plot and report (throughput
then comes from the component's ``throughput`` attribute or one beat per cycle).
"""
from __future__ import annotations

import numpy as np

EXHAUSTIVE_MAX_BITS = 16
SOFTMAX_ROWS = 64


def _activation(config) -> dict:
    from golden_models import activation as golden

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
    from golden_models import softmax as golden

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


FAMILY_METRICS = {"activation": _activation, "softmax": _softmax}
APPROXIMATORS = tuple(FAMILY_METRICS)


def family_metrics(config) -> dict:
    hook = FAMILY_METRICS.get(config.family)
    return hook(config) if hook else {}
