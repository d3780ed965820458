"""The widths and bounds of a GEMV design point (LUT-GEMV and the multiplier baseline):
lanes, table entries, accumulators, group sums and results, each derived from the config so
no value can overflow it (``golden_models.lutgemv`` uses them and the generators size their
registers from them)."""
from __future__ import annotations

from .fixedpoint import signed_width


def lookups(cfg) -> int:
    """Table lookups per row per weight beat (LUT-GEMV ``lookups``; 1 for the baseline)."""
    return getattr(cfg, "lookups", 1) if cfg.family == "lutgemv" else 1


def span(cfg) -> int:
    """Activations per ``x`` beat and weight-beat columns: ``lookups * g`` (the baseline: ``g``)."""
    return cfg.group * lookups(cfg)


def exp_bits(cfg) -> int:
    """Width of the per-group activation shift (block-exponent offset; 0: none)."""
    return cfg.exp_bits


def max_shift(cfg) -> int:
    return (1 << exp_bits(cfg)) - 1 if exp_bits(cfg) else 0


def lane_width(cfg) -> int:
    """Signed width of an activation lane after its group shift."""
    return cfg.act_bits + max_shift(cfg)


def act_bound(cfg) -> int:
    """``|x << shift| <= 2**(act_bits-1) << max_shift``."""
    return 1 << (cfg.act_bits - 1 + max_shift(cfg))


def entry_width(cfg) -> int:
    """Signed width of a table entry: ``|T| <= g * 2**(act_bits-1)``."""
    bound = cfg.group * act_bound(cfg)
    return signed_width(-bound, bound)


def weight_bits_max(cfg) -> int:
    return cfg.bits_max if cfg.family == "lutgemv" else cfg.wbits


def qgroup(cfg) -> int:
    """Columns per quantisation group along K (0: no group scales and zero points)."""
    return getattr(cfg, "qgroup", 0)


def qscale_bits(cfg) -> int:
    """Width of the unsigned group scales (0 when the point has no ``qgroup``)."""
    return cfg.qscale_bits if qgroup(cfg) else 0


def acc_bound(cfg) -> int:
    """``|y| <= (2**bits_max - 1) * 2**(act_bits-1) * k_max`` (before any output scale)."""
    return ((1 << weight_bits_max(cfg)) - 1) * act_bound(cfg) * cfg.k_max


def partial_bound(cfg) -> int:
    """Bound of a row accumulator: over ``k_max`` columns, or over one quantisation group
    (``qgroup``: ``|acc_s|``, ``|Q_s @ x_s|`` and ``|v|`` all stay within it)."""
    k = qgroup(cfg) or cfg.k_max
    return ((1 << weight_bits_max(cfg)) - 1) * act_bound(cfg) * k


def acc_width(cfg) -> int:
    """Signed width of the row accumulator (and of the unscaled ``y`` without ``qgroup``)."""
    return signed_width(-partial_bound(cfg), partial_bound(cfg))


def qsum_width(cfg) -> int:
    """Signed width of one quantisation group's activation sum."""
    bound = act_bound(cfg) * qgroup(cfg)
    return signed_width(-bound, bound)


def scale_bits(cfg) -> int:
    """Width of the unsigned per-row output scale (0: no scales)."""
    return cfg.scale_bits


def batch(cfg) -> int:
    """Activation vectors sharing each weight beat (1: plain GEMV)."""
    return cfg.batch


def out_width(cfg) -> int:
    """Signed width of a result on ``y``: ``|y * s| <= acc_bound * (2**scale_bits - 1)``, so
    the scaled product is exact (no rounding, no saturation)."""
    if qgroup(cfg):
        bound = acc_bound(cfg) * ((1 << qscale_bits(cfg)) - 1)
        return signed_width(-bound, bound)
    if not scale_bits(cfg):
        return acc_width(cfg)
    bound = acc_bound(cfg) * ((1 << scale_bits(cfg)) - 1)
    return signed_width(-bound, bound)


def sum_width(cfg) -> int:
    """Signed width of ``sum(x)``."""
    bound = act_bound(cfg) * cfg.k_max
    return signed_width(-bound, bound)
