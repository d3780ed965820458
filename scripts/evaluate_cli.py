"""The options of ``lowbit evaluate`` (``scripts/cli.py`` adds the subcommand) and the
:class:`~lowbit.scripts.evaluate.Setting` they make; every bad option is one ConfigError line."""
from __future__ import annotations

from lowbit.golden_models import quantize as qz
from lowbit.golden_models import rotation as rot
from lowbit.rtl_gen.config import ConfigError

from lowbit.scripts.cli_errors import positive_int
from lowbit.scripts.evaluate import ROTATION_DESIGNS, Evaluator, Setting, format_result
from lowbit.scripts.evaluate_linear import LINEAR_FAMILIES, act_bits, check_linear, check_scheme, limits_of
from lowbit.scripts.evaluate_model import resolve


def parse_group(text: str):
    if text == "row":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError("<command line>", "--group", f"{text!r}: expected 32, 64, 128 or row") from None


def parse_sites(text: str) -> tuple:
    sites = tuple(s.strip() for s in text.split(",") if s.strip())
    for s in sites:
        if s not in rot.ALL_SITES:
            raise ConfigError("<command line>", "--rotate-sites",
                              f"{s!r}: expected names from {', '.join(rot.ALL_SITES)}")
    return sites


def setting_from_args(args) -> Setting:
    """The :class:`Setting` of ``lowbit evaluate``'s options (one-line ConfigErrors)."""
    linear = resolve(args.linear, args.param, "--linear") if args.linear else None
    if args.param and not linear:
        raise ConfigError("<command line>", "-p", "overrides apply to --linear; none given")
    scheme = None
    if linear is not None:
        check_linear(linear, "--linear")
        scheme = qz.Scheme(bits=args.wbits or limits_of(linear).wbits_max, group=parse_group(args.group),
                           symmetric=not args.zero_point, mse=args.mse, method=args.method,
                           damp=args.damp)
        check_scheme(linear, scheme)
    elif args.wbits or args.zero_point or args.mse or args.method != "rtn" or args.sequential:
        raise ConfigError("<command line>", "--wbits", "weight quantisation needs --linear DESIGN")
    gelu = resolve(args.gelu, None, "--gelu") if args.gelu else None
    softmax = resolve(args.softmax, None, "--softmax") if args.softmax else None
    rotation = tuple(resolve(d.strip(), None, "--rotate") for d in args.rotate.split(",")) \
        if args.rotate else ()
    label = scheme.label(act_bits(linear)) if scheme else "float linear layers"
    label += " seq" if args.sequential else ""
    label += " + rotation" if rotation else ""
    return Setting(label, linear, scheme, gelu, softmax, args.act_scale, rotation,
                   parse_sites(args.rotate_sites), args.sequential)


def add_arguments(p):
    """The options of ``lowbit evaluate``."""
    p.add_argument("--linear", metavar="DESIGN",
                   help=f"design point for every linear layer ({', '.join(LINEAR_FAMILIES)})")
    p.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="override a parameter of the --linear design (e.g. group_size=32)")
    p.add_argument("--wbits", type=positive_int, help="weight bits (default: the design's widest)")
    p.add_argument("--group", default="128", help="quantiser group: 32, 64, 128 or row (default 128)")
    p.add_argument("--zero-point", action="store_true", help="asymmetric weights with zero points")
    p.add_argument("--mse", action="store_true", help="MSE clipping search per group")
    p.add_argument("--method", choices=("rtn", "gptq"), default="rtn", help="weight quantiser")
    p.add_argument("--damp", type=float, default=qz.Scheme(4).damp,
                   help="GPTQ dampening (times the mean diagonal of H; default %(default)s)")
    p.add_argument("--sequential", action="store_true",
                   help="GPTQ / static scales from the quantised model's own inputs, layer by layer")
    p.add_argument("--act-scale", choices=("token", "static"), default="token",
                   help="activation scale per token (dynamic) or per layer from calibration")
    p.add_argument("--rotate", nargs="?", const=",".join(ROTATION_DESIGNS), metavar="DESIGNS",
                   help=f"Hadamard rotation units, comma-separated (default {','.join(ROTATION_DESIGNS)})")
    p.add_argument("--rotate-sites", default=",".join(rot.ONLINE_SITES), metavar="SITES",
                   help=f"sites rotated online (default {','.join(rot.ONLINE_SITES)}; also o)")
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
