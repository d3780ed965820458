"""Accuracy as a sweep axis: a sweep point evaluated on all-MiniLM-L6-v2 in the role its
family has in the model (``evaluate:`` in a sweep file, :mod:`lowbit.rtl_gen.sweep_spec`).

Roles (:func:`role_of`): ``bitserial``, ``lutgemv`` and ``gemv_mult`` points run every
linear layer; an ``activation`` point computing GELU runs the GELU; a ``softmax`` point the
attention softmax; a ``hadamard`` point rotates online the inputs whose width its length
divides (Q/K/V/FFN1 read 384, FFN2 1536; with ``rotate: true`` on a linear point the default
units of ``lowbit evaluate --rotate``). Any other point (SiLU, which MiniLM does not use; a
rotation length dividing neither width) has no role: its accuracy is ``n/a`` with the reason,
never a number.

Options (the mapping's keys, ``lowbit evaluate``'s): ``bits`` (default the design's widest),
``group`` (32/64/128 or ``row``; default the unit's own group: bit-serial ``group_size`` if it
is one of them, LUT-GEMV ``qgroup``, else per row), ``zero_point`` (default: when the unit
holds them), ``mse``, ``method`` (rtn/gptq), ``damp``, ``act_scale``, ``sequential``,
``rotate``; ``linear`` (a design in hw/) puts that design's linear layers under a GELU,
softmax or rotation point, so its cost shows on top of them; ``layers`` / ``limit``
truncate the model (tests). A scheme the design cannot hold is the point's failure, in one
line. One :class:`~lowbit.scripts.evaluate.Evaluator` (float model, calibration) is kept
per worker process and truncation.
"""
from __future__ import annotations

from lowbit.golden_models import quantize as qz
from lowbit.golden_models import rotation as rot
from lowbit.rtl_gen.config import ConfigError

from lowbit.scripts import evaluate as ev
from lowbit.scripts.evaluate_linear import LINEAR_FAMILIES, act_bits, check_scheme, limits_of
from lowbit.scripts.sweep_results import ACCURACY_KEYS

_EVALUATORS: dict = {}
#: the input width of each online site of MiniLM (hidden 384, FFN 1536)
SITE_WIDTHS = {"q": 384, "k": 384, "v": 384, "ffn1": 384, "ffn2": 1536}


def role_of(config) -> tuple[str | None, str]:
    """(role in the model, or None; why not)."""
    if config.family in LINEAR_FAMILIES:
        return "linear", ""
    if config.family == "activation":
        return ("gelu", "") if config.function == "gelu" else (
            None, f"{config.function} is not an operator of all-MiniLM-L6-v2 (it uses GELU)")
    if config.family == "softmax":
        return "softmax", ""
    if config.family == "hadamard":
        if rotation_sites(config):
            return "rotation", ""
        return None, (f"length {config.length} divides neither of MiniLM's widths "
                      f"{sorted(set(SITE_WIDTHS.values()))}")
    return None, f"the {config.family} family has no operator in all-MiniLM-L6-v2"


def rotation_sites(config) -> tuple:
    return tuple(s for s, width in SITE_WIDTHS.items() if width % config.length == 0)


def evaluator(layers: int | None, limit: int | None) -> ev.Evaluator:
    key = (layers, limit)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = ev.Evaluator(layers=layers, limit=limit)
    return _EVALUATORS[key]


def default_group(cfg) -> int | None:
    limits = limits_of(cfg)
    if not limits.scale_bits:
        return None
    return limits.group_size if limits.group_size in qz.GROUP_SIZES else 128


def scheme_of(cfg, options: dict) -> qz.Scheme:
    group = options.get("group", default_group(cfg))
    if group == "row":
        group = None
    elif isinstance(group, str):
        raise ConfigError(cfg.name, "evaluate.group", f"{group!r}: expected 32, 64, 128 or row")
    limits = limits_of(cfg)
    scheme = qz.Scheme(bits=options.get("bits", limits.wbits_max), group=group,
                       symmetric=not options.get("zero_point", limits.zero_point),
                       mse=options.get("mse", False), method=options.get("method", "rtn"),
                       damp=float(options.get("damp", qz.Scheme(4).damp)))
    check_scheme(cfg, scheme)
    return scheme


def setting_of(config, role: str, options: dict) -> ev.Setting:
    """The evaluation :class:`~lowbit.scripts.evaluate.Setting` of a point in its role."""
    linear = config if role == "linear" else (
        ev.resolve(options["linear"], None, "evaluate.linear") if options.get("linear") else None)
    scheme = scheme_of(linear, options) if linear is not None else None
    rotation, sites = (), rot.ONLINE_SITES
    if role == "rotation":
        rotation, sites = (config,), rotation_sites(config)
    elif options.get("rotate"):
        rotation = tuple(ev.resolve(d) for d in ev.ROTATION_DESIGNS)
    label = scheme.label(act_bits(linear)) if scheme else "float linear layers"
    label += f" + {role} {config.name}" if role != "linear" else ""
    label += " + rotation" if rotation and role != "rotation" else ""
    return ev.Setting(label, linear, scheme, config if role == "gelu" else None,
                      config if role == "softmax" else None, options.get("act_scale", "token"),
                      rotation, sites, bool(options.get("sequential", False)))


def evaluate_point(config, options: dict) -> dict:
    """The point's accuracy record: ``status`` ok (figures), or n/a (``reason``)."""
    role, reason = role_of(config)
    if role is None:
        return {"status": "n/a", "reason": reason}
    setting = setting_of(config, role, options)
    result = evaluator(options.get("layers"), options.get("limit")).run(setting)
    saturated = {k: u["saturated"] for k, u in result["units"].items()}
    return {"status": "ok", "role": role, "setting": result["setting"],
            "design_points": result["design_points"], "sentences": result["sentences"],
            "layers": result["layers"], **{k: result[k] for k in ACCURACY_KEYS},
            "saturated": saturated, "seconds": round(result["seconds"], 3),
            "cpu_seconds": round(result["cpu_seconds"], 3)}


