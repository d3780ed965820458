"""The block families: each registers its config class here (imported by ``config``).

A family provides a frozen config class (``rtl_gen.config.DesignConfig`` subclass), a
generator component taking that config, and the name of its cocotb test module.
"""
from __future__ import annotations

from .activation_config import ActivationConfig  # noqa: F401
from .bitserial_config import BitserialConfig  # noqa: F401
from .gemv_mult_config import GemvMultConfig  # noqa: F401
from .lutgemv_config import LutGemvConfig  # noqa: F401
from .softmax_config import SoftmaxConfig  # noqa: F401

#: family -> (generator import path, cocotb test module); strings keep the import graph one-way.
GENERATORS = {
    "activation": ("lowbit.rtl_gen.activation:ActivationUnit", "lowbit.testbenches.tb_activation"),
    "bitserial": ("lowbit.rtl_gen.bitserial:BitSerialArray", "lowbit.testbenches.tb_bitserial"),
    "softmax": ("lowbit.rtl_gen.softmax:SoftmaxUnit", "lowbit.testbenches.tb_softmax"),
    "lutgemv": ("lowbit.rtl_gen.lutgemv:LutGemv", "lowbit.testbenches.tb_lutgemv"),
    "gemv_mult": ("lowbit.rtl_gen.gemv_mult:GemvMult", "lowbit.testbenches.tb_lutgemv"),
}
