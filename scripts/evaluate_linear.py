"""The linear layers of ``lowbit evaluate`` on a GEMV design point: the bit-serial array
(``bitserial``), LUT-GEMV (``lutgemv``) or its multiplier baseline (``gemv_mult``).

Weights are quantised once per site (:mod:`lowbit.golden_models.quantize`: RTN or GPTQ onto
integer weights, per-group integer scales, zero points, a float base per row) within what
the design point stores (:func:`limits_of`). The layer input ``x`` (T, K) is narrowed to the
unit's signed activations of ``act_bits(cfg)`` bits: per token (``act_scale='token'``)
``s_t = max|x_t| / (2**(b-1) - 1)``, or one static scale per layer from the calibration
inputs' largest ``|x|`` (``'static'``); ``a = saturate(round_half_even(x / s))`` (only a
static scale can saturate; counted). The unit's exact integer result ``Y`` (R, T) is
dequantised ``y = Y * s_t * base[r] + bias`` in float64, outside the unit.

* **bit-serial**: :func:`lowbit.golden_models.whole_layer.bitserial_gemm` (signed weights,
  or unsigned with group zero points; the array's group scales).
* **LUT-GEMV / multiplier baseline**: :func:`lowbit.golden_models.lutgemv.gemv`, the
  units' whole-layer model. The units take unsigned codes: symmetric weights ``w`` are sent
  as ``q = w + 2**(bits-1)`` with zero point ``2**(bits-1)`` (T-MAC's encoding), asymmetric
  ones as they are with their zero points. With ``qgroup`` the scales and zero points go per
  row and group on the ``q`` stream (quantiser groups a multiple of ``qgroup``; the unit's
  ``qscale_bits``); without it one zero point per pass, so per-row symmetric weights only
  (a point with ``scale_bits`` gets unit row scales: the row's float base does the scaling).
  A layer longer than ``k_max`` runs as ``ceil(K / k_max)`` passes whose exact integer
  results the host adds (the same integers as one long pass).

Both paths give the same integers wherever both can hold the quantisation (tested).
GPTQ's Hessians come from the float model's inputs on the calibration sentences, or with
``sequential`` from the quantised model's own inputs, layer after layer (the calibration
pass quantises each site the first time it runs: :meth:`LinearUnit.weight`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lowbit.golden_models import lutgemv as lg
from lowbit.golden_models import quantize as qz
from lowbit.golden_models import transformer as tf
from lowbit.golden_models import whole_layer as wl
from lowbit.rtl_gen.config import ConfigError

#: the families that can run the linear layers
LINEAR_FAMILIES = ("bitserial", "lutgemv", "gemv_mult")


def act_bits(cfg) -> int:
    return cfg.abits if cfg.family == "bitserial" else cfg.act_bits


def limits_of(cfg) -> qz.Limits:
    """What ``cfg`` stores: weight bits, scale group, scale bits, zero points."""
    if cfg.family == "bitserial":
        return qz.Limits.of_bitserial(cfg)
    return qz.Limits.of_gemv(lg.weight_bits_max(cfg), lg.span(cfg), lg.qgroup(cfg),
                             lg.qscale_bits(cfg))


def check_linear(cfg, role: str = "linear") -> None:
    """One-line ConfigError unless ``cfg`` can run the linear layers."""
    if cfg.family not in LINEAR_FAMILIES:
        raise ConfigError(cfg.name, role, f"is a {cfg.family} design; expected "
                          + " or ".join(LINEAR_FAMILIES))
    if cfg.family == "bitserial" and not cfg.asigned:
        raise ConfigError(cfg.name, "asigned", "the evaluation needs signed activations")
    if getattr(cfg, "ternary", False):
        raise ConfigError(cfg.name, "ternary", "ternary tables are not a quantiser of the "
                          "evaluation; use a design with ternary: false")


def check_scheme(cfg, scheme: qz.Scheme) -> None:
    try:
        qz.check_scheme(scheme, limits_of(cfg))
    except ValueError as exc:
        raise ConfigError(cfg.name, "quantisation", str(exc)) from None


def gemv_layer(cfg, qw: qz.QuantizedWeight, acts: np.ndarray) -> np.ndarray:
    """``Y`` (R, T) of the LUT-GEMV / multiplier unit ``cfg`` for activations ``acts``
    (T, K): ``lutgemv.gemv`` per pass of at most ``k_max`` columns, the passes added."""
    offset = 1 << (qw.bits - 1) if qw.signed else 0
    codes = qw.q + offset
    rows, k = codes.shape
    grouped = lg.qgroup(cfg)
    y = np.zeros((rows, len(acts)), dtype=np.int64)
    for c0 in range(0, k, cfg.k_max):
        cols = slice(c0, min(k, c0 + cfg.k_max))
        extra = {}
        if grouped:
            groups = slice(c0 // grouped, cols.stop // grouped)
            extra = dict(qscales=qw.scales[:, groups], qzeros=qw.zeros[:, groups] + offset)
        else:
            extra = dict(zero=offset)
            if lg.scale_bits(cfg):
                extra["scales"] = np.ones(rows, dtype=np.int64)
            if lg.exp_bits(cfg):
                extra["shifts"] = np.zeros((len(acts), (cols.stop - c0) // lg.span(cfg)), dtype=np.int64)
        y += lg.gemv(cfg, codes[:, cols], acts[:, cols], qw.bits, **extra)
    return y


@dataclass
class LinearUnit:
    """Every linear layer on one design point with one quantisation scheme."""

    cfg: object
    scheme: qz.Scheme
    act_scale: str = "token"
    sequential: bool = False
    weights: dict = field(default_factory=dict)     # site -> QuantizedWeight
    static_scales: dict = field(default_factory=dict)

    @property
    def needs_calibration(self) -> bool:
        return self.scheme.method == "gptq" or self.act_scale == "static"

    def quantize(self, site, w: np.ndarray, x: np.ndarray | None) -> None:
        """Quantise site ``site``'s weight ``w`` (N, K); ``x`` its calibration inputs."""
        h = qz.hessian(x) if self.scheme.method == "gptq" else None
        try:
            self.weights[site] = qz.quantize(np.asarray(w, dtype=np.float64), self.scheme,
                                             limits_of(self.cfg), h)
        except ValueError as exc:
            raise ConfigError(self.cfg.name, "weights", str(exc)) from None
        if self.act_scale == "static":
            amax = (1 << (act_bits(self.cfg) - 1)) - 1
            self.static_scales[site] = max(float(np.abs(x).max()), 1e-12) / amax

    def prepare(self, model_weights: dict, calib: dict | None, layers: int) -> None:
        """Quantise every site at once, from the float model's calibration inputs ``calib``."""
        if self.needs_calibration and calib is None:
            raise ConfigError("<evaluate>", "method", "GPTQ and static scales need calibration")
        for i in range(layers):
            for name, prefix in tf.SITES:
                self.quantize((i, name), model_weights[f"encoder.layer.{i}.{prefix}.weight"],
                              calib[(i, name)] if calib is not None else None)

    def weight(self, site, w, x, calibrating: bool) -> qz.QuantizedWeight:
        """The stored weight of ``site``; in a sequential calibration pass it is quantised
        here, from ``x``, the first time the site runs."""
        if site not in self.weights:
            if not calibrating:
                raise ConfigError(self.cfg.name, "weights", f"site {site} was never quantised")
            self.quantize(site, w, x)
        return self.weights[site]

    def narrow(self, site, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(activation codes (T, K), scale per token, saturated count) of ``x``."""
        amax = (1 << (act_bits(self.cfg) - 1)) - 1
        if self.act_scale == "static":
            scale = np.full(len(x), self.static_scales[site])
        else:
            scale = np.abs(x).max(axis=1) / amax
            scale = np.where(scale > 0, scale, 1.0)
        raw = np.rint(x / scale[:, None])
        saturated = int(np.count_nonzero((raw < -amax - 1) | (raw > amax)))
        return np.clip(raw, -amax - 1, amax).astype(np.int64), scale, saturated

    def integer_gemm(self, qw: qz.QuantizedWeight, acts: np.ndarray) -> np.ndarray:
        """The unit's exact ``Y`` (R, T) for activation codes ``acts`` (T, K)."""
        if self.cfg.family == "bitserial":
            return wl.bitserial_gemm(self.cfg, qw.q, acts.T, qw.scales, qw.zeros, qw.bits,
                                     qw.signed, check=False)
        return gemv_layer(self.cfg, qw, acts)

    def bits_per_weight(self) -> float:
        total = sum(q.q.size for q in self.weights.values())
        return sum(q.bits_per_weight() * q.q.size for q in self.weights.values()) / total
