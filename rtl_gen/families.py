"""The block families (the one table) and loading a design point into its family's config.

A family is a frozen config class (an ``rtl_gen.config.DesignConfig`` subclass, in
``rtl_gen/<family>_config.py``) that declares its parameters and names its generator,
cocotb bench and golden model; adding a family means its new files and one entry below.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .activation_config import ActivationConfig
from .bitserial_config import BitserialConfig
from .config import DesignConfig, _Fields, check_common, read_yaml
from .gemv_mult_config import GemvMultConfig
from .hadamard_config import HadamardConfig
from .lutgemv_config import LutGemvConfig
from .softmax_config import SoftmaxConfig

#: family name -> config class
FAMILIES: dict[str, type[DesignConfig]] = {cls.family: cls for cls in (
    ActivationConfig, BitserialConfig, SoftmaxConfig, LutGemvConfig, GemvMultConfig,
    HadamardConfig)}


def parse_design(doc: Any, source: str) -> DesignConfig:
    """Validate a parsed YAML mapping into its family's config dataclass."""
    cls, params, common = check_common(doc, source, FAMILIES)
    return cls.from_params(_Fields(source, params), **common)


def load_design(path: str | Path) -> DesignConfig:
    """Load and validate one YAML design point."""
    return parse_design(read_yaml(path), str(path))
