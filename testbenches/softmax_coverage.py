"""Functional coverage of the softmax bench (``tb_softmax``): the bins it declares, the golden
model's classification of a row into them, directed rows that reach every value bin, and two
passive helpers (beat edges with their ``last`` bit, a gate that holds every row's last
result).

Declared bins (:func:`declared`; only those the config can reach):

* ``row_length``: rows of 1 and of ``n_max`` beats, a row cut at ``n_max`` (no ``last``);
* ``max_position``: the row's strict maximum first / last (cross with the row length, 2 and
  ``n_max``); ``max_parity``: the strict maximum of a row of 3 or more at an even and at an odd
  position (the buffer form's max pass keeps one running maximum per parity, the online
  form one partial sum per parity);
* ``output``: an unmasked probability of 0 and, saturating, the largest code (UQ0.x: a row
  of one element is 1.0) or, in a UQ1.x / UQ2.x format, exactly 1.0;
* ``exp``: an unmasked ``e`` that underflows to 0, and one above 0 whose probability rounds
  to 0;
* ``mask`` (``mask: true``): a masked beat, all masked, all masked but one, the element above
  every unmasked one masked; ``masked_input``: a masked beat among random rows under pressure;
* ``running_max`` (``max_mode: online``): the running base-2 maximum rises after the row's
  first unmasked element (the partial sums and stored ``e`` are rescaled), and rises by
  ``k_max`` or more in one step (everything before it shifts out);
* ``stall``: the output stalled; ``last_stall``: a row's last result held back on ``o``
  (cross with the row length, 1 and ``n_max``) and a ``last`` beat refused on ``i``;
* ``back_to_back``: a row's first beat on the edge after the previous row's last, on ``i``
  and on ``o``;
* ``reset``: a reset with a row partly sent and results in flight.

A bench test declares the points it decides (:func:`softmax_points`) and samples them; the
value points are sampled with :func:`row_bins` from the rows it sent.
"""
from __future__ import annotations

import numpy as np

from lowbit.golden_models import softmax as golden

from .coverage import Coverage
from .handles import reader

def declared(config) -> dict[str, list]:
    """Every point's bins for ``config`` (an empty list: the point does not apply)."""
    n, out = config.n_max, config.output
    lengths = ["two", "n_max"] if n > 2 else ["n_max"]
    return {
        "row_length": ["one", "n_max", "cut_at_n_max"],
        "max_position": [(p, k) for p in ("first", "last") for k in lengths],
        "max_parity": ["even", "odd"] if n >= 3 else [],
        "output": ["zero", "max_code" if out.int_bits == 0 else "one"],
        "exp": ["underflow", "rounds_to_zero"],
        "mask": ["masked_beat", "all_masked", "all_but_one", "max_masked"] if config.mask else [],
        "masked_input": ["masked_beat"] if config.mask else [],
        "running_max": ["rises", "flushes"] if config.max_mode == "online" else [],
        "stall": ["stalled"],
        "last_stall": [("output", "one"), ("output", "n_max"), ("input", "one")],
        "back_to_back": ["input", "output"],
        "reset": ["mid_row", "results_in_flight"],
    }


def softmax_points(config, scope: str, points) -> Coverage:
    """A :class:`Coverage` of ``scope`` declaring the ``points`` that apply to ``config``."""
    bins = declared(config)
    cov = Coverage(scope)
    for name in points:
        if bins[name]:
            cov.point(name, bins[name])
    return cov


def row_exponentials(c, x, mask) -> np.ndarray:
    """Every element's ``e`` as the output pass scales it (online: shifted to the final max)."""
    x = np.asarray(x, dtype=np.int64)
    mask = np.asarray(mask, dtype=bool)
    if c.online:
        return golden.online_pass(c, x, mask)[0]
    live = ~mask
    top = int(x[live].max()) if live.any() else c.input.min_int
    return np.where(live, golden.exponentials(c, np.where(live, top - x, 0)), 0)


def _length_class(n: int, n_max: int) -> str | None:
    return {1: "one", 2: "two", n_max: "n_max"}.get(n)


def row_bins(config, c, x, mask) -> list[tuple[str, object]]:
    """The (point, bin) pairs the golden model says one row of ``x`` (``mask``) reaches."""
    x = [int(v) for v in x]
    mask = [bool(b) for b in mask]
    n, out_fmt = len(x), config.output
    p = golden.row_model(c, x, mask)
    e = row_exponentials(c, x, mask)
    live = [i for i in range(n) if not mask[i]]
    hits = []
    if _length_class(n, config.n_max) in ("one", "n_max"):
        hits.append(("row_length", _length_class(n, config.n_max)))
    if live:
        top = max(x[i] for i in live)
        winners = [i for i in live if x[i] == top]
        if len(winners) == 1 and len(live) == n:
            k = _length_class(n, config.n_max)
            at = winners[0]
            if k in ("two", "n_max") and at in (0, n - 1):
                hits.append(("max_position", ("first" if at == 0 else "last", k)))
            if n >= 3:
                hits.append(("max_parity", "even" if at % 2 == 0 else "odd"))
        if any(mask[i] and x[i] > top for i in range(n)):
            hits.append(("mask", "max_masked"))
    for i in live:
        if p[i] == 0:
            hits.append(("output", "zero"))
        if out_fmt.int_bits == 0 and p[i] == out_fmt.max_int:
            hits.append(("output", "max_code"))
        if out_fmt.int_bits > 0 and p[i] == 1 << out_fmt.frac_bits:
            hits.append(("output", "one"))
        hits.append(("exp", "underflow") if e[i] == 0 else ("exp", "rounds_to_zero") if p[i] == 0
                    else ("exp", "other"))
    if any(mask):
        hits.append(("mask", "masked_beat"))
        if not live:
            hits.append(("mask", "all_masked"))
        elif len(live) == 1 and n > 1:
            hits.append(("mask", "all_but_one"))
    if c.online and live:
        tags = [golden.base2_exponent(c, x[i])[1] for i in live]
        rises = [b - a for a, b in zip(np.maximum.accumulate(tags), tags[1:]) if b > a]
        if rises:
            hits.append(("running_max", "rises"))
        if any(r >= c.k_max for r in rises):
            hits.append(("running_max", "flushes"))
    return hits


def witness_rows(config, c, rng) -> list[tuple[list, list | None]]:
    """Directed rows that reach every value bin :func:`declared` lists (checked by the bench
    through :func:`row_bins`): strict maxima first and last, at even and odd positions,
    underflow, a probability that rounds to 0 from a positive ``e`` (searched on the golden
    model: rows ``[max, max - d]`` and ``[max - d] * (n_max - 1) + [max]`` for growing ``d``),
    a rising running max (online)."""
    fmt, n = config.input, config.n_max
    hi, lo = fmt.max_int, fmt.min_int
    below = [rng.randint(lo, hi - 1) for _ in range(n - 1)]
    rows = [([hi] + below, None), (below + [hi], None), ([hi, lo], None), ([lo, hi], None),
            ([hi, lo, lo], None), ([lo, hi, lo], None), ([hi], None)]
    step = max(1, (1 << fmt.frac_bits) // 4)
    for d in range(1, hi - lo + 1, step):
        found = None
        for x in ([hi, hi - d], [hi - d] * (n - 1) + [hi]):
            if ("exp", "rounds_to_zero") in row_bins(config, c, x, [False] * len(x)):
                found = x
                break
        if found:
            rows.append((found, None))
            break
    if config.max_mode == "online":
        rows.append(([0, 2 << fmt.frac_bits if 2 << fmt.frac_bits <= hi else hi], None))
    return rows


class HoldLast:
    """A ``testbenches.gate.Gate`` condition: pause the consumer whenever the next result to
    leave is a row's last, until it has been presented and refused once, so every row's last
    result is seen stalled whatever the seed. ``ends`` maps the index of each row's last result
    (in the sink's current batch) to the row's length; ``held`` lists the lengths of the rows
    whose last result was held."""

    def __init__(self, bench):
        self.received = bench.sink.received
        self.ends = bench.row_ends
        self.valid = reader(bench.dut.o__valid)
        self.holding = self.done = -1
        self.held: list[int] = []

    def __call__(self) -> bool:
        count = len(self.received)
        if count not in self.ends or count == self.done:
            return False
        if count == self.holding and self.valid():   # refused at this edge: release
            self.done = count
            self.held.append(self.ends[count])
            return False
        self.holding = count
        return True


__all__ = ["declared", "softmax_points", "row_bins", "row_exponentials", "witness_rows",
           "HoldLast"]
