"""Design-point parameters of the LUT-based GEMV unit (``family: lutgemv``), and the
parameters both GEMV families share (:data:`GEMV_PARAMS`)."""
from __future__ import annotations

from dataclasses import dataclass

from lowbit.golden_models import lutgemv as golden

from .config import DesignConfig
from .params import Param, boolean, choice, integer

#: parameters both GEMV families declare (``group``'s range differs: each family has its own)
GEMV_PARAMS = {
    "rows": Param("int", "output rows per beat (N; lutgemv: rows sharing each lookup)", 8, lo=1, hi=64),
    "act_bits": Param("int", "signed activation width", 8, lo=2, hi=8),
    "k_max": Param("int", "the longest vector (a multiple of group)", 256, lo=1, hi=16384),
    "scale_bits": Param("int", "width of unsigned per-row output scales on a `scale` stream "
                               "(0: none)", 0, lo=0, hi=16),
    "batch": Param("int", "activation vectors sharing each weight beat (SAIL-style batching)",
                   1, lo=1, hi=8),
    "exp_bits": Param("int", "width of a per-group activation left shift `x.shift`: block "
                             "exponents within `2**exp_bits - 1` octaves (0: none)", 0, lo=0, hi=3),
    "qgroup": Param("choice", "weights per quantisation group along K: an unsigned scale and a zero "
                              "point per row and group on a `q` stream (GPTQ/RTN; 0: none)",
                    0, choices=(0, 32, 64, 128)),
    "qscale_bits": Param("int", "width of the unsigned per-group scales", 8, lo=1, hi=16,
                         when=("qgroup", (32, 64, 128))),
}


def check_gemv_common(config) -> None:
    """The cross-parameter rules both GEMV families share."""
    k_max, group = config.k_max, config.span  # activations per beat (lutgemv: lookups * group)
    what = "group" if config.span == config.group else f"lookups * group = {group}"
    if k_max % group:
        raise config.error("k_max", f"{k_max} is not a multiple of {what}; "
                                    f"pad the vectors and use e.g. {k_max + group - k_max % group}")
    q = config.qgroup
    if q:
        if q % group or (q // group) & (q // group - 1):
            raise config.error("qgroup", f"{q} is not a power-of-two multiple of {what}")
        if k_max % q:
            raise config.error("k_max", f"{k_max} is not a multiple of qgroup {q}")
        for name in ("scale_bits", "batch", "exp_bits"):
            if getattr(config, name) != GEMV_PARAMS[name].default:
                raise config.error(name, f"not available with qgroup (group scales replace row "
                                         f"scales; batch and exp_bits need qgroup: 0)")


class _GeneratorOfTables:
    """``LutGemvConfig.generator``: the fabric generator, or ``LutGemvRam`` for
    ``tables: ram`` (on the class itself: the fabric one, the family's default)."""

    FABRIC = "lowbit.rtl_gen.lutgemv:LutGemv"
    RAM = "lowbit.rtl_gen.lutgemv_ram:LutGemvRam"

    def __get__(self, obj, cls=None) -> str:
        return self.RAM if obj is not None and obj.tables == "ram" else self.FABRIC


#: what ``tables: ram`` does not build this round (checked in ``LutGemvConfig.check``)
RAM_REFUSED = {"lookups": 1, "ternary": False, "scale_bits": 0, "batch": 1, "exp_bits": 0, "qgroup": 0}


@dataclass(frozen=True)
class LutGemvConfig(DesignConfig):
    """``params`` of ``family: lutgemv``: declared on the fields below (``lowbit params
    lutgemv`` lists them). Ternary tables: weights -1/0/+1 as codes 0/1/2, zero point 1; a
    14-entry table per 3 weights, sign + 4-bit index per triple."""

    family = "lutgemv"
    generator = _GeneratorOfTables()
    bench = "lowbit.testbenches.tb_lutgemv"
    golden_module = "lowbit.golden_models.lutgemv"

    group: int = integer(2, 8, 4, "activations per table (g); 5..8 only with tables: ram")
    tables: str = choice(("fabric", "ram"), "fabric",
                         "where the tables live: fabric (one word muxed per row) or ram (one "
                         "table RAM per lane: its read port is the lookup; accumulators in RAM)")
    rows: int = GEMV_PARAMS["rows"].field()
    lookups: int = integer(1, 8, 1, "table lookups per row per cycle (L), summed by an adder tree "
                                    "before the row accumulator; a beat covers L * group activations")
    bits_max: int = integer(1, 4, 4, "the widest run-time weight precision (bit-serial over planes)")
    act_bits: int = GEMV_PARAMS["act_bits"].field()
    k_max: int = GEMV_PARAMS["k_max"].field()
    symmetric: bool = boolean(True, "store half the table and negate for the complementary index")
    ternary: bool = boolean(False, "ternary-native tables; needs group 3, bits_max 2, symmetric")
    scale_bits: int = GEMV_PARAMS["scale_bits"].field()
    batch: int = GEMV_PARAMS["batch"].field()
    exp_bits: int = GEMV_PARAMS["exp_bits"].field()
    qgroup: int = GEMV_PARAMS["qgroup"].field()
    qscale_bits: int = GEMV_PARAMS["qscale_bits"].field()
    m_max: int = integer(1, 4096, 64, "the longest pass in rows (a multiple of rows; per lane "
                                      "m_max / rows accumulator words)", when=("tables", ("ram",)))

    def check(self) -> None:
        check_gemv_common(self)
        if self.tables == "ram":
            self._check_ram()
        elif self.group > 4:
            raise self.error("group", f"{self.group} needs tables: ram (fabric tables: group 2..4)")
        if self.ternary and (self.group != 3 or self.bits_max != 2 or not self.symmetric):
            raise self.error("ternary", "ternary tables need group: 3, bits_max: 2 and symmetric: true "
                                        "(three weights per 14-entry mirrored table)")

    def _check_ram(self) -> None:
        for name, allowed in RAM_REFUSED.items():
            if getattr(self, name) != allowed:
                raise self.error(name, f"not built with tables: ram this round (allowed: {allowed!r}; "
                                       f"use tables: fabric)")
        if self.m_max % self.rows:
            raise self.error("m_max", f"{self.m_max} is not a multiple of rows ({self.rows}); "
                                      f"use e.g. {self.m_max + self.rows - self.m_max % self.rows}")
        if not self.symmetric and self.group == 8:
            raise self.error("symmetric", "false with group 8 would fill a table RAM with one table "
                                          "(no slot to build the next one in); use symmetric: true")

    @property
    def entries(self) -> int:
        if self.ternary:
            return len(golden.TERNARY_TRIPLES)
        return 1 << (self.group - 1) if self.symmetric else 1 << self.group

    @property
    def span(self) -> int:
        """Activations per ``x`` beat and weight-beat columns (``lookups * group``)."""
        return self.group * self.lookups

    @property
    def peak_macs_per_cycle(self) -> int:
        """MACs per cycle at 1-bit (or ternary) weights; ``bits``-bit weights: divided by ``bits``."""
        return self.rows * self.span * self.batch

    def throughput_per_cycle(self) -> float:
        """At the widest precision (``bits_max`` planes per weight beat; ternary: one)."""
        return self.peak_macs_per_cycle / (1 if self.ternary else self.bits_max)

    def host_vectors(self, rng, count: int) -> list:
        """Host-adapter stimulus and golden results per stream (:mod:`rtl_gen.host_adapters`)."""
        from .host_adapters import gemv_vectors

        return gemv_vectors(self, rng, count)

    def throughput_unit(self) -> str:
        return "MAC/cycle at ternary weights" if self.ternary else f"MAC/cycle at {self.bits_max}-bit weights"
