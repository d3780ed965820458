"""What the stream proofs of each family check: the family table's formal declarations.

``formal_plan(config)`` answers, for any design point, which streams a proof drives and
which beat counts it conserves; ``prove_design(config, workdir)`` runs every proof through
:func:`.formal.prove_stream_protocol` and returns one :class:`ProofRow` per check.

Declarations (data, so a family declares them in its config class without importing this
layer): a family's config may define ``formal_spec(self, component) -> dict`` with

* ``counts``: a list of ``(name, beats, bound, tight)``: ``beats`` maps stream ports to their
  weight per beat, an int or ``"last"`` (the beat counts when its ``last`` bit is set:
  rows, vectors); ports left out weigh 0. ``bound`` is the most units the block may hold
  (``tight``: exactly its capacity, so the cover must reach it; otherwise a stated upper
  bound, and the cover only asks for one unit in flight and a drain back to zero).
* ``depth``: BMC / induction / cover depth in cycles: at least one whole vector or row
  plus the latency, so a bounded proof covers a complete transaction.
* ``invariant`` (optional): ``invariant(internals, in_flight) -> Value`` relating the
  counts to the block's registers, so the conservation closes by k-induction (asserted,
  so proven); without one a count is checked by BMC to ``depth`` (reported ``bounded``).
* ``small`` (optional): parameter overrides giving the proof variant (shorter ``k_max`` /
  ``n_max``) on which the counts are checked; the ``hold`` rule is always proven on the
  design itself.

Families without a declaration use the builtin plans below (activation, softmax, lutgemv,
gemv_mult, bitserial, hadamard); a family with neither gets the ``hold`` proof of every output and
a bounded ``last``-framing count between its first input and first output.

Properties per row: ``hold`` (every output stream; every input stream is assumed to obey
the same rule), ``conservation`` of each count (no beat, row or vector dropped or
duplicated through the declared beat ratio; k-induction with an invariant, else BMC to the
stated depth), ``cover`` (the environment is not contradictory and the block fills and
drains).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from amaranth.hdl import Fragment
from amaranth.lib import wiring

from lowbit.rtl_gen.config import ConfigError
from lowbit.rtl_gen.families import parse_design
from lowbit.rtl_gen.generate import build_component

from .formal import prove_stream_protocol, stall_pipeline_invariant


@dataclass(frozen=True)
class ProofRow:
    """One property of one design: ``check`` (``hold`` or ``conservation:<count>`` /
    ``cover:<count>``), its status (``proven`` | ``bounded`` | ``covered`` | ``failed`` |
    ``timeout`` | ``error``), method, depth, solver seconds, the variant it ran on (``""``:
    the design itself, else the overrides), the message (with the trace path if failed) and
    whether the result was served from the proof cache."""
    check: str
    status: str
    method: str
    depth: int
    seconds: float
    variant: str
    message: str
    cached: bool = False   # served from the proof cache; ``seconds`` of the run that made it

    @property
    def ok(self) -> bool:
        return self.status in ("proven", "bounded", "covered")


def stream_ports(component: wiring.Component) -> tuple[list[str], list[str]]:
    """The component's stream members: (inputs, outputs), in signature order."""
    ins, outs = [], []
    for name, member in component.signature.members.items():
        port = getattr(component, name)
        if member.is_signature and all(hasattr(port, a) for a in ("valid", "ready", "payload")):
            (ins if member.flow == wiring.In else outs).append(name)
    return ins, outs


def ports_of(config) -> tuple[list[str], list[str]]:
    """:func:`stream_ports` of a fresh component of ``config`` (elaborated and dropped)."""
    component = build_component(config)
    try:
        return stream_ports(component)
    finally:
        Fragment.get(component, None)  # inspected only; elaborated so Amaranth does not warn


# ---------------------------------------------------------------- builtin family plans

def _activation(config, unit) -> dict:
    # the credit flags count the beats exactly (table: its valid chain): k-induction closes
    return {"counts": [("beats", {"i": 1, "o": 1}, unit.capacity, True)],
            "depth": 2 * unit.capacity + 6}


def _softmax(config, unit) -> dict:
    from lowbit.rtl_gen.softmax import timing

    t = timing(config)
    elements = t["x_depth"] + t["e_depth"] + t["output_queue"] + t["output_stages"] + 8
    # rows: a row in flight (its i.last in, its o.last not yet out) has at least that last beat
    # in flight, so the element bound bounds the rows too. (The bound rows_in_flight + 4 was
    # below what the unit legally holds: one-beat rows into a stalled output, Amaranth
    # simulator, 24 rows on softmax_q4_4_u1_7_n16 (bound 10).)
    # Proof variant: the smallest formats the generator builds (Q1.1 scores, UQ1.1
    # probabilities, one guard bit: a 4-bit quotient; a 2-entry exp2 table), so the division
    # and the pipelines are as short as they get; the control (row queues, cursors, dividers
    # taking rows in turn, credit queue) and max_mode / mask are the design's own. (With the
    # design's formats at n_max = 2, BMC reached step ~59 of 79 in 300 s.)
    small = {"n_max": 6, "input": "Q1.1", "output": "UQ1.1", "guard_bits": 1, "exp_order": 0,
             "exp_segments": 2}
    # Depth: one whole row of ROW beats in and out: the reset cycle and the input's registered
    # ready (2 steps), the row in (ROW beats, twice over with the row buffer: its first output
    # comes passes ROW + first_output_latency cycles after its first beat), the rest of it out
    # (ROW): its last output moves in the last step. Rows are counted by i.last, but the unit
    # also ends a row at its n_max-th beat (a longer row is cut, that beat's output carries
    # last), which i.last does not mark; so the variant's n_max is 6 > ROW: a cut row's last
    # output comes (passes + 1)(n_max - ROW) >= 8 cycles after the depth, no cut row leaves
    # within it, and the count is exact (cut rows are the bench's: row_length cut_at_n_max).
    row = min(2, config.n_max)
    return {"small": small,
            "counts": [("elements", {"i": 1, "o": 1}, elements, False),
                       ("rows", {"i": "last", "o": "last"}, elements, False)],
            "depth": t["passes"] * row + t["first_output_latency"] + row + 2}


def _gemv_small(config) -> dict:
    span = getattr(config, "span", config.group)
    small = {"k_max": max(2 * span, 32 if config.qgroup else 0), "rows": min(config.rows, 2)}
    if getattr(config, "tables", "fabric") == "ram" and config.group > 4:
        # a g-wide RAM table takes 2**(g-1) + 1 cycles to build: at g = 8 two vectors need
        # ~300 BMC steps, out of reach; the same generator at g = 4 (the variant is named)
        small.update(group=4, k_max=8)
    if config.qgroup:   # the smallest quantisation group: one group per proof vector
        small.update(qgroup=32, qscale_bits=1)
    # data at its narrowest: the stream control (handshakes, framing, plane and group counters)
    # does not depend on the data widths, the solver's cost does (gemv_mult_w4's vectors BMC
    # took 43.6 s at wbits 4 against 7.3 s for gemv_mult_w2 at wbits 2 in the walk)
    params = config.params()
    small["act_bits"] = 2
    if "wbits" in params:
        small["wbits"] = min(config.wbits, 2)
    if "bits_max" in params and not getattr(config, "ternary", False):
        small["bits_max"] = min(config.bits_max, 2)
    if getattr(config, "scale_bits", 0):
        small["scale_bits"] = 1
    if getattr(config, "exp_bits", 0):
        small["exp_bits"] = 1
    return small


def _gemv(config, unit) -> dict:
    span = getattr(config, "span", config.group)
    vector = config.k_max // span
    planes = 1 if getattr(config, "ternary", False) else getattr(config, "bits_max", 1)
    depth = vector + planes * vector + unit.latency + getattr(unit, "restart_cycles", 8) \
        + config.rows + 6
    if getattr(config, "tables", "fabric") == "ram":   # each group's table is built serially
        depth += (config.k_max // config.group) * (unit.entries + 1)
    counts = [("vectors", {"x": "last", "y": "last"}, 8 + span, False),
              ("commands", {"cmd": 1, "y": "last"}, 8 + span, False)]
    if getattr(config, "scale_bits", 0):
        counts.append(("scales", {"scale": 1, "y": 1}, 4 * config.rows + 8, False))
    return {"small": _gemv_small(config), "counts": counts, "depth": depth}


def _bitserial_small(config) -> dict:
    lanes = min(config.lanes, 8)
    group = 4 * lanes
    small = {"lanes": lanes, "group_size": group, "k_max": group, "rows": min(config.rows, 2),
             "wbits_max": min(config.wbits_max, 2)}
    if config.mode == "both_serial":   # a tile is wbits * abits plane pairs per chunk
        small["abits"] = min(config.abits, 2)
    return small


def _bitserial(config, unit) -> dict:
    tile = config.k_max // config.lanes * config.steps
    return {"small": _bitserial_small(config),
            # tiles counted by their command (taken with the tile's last beat), not by x.last:
            # the array honours x.last only at a group's end (K a multiple of group_size), and
            # the proof's producer may frame anywhere, so an x.last count has no bound
            "counts": [("tiles", {"cmd": 1, "y": 1}, unit.latency + 4, False)],
            "depth": tile + unit.latency + 6}


def _hadamard(config, unit) -> dict:
    # one output per input beat, vectors framed by last; a vector in and out after the latency
    latency = unit.latency
    return {"small": {"length": 4},
            "counts": [("elements", {"i": 1, "o": 1}, latency + 2 * config.length + 4, False),
                       ("vectors", {"i": "last", "o": "last"}, latency + 4, False)],
            "depth": 2 * config.length + latency + 4}


def _activation_invariant(config):
    from lowbit.rtl_gen.pipeline import CreditQueue

    return stall_pipeline_invariant if config.method == "table" else CreditQueue.invariant


BUILTIN: dict[str, Callable[[Any, wiring.Component], dict]] = {
    "activation": _activation, "softmax": _softmax, "lutgemv": _gemv, "gemv_mult": _gemv,
    "bitserial": _bitserial, "hadamard": _hadamard}
#: invariants (k-induction) per family: ``config -> invariant(internals, in_flight)``
INVARIANTS: dict[str, Callable] = {"activation": _activation_invariant}


def _generic(config, component) -> dict:
    ins, outs = stream_ports(component)
    latency = getattr(component, "latency", 8) or 8
    return {"counts": [("rows", {ins[0]: "last", outs[0]: "last"}, latency + 4, False)]
            if ins and outs else [], "depth": 2 * latency + 16}


def formal_plan(config, component=None) -> dict:
    """The family's declaration for ``config`` (see the module docstring), normalised:
    ``counts``, ``depth`` and ``small`` always present."""
    component = component if component is not None else build_component(config)
    try:
        if hasattr(config, "formal_spec"):
            plan = dict(config.formal_spec(component))
        else:
            plan = dict(BUILTIN.get(config.family, _generic)(config, component))
    finally:
        Fragment.get(component, None)  # inspected only; elaborated so Amaranth does not warn
    plan.setdefault("small", {})
    plan.setdefault("depth", 24)
    return plan


def small_variant(config, small: dict):
    """``(variant, label)``: ``config`` with the proof overrides (those that change something)
    and their list; ``(config, "")`` without any; a variant the config refuses gives ``config``
    and a label naming the error."""
    params = config.params()
    changes = {k: v for k, v in small.items() if params.get(k) != v}
    if not changes:
        return config, ""
    doc = {"family": config.family, "name": f"{config.name}__formal",
           "params": {**params, **changes}}
    try:
        return parse_design(doc, f"{config.source} (formal variant)"), \
            ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
    except ConfigError as error:   # the design cannot shrink: its counts are checked on
        # itself, and the table says why (a refused variant once sent gemv_mult's proofs to
        # depth 5,151 on the full design, silently)
        return config, f"the design itself (proof variant refused: {error})"


def _weights(beats: dict, ports: list[str]) -> dict:
    def weight(value):
        return (lambda s: s.payload.last) if value == "last" else int(value)

    return {p: weight(beats.get(p, 0)) for p in ports}


def prove_design(config, workdir: Path, *, timeout: float = 300,
                 cache: Path | None = None) -> list[ProofRow]:
    """Every stream proof of ``config`` (the ``hold`` rule on the design, each declared count
    on its proof variant); rows in a fixed order. Solver files under ``workdir``; with
    ``cache`` (a folder) each solver job is served from / stored in the proof cache
    (``testbenches.formal_cache``: designs sharing a proof variant share its jobs)."""
    workdir = Path(workdir)
    rows: list[ProofRow] = []
    component = build_component(config)
    ins, outs = stream_ports(component)
    plan = formal_plan(config, component)

    def row(check, prop, variant):
        rows.append(ProofRow(check, prop.status, prop.method, prop.depth, round(prop.seconds, 2),
                             variant, prop.message, prop.cached))

    hold = prove_stream_protocol(lambda: build_component(config), inputs=ins, outputs=outs,
                                 max_in_flight=1, beats={p: 0 for p in ins + outs},
                                 workdir=workdir / "hold", groups=["hold"],
                                 depth=min(plan["depth"], 24), timeout=timeout, cache=cache)
    row("hold", hold.properties["hold"], "")
    variant, label = small_variant(config, plan["small"])
    vplan = formal_plan(variant) if variant is not config else plan
    invariant = vplan.get("invariant") or INVARIANTS.get(config.family, lambda c: None)(variant)
    for name, beats, bound, tight in vplan["counts"]:
        # a job pair per count: one job checking every count cost more solver time than the
        # jobs one by one (gemv_mult_w2's variant: 10.9 s CPU against 4.3 + 4.4 s)
        result = prove_stream_protocol(
            lambda: build_component(variant), inputs=ins, outputs=outs, max_in_flight=bound,
            beats=_weights(beats, ins + outs), invariant=invariant, tight=tight,
            workdir=workdir / name, groups=["conservation", "cover"], depth=vplan["depth"],
            timeout=timeout, cache=cache)
        for group in ("conservation", "cover"):
            row(f"{group}:{name}", result.properties[group], label)
    return rows


__all__ = ["ProofRow", "formal_plan", "prove_design", "small_variant", "stream_ports", "ports_of",
           "BUILTIN"]
