"""Per-family figures of a design point that need no tools, as the sweep engine and the
report record them: each family answers for itself (``DesignConfig.metrics()``,
``throughput_per_cycle()``, ``throughput_unit()``).

``family_metrics(config)`` returns a flat dict; keys a family may fill:

* ``max_err_lsb`` / ``mean_err_lsb``: error of the golden model (= the RTL) in output LSBs
  against the correctly rounded float function (approximator families only);
* ``cost_bits``: coefficient / table storage where the family has it;
* ``throughput_per_cycle`` / ``throughput_unit``: results per clock at full rate (always set).
"""
from __future__ import annotations

from lowbit.rtl_gen.families import FAMILIES

#: the families whose metrics include an accuracy against a float function
APPROXIMATORS = tuple(name for name, cls in FAMILIES.items() if cls.approximator)


def family_metrics(config) -> dict:
    return {**config.metrics(), "throughput_per_cycle": config.throughput_per_cycle(),
            "throughput_unit": config.throughput_unit()}
