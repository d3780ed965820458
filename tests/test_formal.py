"""Formal stream-protocol proofs (testbenches.formal) for the streaming blocks.

Each proof runs SymbiYosys (yowasp-sby + yices) and takes a few seconds. The broken blocks
below show that every property can fail, each one for the reason it is there.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from amaranth.hdl import Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.golden_models.fixedpoint import QFormat
from lowbit.rtl_gen.activation import ActivationUnit
from lowbit.rtl_gen.families import load_design
from lowbit.rtl_gen.fixed import sample_layout
from lowbit.rtl_gen.pipeline import CreditQueue
from lowbit.testbenches.formal import prove_stream_protocol, stall_pipeline_invariant

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = sample_layout(QFormat.parse("Q3.4"))


FAST = ("gelu_q3_4", "gelu_table_q3_4")
ACTIVATION_DESIGNS = [pytest.param(p.stem, marks=() if p.stem in FAST else pytest.mark.slow)
                      for p in sorted((ROOT / "hw").glob("*.yaml"))
                      if yaml.safe_load(p.read_text()).get("family") == "activation"]


@pytest.mark.parametrize("design", ACTIVATION_DESIGNS)
def test_activation_stream_protocol_proven(design, tmp_path):
    config = load_design(ROOT / "hw" / f"{design}.yaml")
    unit = ActivationUnit(config)
    # the unit holds at most `capacity` beats (its credits); the credit flags count them
    # exactly (the table unit: its valid chain), with no hole in the credit thermometer
    invariant = stall_pipeline_invariant if config.method == "table" else CreditQueue.invariant
    result = prove_stream_protocol(unit, max_in_flight=unit.capacity,
                                   invariant=invariant, workdir=tmp_path)
    print(result.summary())
    assert result.passed, result.summary()
    assert {p.status for p in result.properties.values()} == {"proven", "covered"}
    assert result.properties["conservation"].depth >= 2 * unit.latency  # fill and drain fit in the cover


def test_without_invariant_conservation_is_only_bounded(tmp_path):
    """k-induction cannot see the count inside the pipeline: the result must say BMC."""
    config = load_design(ROOT / "hw" / "gelu_table_q3_4.yaml")
    result = prove_stream_protocol(lambda: ActivationUnit(config), max_in_flight=1,
                                   workdir=tmp_path, groups=["hold", "conservation"])
    print(result.summary())
    assert result.passed, result.summary()
    assert result.properties["hold"].status == "proven"
    conservation = result.properties["conservation"]
    assert (conservation.status, conservation.method) == ("bounded", "bmc")


class _Register(wiring.Component):
    """A one-beat stream register, correct unless a ``bug`` is named.

    ``bug``: ``"changes_while_stalled"`` (payload counts up while the consumer stalls),
    ``"drops_when_stalled"`` (always ready: a beat arriving while full is lost),
    ``"duplicates"`` (valid is not cleared when the beat is taken),
    ``"survives_reset"`` (reset freezes valid instead of clearing it, so a beat cancelled by a
    reset mid-stream still comes out; harmless at power-up, where valid starts at 0).
    """

    def __init__(self, bug: str | None = None):
        self.bug = bug
        super().__init__({"i": In(stream.Signature(SAMPLE)), "o": Out(stream.Signature(SAMPLE))})

    def elaborate(self, platform):
        m = Module()
        valid = Signal(reset_less=self.bug == "survives_reset")
        advance = ~valid | self.o.ready
        if self.bug == "survives_reset":
            advance &= ~ResetSignal()
        m.d.comb += [self.i.ready.eq(1 if self.bug == "drops_when_stalled" else advance),
                     self.o.valid.eq(valid)]
        with m.If(advance):
            m.d.sync += self.o.payload.eq(self.i.payload)
            if self.bug == "duplicates":
                with m.If(self.i.valid):
                    m.d.sync += valid.eq(1)
            else:
                m.d.sync += valid.eq(self.i.valid)
        with m.Elif(self.bug == "changes_while_stalled"):
            m.d.sync += self.o.payload.data.eq(self.o.payload.data + 1)
        return m


def _register_occupancy(internals, in_flight):
    return in_flight == internals.dut.o.valid


def test_correct_register_is_proven(tmp_path):
    result = prove_stream_protocol(_Register, max_in_flight=1, invariant=_register_occupancy,
                                   workdir=tmp_path)
    assert result.passed, result.summary()
    assert result.properties["conservation"].status == "proven"


@pytest.mark.parametrize("bug, group, message", [
    ("changes_while_stalled", "hold", "o: stalled beat withdrawn or changed"),
    ("drops_when_stalled", "conservation", "beat lost"),
    ("duplicates", "conservation", "beat duplicated"),
    ("survives_reset", "conservation", "beat duplicated"),
])
def test_checker_fails_on_broken_block(bug, group, message, tmp_path):
    result = prove_stream_protocol(lambda: _Register(bug), max_in_flight=1, workdir=tmp_path,
                                   groups=["hold", "conservation"])
    print(result.summary())
    assert result.failed == [group], result.summary()
    failure = result.properties[group]
    assert failure.status == "failed" and message in failure.message, failure.message
    assert failure.trace is not None and failure.trace.exists()
    assert str(failure.trace) in failure.message  # the message says where to look


def test_reset_only_at_start_hides_the_reset_bug(tmp_path):
    """The mid-stream reset is what exposes ``survives_reset``: the option is honoured."""
    result = prove_stream_protocol(lambda: _Register("survives_reset"), max_in_flight=1,
                                   reset_anywhere=False, workdir=tmp_path, groups=["conservation"])
    assert result.passed, result.summary()


def test_over_stated_capacity_fails_the_cover(tmp_path):
    """A bound the block can never reach is not a tight bound: the cover says so."""
    result = prove_stream_protocol(_Register, max_in_flight=2, workdir=tmp_path, groups=["cover"])
    assert result.failed == ["cover"], result.summary()
    assert "full" in result.properties["cover"].message


def test_second_run_is_served_from_the_proof_cache(tmp_path):
    """Same harness, script and tools: the second run is served from the cache, keeps the
    first run's status and seconds, and its log lands in the new work folder."""
    cache = tmp_path / "cache"
    args = dict(max_in_flight=1, invariant=_register_occupancy, cache=cache)
    first = prove_stream_protocol(_Register, workdir=tmp_path / "one", **args)
    assert first.passed and not any(p.cached for p in first.properties.values()), first.summary()
    second = prove_stream_protocol(_Register, workdir=tmp_path / "two", **args)
    print(second.summary())
    assert all(p.cached for p in second.properties.values()), second.summary()
    for group, prop in second.properties.items():
        assert (prop.status, prop.seconds) == (first.properties[group].status,
                                               round(first.properties[group].seconds, 2))
        assert prop.log.parent == tmp_path / "two" / group and prop.log.is_file()
    assert "cached" in second.summary()


def test_changed_design_is_not_served_from_the_proof_cache(tmp_path):
    """A changed netlist is a new key: the broken register is solved (and fails), not served
    the correct register's pass; its counterexample is copied with a later cached hit."""
    cache = tmp_path / "cache"
    good = prove_stream_protocol(_Register, max_in_flight=1, workdir=tmp_path / "good",
                                 groups=["conservation"], cache=cache)
    assert good.passed, good.summary()
    bad = prove_stream_protocol(lambda: _Register("duplicates"), max_in_flight=1,
                                workdir=tmp_path / "bad", groups=["conservation"], cache=cache)
    prop = bad.properties["conservation"]
    assert (prop.status, prop.cached) == ("failed", False), bad.summary()
    again = prove_stream_protocol(lambda: _Register("duplicates"), max_in_flight=1,
                                  workdir=tmp_path / "again", groups=["conservation"], cache=cache)
    served = again.properties["conservation"]
    assert served.cached and served.status == "failed", again.summary()
    assert served.trace is not None and served.trace.is_file()
    assert str(served.trace) in served.message and str(tmp_path / "bad") not in served.message


def test_cached_timeout_is_reused_only_under_the_same_timeout(tmp_path):
    """A ``timeout``/``partial`` depends on the time given: another timeout solves again; a
    definite answer does not depend on it."""
    from lowbit.testbenches import formal_cache

    cache = tmp_path / "cache"
    log = tmp_path / "sby.log"
    log.write_text("stopped\n")
    record = {"status": "partial", "method": "bmc", "depth": 9, "seconds": 1.0, "message": "",
              "timeout": 60, "folder": str(tmp_path)}
    formal_cache.store(cache, "k", record, log, None)
    assert formal_cache.lookup(cache, "k", 60)["status"] == "partial"
    assert formal_cache.lookup(cache, "k", 300) is None
    formal_cache.store(cache, "k", {**record, "status": "bounded"}, log, None)
    assert formal_cache.lookup(cache, "k", 300)["status"] == "bounded"
    formal_cache.store(cache, "e", {**record, "status": "error"}, log, None)
    assert formal_cache.lookup(cache, "e", 60) is None   # a tool that did not run: not stored


class _PairSum(wiring.Component):
    """Adds pairs of input beats: two input beats per output beat (a K = 2 reduction)."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(SAMPLE)), "o": Out(stream.Signature(SAMPLE))})

    def elaborate(self, platform):
        m = Module()
        half = Signal()  # the first beat of a pair is waiting in `first`
        first = Signal.like(self.i.payload.data)
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(self.i.valid & half)
            with m.If(self.i.valid):
                m.d.sync += half.eq(~half)
                with m.If(half):
                    m.d.sync += [self.o.payload.data.eq(first + self.i.payload.data),
                                 self.o.payload.last.eq(self.i.payload.last)]
                with m.Else():
                    m.d.sync += first.eq(self.i.payload.data)
        return m


def test_ratio_of_input_to_output_beats(tmp_path):
    """``beats={"o": 2}``: each result stands for two input beats; capacity 2 input beats."""
    def occupancy(internals, in_flight):
        (half,) = internals.signals("half")
        return in_flight == half + 2 * internals.dut.o.valid

    result = prove_stream_protocol(_PairSum, beats={"o": 2}, max_in_flight=2, workdir=tmp_path,
                                   invariant=occupancy)
    print(result.summary())
    assert result.passed, result.summary()
    assert result.properties["conservation"].status == "proven"


def test_hadamard_stream_protocol_proven(tmp_path):
    """The Hadamard rotation unit at length 8 (a memory delay line of span 4, register
    stages of spans 2 and 1): its stream rules by k-induction with ``HadamardUnit.invariant``
    (each stage's delay-line count, emission ahead of the next block); the cover fills it to
    its capacity and drains it."""
    from lowbit.rtl_gen.families import parse_design
    from lowbit.rtl_gen.hadamard import HadamardUnit

    config = parse_design({"family": "hadamard", "name": "hadamard_formal",
                           "params": {"length": 8, "width": 3, "shift": 1}}, "<test>")
    unit = HadamardUnit(config)
    # the induction closes at depth 12; the cover needs a fill and a drain (2 capacity + 6)
    proof = prove_stream_protocol(unit, max_in_flight=unit.capacity, invariant=unit.invariant,
                                  workdir=tmp_path / "proof", depth=12,
                                  groups=["hold", "conservation"])
    cover = prove_stream_protocol(lambda: HadamardUnit(config), max_in_flight=unit.capacity,
                                  workdir=tmp_path / "cover", groups=["cover"])
    print(proof.summary(), cover.summary(), sep="\n")
    assert proof.passed and cover.passed, (proof.summary(), cover.summary())
    assert {p.status for p in proof.properties.values()} == {"proven"}
    assert cover.properties["cover"].depth >= 2 * unit.capacity


# ---------------------------------------------------------------- every family, data-driven
# (testbenches.formal_families: each family's declared counts; a new family joins by
# declaring formal_spec on its config class)

def _first_design(family):
    from lowbit.rtl_gen.catalogue import catalogue
    return next((name for name, path in sorted(catalogue().items())
                 if yaml.safe_load(path.read_text()).get("family") == family), None)


def _family_params():
    from lowbit.rtl_gen.families import FAMILIES
    return [pytest.param(f, id=f) for f in sorted(FAMILIES) if _first_design(f)]


FAST_FAMILIES = ("activation", "bitserial")  # their whole plan runs in the default suite


@pytest.mark.parametrize("family", [p for p in _family_params() if p.values[0] not in FAST_FAMILIES])
def test_every_family_holds_stalled_beats(family, tmp_path):
    """``hold`` on every output stream of each family's first catalogue design, by induction
    (the families whose whole plan is slow; the others are proven in full below)."""
    from lowbit.rtl_gen.generate import build_component
    from lowbit.testbenches.formal_families import ports_of

    config = load_design(ROOT / "hw" / f"{_first_design(family)}.yaml")
    ins, outs = ports_of(config)
    result = prove_stream_protocol(lambda: build_component(config), inputs=ins, outputs=outs,
                                   max_in_flight=1, beats={p: 0 for p in ins + outs},
                                   workdir=tmp_path, groups=["hold"], depth=24)
    print(result.summary())
    assert result.properties["hold"].status == "proven", result.summary()


@pytest.mark.parametrize("family", [
    pytest.param(f.values[0], id=f.id, marks=() if f.values[0] in FAST_FAMILIES else pytest.mark.slow)
    for f in _family_params()])
def test_every_family_stream_proofs(family, tmp_path):
    """Every declared count of the family (conservation through its beat ratio and its
    cover), on its proof variant, as ``lowbit verify`` runs them."""
    from lowbit.testbenches.formal_families import formal_plan, prove_design

    config = load_design(ROOT / "hw" / f"{_first_design(family)}.yaml")
    rows = prove_design(config, tmp_path)
    for row in rows:
        print(row)
    assert all(row.ok for row in rows), [r for r in rows if not r.ok]
    counts = [name for name, *_ in formal_plan(config)["counts"]]
    assert counts, f"{family}: no beat count declared"
    assert {r.check for r in rows} == {"hold"} | {f"{g}:{c}" for c in counts
                                                  for g in ("conservation", "cover")}


class _UnguardedActivation(ActivationUnit):
    """A fault planted in the generator: the credit queue counts every valid input beat,
    not only the admitted ones (the ``& queue.admit`` guard dropped), so a beat refused
    while the queue is full still enters the pipeline."""

    def elaborate(self, platform):
        from amaranth.hdl import Module as _Module
        from lowbit.rtl_gen.pipeline import FreePipeline

        m = _Module()
        m.submodules.queue = queue = CreditQueue(sample_layout(self.config.output),
                                                 credits=self.capacity, registered=True)
        m.d.comb += [self.i.ready.eq(queue.admit), queue.accept.eq(self.i.valid)]  # the fault
        pipe = FreePipeline(m, queue.accept)
        result, last = self._datapath(pipe, self.i.payload.data, self.i.payload.last)
        m.d.comb += [queue.w.valid.eq(pipe.valid), queue.w.payload.data.eq(result),
                     queue.w.payload.last.eq(last)]
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        return m


def test_planted_dropped_guard_is_caught_by_the_proof(tmp_path):
    """The proof fails on the generator with the guard dropped, naming the property and
    leaving a trace; the unmodified generator is proven (test above)."""
    config = load_design(ROOT / "hw" / "gelu_q3_4.yaml")
    unit = _UnguardedActivation(config)   # one group: the component itself is elaborated once
    result = prove_stream_protocol(unit, max_in_flight=unit.capacity,
                                   invariant=CreditQueue.invariant,
                                   workdir=tmp_path, groups=["conservation"])
    print(result.summary())
    failure = result.properties["conservation"]
    assert failure.status == "failed", result.summary()
    assert "beat duplicated" in failure.message or "invariant" in failure.message, failure.message
    assert failure.trace is not None and str(failure.trace) in failure.message


def test_refused_proof_variant_is_named():
    """A proof variant the config refuses falls back to the design itself, and says so."""
    from lowbit.testbenches.formal_families import small_variant

    config = load_design(ROOT / "hw" / "lutgemv_g4_n8.yaml")
    variant, label = small_variant(config, {"k_max": 6})   # not a multiple of the group
    assert variant is config and "proof variant refused" in label and "k_max" in label, label
    variant, label = small_variant(config, {"k_max": 8, "rows": 2})
    assert variant is not config and label == "k_max=8, rows=2"

