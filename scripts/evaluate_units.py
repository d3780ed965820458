"""The transformer's operators with the chosen units in place (``lowbit evaluate``), each
converting at its boundary; every narrowing is stated here and in
:mod:`lowbit.scripts.evaluate_linear` (linear layers) and
:mod:`lowbit.golden_models.rotation` (rotation):

* **GELU on the activation unit**: ``x`` is narrowed to the unit's input format
  (:func:`to_codes`: round half to even, saturate; saturations counted), the unit's codes
  are dequantised by its output LSB.
* **Softmax on the softmax unit**: the scaled scores ``QK^T/sqrt(d)`` are narrowed to the
  input format the same way, one attention row is one unit row (no mask), the
  probabilities are dequantised by the output LSB.
* **Rotation**: the inputs of the plan's sites pass through the rotation unit's golden
  model (:func:`lowbit.golden_models.rotation.rotate_online`) before their linear layer.

Every unit counts the inputs it saw, how many saturated, and their float range
(:class:`UnitStats`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.golden_models import rotation as rot
from lowbit.golden_models import softmax as sm
from lowbit.golden_models import transformer as tf
from lowbit.golden_models import whole_layer as wl
from lowbit.golden_models.fixedpoint import QFormat

from lowbit.scripts.evaluate_linear import LinearUnit, act_bits


@dataclass
class UnitStats:
    """Inputs one unit saw: how many, how many saturated, their float range."""

    unit: str
    fmt: str
    count: int = 0
    saturated: int = 0
    lo: float = np.inf
    hi: float = -np.inf

    def add(self, x: np.ndarray, saturated: int) -> None:
        self.count += int(x.size)
        self.saturated += int(saturated)
        if x.size:
            self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))

    def as_dict(self) -> dict:
        return {"unit": self.unit, "format": self.fmt, "count": self.count,
                "saturated": self.saturated, "range": [self.lo, self.hi]}


def to_codes(x: np.ndarray, fmt: QFormat) -> tuple[np.ndarray, int]:
    """``x`` narrowed to ``fmt``: round half to even, saturate; and the saturations."""
    raw = np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** fmt.frac_bits)
    saturated = int(np.count_nonzero((raw < fmt.min_int) | (raw > fmt.max_int)))
    return np.clip(raw, fmt.min_int, fmt.max_int).astype(np.int64), saturated


class HardwareOps(tf.FloatOps):
    """Float operators with the chosen units in place (``None``: that op stays float).
    ``calibrating``: a sequential calibration pass (the linear unit quantises each site
    the first time it runs, from the input it gets)."""

    def __init__(self, linear: LinearUnit | None = None, gelu=None, softmax=None,
                 rotation: tuple | None = None, calibrating: bool = False):
        self.linear_unit, self.gelu_cfg, self.softmax_cfg = linear, gelu, softmax
        self.rotation = rotation      # (rot.Plan, {block length: hadamard config}) or None
        self.calibrating = calibrating
        self.stats: dict[str, UnitStats] = {}
        if softmax is not None:
            self.softmax_consts = sm.constants_of(softmax)

    def _stats(self, key: str, unit: str, fmt: str) -> UnitStats:
        return self.stats.setdefault(key, UnitStats(unit, fmt))

    def linear(self, site, x, w, b):
        block = self.rotation[0].block(site[1]) if self.rotation is not None else 0
        if block:
            rotator = self.rotation[1][block]
            stats = self._stats(f"rotate.{site[1]}", "hadamard " + rotator.name, f"INT{rotator.width}")
            rotated, saturated = rot.rotate_online(x, rotator)
            stats.add(x, saturated)
            x = rotated
        unit = self.linear_unit
        if unit is None:
            return super().linear(site, x, w, b)
        qw = unit.weight(site, w, x, self.calibrating)
        acts, scale, saturated = unit.narrow(site, x)
        self._stats(f"linear.{site[1]}", f"{unit.cfg.family} {unit.cfg.name}",
                    f"INT{act_bits(unit.cfg)}").add(x, saturated)
        y = unit.integer_gemm(qw, acts)
        return y.T * scale[:, None] * qw.base[None, :] + b

    def gelu(self, x):
        cfg = self.gelu_cfg
        if cfg is None:
            return super().gelu(x)
        codes, saturated = to_codes(x, cfg.input)
        self._stats("gelu", "activation " + cfg.name, str(cfg.input)).add(x, saturated)
        return wl.activation(cfg, codes) * cfg.output.lsb

    def softmax(self, scores):
        cfg = self.softmax_cfg
        if cfg is None:
            return super().softmax(scores)
        codes, saturated = to_codes(scores, cfg.input)
        self._stats("softmax", "softmax " + cfg.name, str(cfg.input)).add(scores, saturated)
        return wl.softmax_rows(self.softmax_consts, codes) * cfg.output.lsb
