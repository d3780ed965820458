"""PLL settings for the board tops: iCE40 ``SB_PLL40_PAD`` and ECP5 ``EHXPLLL``.

Contract
--------
:func:`ice40_pll` and :func:`ecp5_pll` search the divider space the way ``icepll`` and
``ecppll`` do and return the :class:`PLLSettings` whose output frequency is the highest one
not above the request (``ValueError`` when none is reachable). Limits (datasheets, as used by
the IceStorm/Trellis tools):

* iCE40 (SIMPLE feedback): ``f_pfd = f_in / (DIVR+1)`` in 10..133 MHz,
  ``f_vco = f_pfd * (DIVF+1)`` in 533..1066 MHz, ``f_out = f_vco / 2**DIVQ`` in 16..275 MHz
  (DIVQ 1..6); ``FILTER_RANGE`` follows ``f_pfd``.
* ECP5 (CLKOP feedback): ``f_pfd = f_in / CLKI_DIV`` in 3.125..400 MHz,
  ``f_out = f_pfd * CLKFB_DIV``, ``f_vco = f_out * CLKOP_DIV`` in 400..800 MHz.

:meth:`PLLSettings.instance` returns the Amaranth ``Instance`` with the generated clock on
``clk_out`` and the lock flag on ``locked``.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Instance

__all__ = ["PLLSettings", "ice40_pll", "ecp5_pll"]


@dataclass(frozen=True)
class PLLSettings:
    family: str
    f_in_hz: float
    f_out_hz: float
    params: dict

    def instance(self, clk_in, clk_out, locked) -> Instance:
        if self.family == "ice40":
            return Instance("SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE",
                            **{f"p_{k}": v for k, v in self.params.items()},
                            i_PACKAGEPIN=clk_in, i_RESETB=1, i_BYPASS=0,
                            o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
        p = self.params
        return Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.f_out_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_DIV"] // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=clk_out, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked)


def _best(candidates, f_in, target, family):
    fitting = [c for c in candidates if c[0] <= target * (1 + 1e-9)]
    if not fitting:
        raise ValueError(f"no {family} PLL setting from {f_in / 1e6:g} MHz reaches "
                         f"{target / 1e6:g} MHz or less")
    f_out, params = max(fitting, key=lambda c: (c[0], -sum(c[1].values())))
    return PLLSettings(family, f_in, f_out, params)


def ice40_pll(f_in_hz: float, target_hz: float) -> PLLSettings:
    candidates = []
    for divr in range(16):
        f_pfd = f_in_hz / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        filter_range = next(i for i, limit in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12),
                                                        start=1) if f_pfd < limit)
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if 16e6 <= f_out <= 275e6:
                    candidates.append((f_out, dict(DIVR=divr, DIVF=divf, DIVQ=divq,
                                                   FILTER_RANGE=filter_range)))
    return _best(candidates, f_in_hz, target_hz, "ice40")


def ecp5_pll(f_in_hz: float, target_hz: float) -> PLLSettings:
    candidates = []
    for clki_div in range(1, 129):
        f_pfd = f_in_hz / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                if 400e6 <= f_out * clkop_div <= 800e6:
                    candidates.append((f_out, dict(CLKI_DIV=clki_div, CLKFB_DIV=clkfb_div,
                                                   CLKOP_DIV=clkop_div)))
                    break
    return _best(candidates, f_in_hz, target_hz, "ecp5")
