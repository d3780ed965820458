"""The GEMV units under Verilator: every lutgemv / gemv_mult catalogue design against the
golden model (``testbenches.tb_lutgemv``), and proof that the bench catches a broken unit."""
import pytest
from amaranth.back import verilog
from amaranth.hdl import Const, Signal, signed

from lowbit.rtl_gen.catalogue import catalogue
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.generate import generate, write_atomic
from lowbit.rtl_gen.gemv_mult import GemvMult
from lowbit.rtl_gen.lutgemv import LutGemv

from conftest import bench_runner, designs

FAMILIES = ("lutgemv", "gemv_mult")
DESIGNS = designs(*FAMILIES)
_run = bench_runner("lowbit.testbenches.tb_lutgemv")


#: RAM-table points at MiniLM / LLM shapes: long passes, simulated under -m slow
SLOW = {"lutgemv_ram_minilm_k384", "lutgemv_ram_minilm_k1536", "lutgemv_ram_llm_k4096"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n in SLOW else ())
                                  for n in DESIGNS])
def test_design_matches_golden_model_under_verilator(name, tmp_path):
    generated = generate(load_design(catalogue()[name]), tmp_path / "build")
    result = _run(generated, tmp_path)
    assert result.tests == 6 and result.failed == 0


def test_bench_catches_a_lost_negation_carry(tmp_path):
    """A symmetric LUT-GEMV that forgets the +1 of the negated half-table entry must fail."""
    name = next(n for n in DESIGNS if load_design(catalogue()[n]).family == "lutgemv"
                and load_design(catalogue()[n]).symmetric and load_design(catalogue()[n]).tables == "fabric")
    config = load_design(catalogue()[name])
    good = generate(config, tmp_path / "build")

    class Tampered(LutGemv):
        def _rows(self, m, pipe, table_words, weights, plane):
            rows = super()._rows(m, pipe, table_words, weights, plane)
            return [[(value, Const(0, 1)) for value, _ in per_vector] for per_vector in rows]

    write_atomic(good.verilog, verilog.convert(Tampered(config), name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1, testcase="every_precision_random_and_extreme")
    assert result.failed >= 1


def test_bench_catches_a_scale_join_that_does_not_wait(tmp_path):
    """A scaled unit that takes scale beats without a result to pair them with must fail."""
    name = next(n for n in DESIGNS if load_design(catalogue()[n]).scale_bits)
    config = load_design(catalogue()[name])
    good = generate(config, tmp_path / "build")
    base = LutGemv if config.family == "lutgemv" else GemvMult

    class Tampered(base):
        def _scale_stage(self, m, out):
            raw = super()._scale_stage(m, out)
            m.d.comb += self._scale_in.ready.eq(~out.valid | out.ready)  # ignores raw.valid
            return raw

    write_atomic(good.verilog, verilog.convert(Tampered(config), name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1, testcase="every_precision_random_and_extreme")
    assert result.failed >= 1


def _tampered_fails(tmp_path, pick, override, testcase="every_precision_random_and_extreme"):
    """Build the first catalogue design ``pick`` accepts with ``override`` methods; the bench
    (``testcase``) must fail."""
    name = next(n for n in DESIGNS if pick(load_design(catalogue()[n]))
                and getattr(load_design(catalogue()[n]), "tables", "fabric") == "fabric")
    config = load_design(catalogue()[name])
    good = generate(config, tmp_path / "build")
    base = LutGemv if config.family == "lutgemv" else GemvMult
    tampered = type("Tampered", (base,), override)
    write_atomic(good.verilog, verilog.convert(tampered(config), name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1, testcase=testcase)
    assert result.failed >= 1


def test_bench_catches_a_batch_that_reads_vector_0s_table(tmp_path):
    def _rows(self, m, pipe, words, weights, plane):
        return base_rows(self, m, pipe, [words[0]] * len(words), weights, plane)
    base_rows = LutGemv._rows
    _tampered_fails(tmp_path, lambda c: c.family == "lutgemv" and c.batch > 1, {"_rows": _rows})


def test_bench_catches_ignored_group_shifts(tmp_path):
    def _lanes(self, m, vector):
        lanes = LutGemv._lanes(self, m, vector)
        unshifted = [Signal(signed(self.lane_w)) for _ in lanes]
        m.d.comb += [u.eq(self.x.payload.data[vector * self.config.group + i]) for i, u in enumerate(unshifted)]
        return unshifted
    _tampered_fails(tmp_path, lambda c: c.family == "lutgemv" and c.exp_bits, {"_lanes": _lanes})


def test_bench_catches_a_pass_started_under_a_stalled_last_tile(tmp_path):
    """Without the ``~pipe_busy`` guard a pass's offset and precision change while the previous
    pass's last tile waits behind a held ``y``."""
    _tampered_fails(tmp_path, lambda c: c.family == "lutgemv" and not c.ternary,
                    {"_may_start": lambda self, ready, busy: ready}, testcase="back_to_back_short_passes")


def test_bench_catches_x_refused_while_a_buffer_is_free(tmp_path):
    """``x`` refused every other cycle stays within the cycle count's allowance; the
    per-cycle ready check must fail it."""
    def _x_ready(self, m, free):
        toggle = Signal(name="tampered_toggle")
        m.d.sync += toggle.eq(~toggle)
        return free & toggle
    _tampered_fails(tmp_path, lambda c: c.family == "gemv_mult", {"_x_ready": _x_ready})


@pytest.mark.parametrize("family", FAMILIES)
def test_bench_catches_an_unclamped_command(tmp_path, family):
    """A unit that takes ``bits`` and the zero point unclamped must fail the out-of-range test."""
    def _clamped_command(self, m, cmd):
        return cmd.bits, cmd.zero_point
    _tampered_fails(tmp_path, lambda c: c.family == family and not c.ternary,
                    {"_clamped_command": _clamped_command}, testcase="out_of_range_commands")



@pytest.mark.parametrize("family", FAMILIES)
def test_bench_catches_ignored_group_zero_points(tmp_path, family):
    """A group epilogue that drops the group zero point (``c`` of an all-zero Z) must fail."""
    def _group_coef(self, bits, zero):
        return base._group_coef(self, bits, Const(0, len(zero)))
    base = LutGemv if family == "lutgemv" else GemvMult
    _tampered_fails(tmp_path, lambda c: c.family == family and c.qgroup, {"_group_coef": _group_coef})


def test_bench_catches_a_group_join_that_does_not_wait(tmp_path):
    """A group epilogue that takes ``q`` beats while ``y`` is held must fail."""
    from lowbit.rtl_gen.gemv_common import GemvStreamUnit

    def _group_stage(self, m, out):
        raw = GemvStreamUnit._group_stage(self, m, out)
        m.d.comb += self._q_in.ready.eq(raw.valid)  # ignores the epilogue's enable
        return raw
    # one-group passes behind long y stalls: partials arrive while y is held
    _tampered_fails(tmp_path, lambda c: c.family == "gemv_mult" and c.qgroup, {"_group_stage": _group_stage},
                    testcase="back_to_back_short_passes")


def test_bench_catches_a_lookup_tree_that_drops_a_carry(tmp_path):
    """With ``lookups`` > 1 each tree adder takes one negation's +1; dropping the second
    operand's carry must fail."""
    def _rows(self, m, pipe, words, weights, plane):
        rows = LutGemv._rows(self, m, pipe, words, weights, plane)
        return [[(value, Const(0, 1)) for value, _ in per_vector] for per_vector in rows]
    _tampered_fails(tmp_path, lambda c: c.family == "lutgemv" and c.lookups > 1 and c.symmetric,
                    {"_rows": _rows})


def test_bench_catches_a_ram_unit_without_its_same_word_bubble(tmp_path):
    """``tables: ram`` with one row per lane at 1-bit weights: without the idle cycle the
    next beat reads its accumulator word before the previous beat's write lands."""
    from lowbit.rtl_gen.lutgemv_ram import LutGemvRam

    name = next(n for n in DESIGNS if getattr(load_design(catalogue()[n]), "tables", "") == "ram")
    config = load_design(catalogue()[name])
    good = generate(config, tmp_path / "build")
    tampered = type("Tampered", (LutGemvRam,), {"_same_word_next": lambda self, *args: Const(0, 1)})
    write_atomic(good.verilog, verilog.convert(tampered(config), name=config.name, emit_src=False))
    result = _run(good, tmp_path, check=False, seed=1, testcase="every_precision_random_and_extreme")
    assert result.failed >= 1
