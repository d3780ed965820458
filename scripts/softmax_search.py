"""Worst-case search of the softmax unit's error over structured rows (issue 14, item 9).

Random rows rarely hit the rows where the error peaks (the probability of a dominant element,
p ~ 0.97, at one particular gap). :func:`search` walks structured families instead, then
hill-climbs from the worst rows it found:

* **one dominant element over a flat floor**, every gap the input format allows, every row
  length 1..n_max (a length-1 row is the lone 1.0);
* **k equal maxima over a floor** (k = 2, 3 and a grid of larger k: *two-level rows*, k at a
  high level and n - k at a low one), every gap, every length;
* **flat rows** (all equal) of every length;
* **refinement**: seeded random perturbations of the worst rows (one element moved by a few
  LSBs or to a random code, an element added or dropped), kept when the error does not drop.

Row buffer (``max_mode: buffer``): the output depends only on the distances to the row max,
and equal inputs give equal outputs in any order, so a family member is fixed by its (length,
k, gap): the screen evaluates all of them at once from the golden model's own vectorised steps
(``exponentials``, the reciprocal, ``_scale``) and the float softmax in closed form.

Online max (``max_mode: online``): the absolute level and the order matter (the running max
rises when the dominant element comes last), and the golden model runs per element in Python
(about 10 us per element), so the grid is restricted: the dominant level takes every code of
two windows each spanning a full base-2 unit of the running max (at the top of the range,
where every gap is possible, and just above 0), every gap from it, lengths 1..8 and a
geometric grid up to n_max, the dominant (or the k maxima) first / middle / last.

Every reported row is re-run through ``golden.model`` and ``golden.row_metrics``: the figures
are the golden model's (= the RTL's), not the screen's. Masking is not searched (a masked
element leaves the row exactly as the shorter row without it).

    python scripts/softmax_search.py hw/softmax_q5_2_u8_online.yaml
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

import numpy as np

from lowbit.golden_models import softmax as golden

SEED = 14
KEYS = ("max_err_unsaturated", "max_err")
#: README's bound on the searched worst case (p < 1 error, LSB) over the softmax designs in hw/,
#: per max mode; README quotes each as ``f"{BOUND_LSB[mode]:.2f} LSB"`` (tests/test_softmax_search.py)
BOUND_LSB = {"buffer": 0.71, "online": 0.77}


@dataclass(frozen=True)
class Found:
    """One searched row with the golden model's metrics of it."""

    x: tuple            # input codes
    metrics: dict       # golden.row_metrics of golden.model's output
    family: str         # which family (or refinement) produced it
    detail: str         # length, gap, position, ...
    p: dict             # key -> float softmax of the element attaining that error
    params: tuple = ()  # online families: (k, n, max level, floor level, position)

    def error(self, key: str = "max_err_unsaturated") -> float:
        return self.metrics[key]

    def describe(self, key: str = "max_err_unsaturated") -> str:
        return f"{self.family}: {self.detail}; worst element p = {self.p[key]:.4f}"


@dataclass
class SearchResult:
    worst: dict = field(default_factory=dict)   # key -> list[Found], worst first
    candidates: int = 0                          # rows screened
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def top(self, key: str = "max_err_unsaturated") -> Found:
        return self.worst[key][0]


# --------------------------------------------------------------------------- evaluation


def evaluate(cfg, x, family: str = "", detail: str = "") -> Found:
    """The golden model's output of row ``x`` and its metrics (the figure every report uses)."""
    x = np.asarray(x, dtype=np.int64)
    out = golden.model(cfg, [x])[0]
    metrics = golden.row_metrics(cfg, x, out)
    ref = golden.softmax_float(cfg.input, x)
    err = np.abs(out - ref * 2.0 ** cfg.output.frac_bits)
    p = {"max_err": float(ref[int(np.argmax(err))])}
    err[ref * 2.0 ** cfg.output.frac_bits > cfg.output.max_int] = -1.0
    p["max_err_unsaturated"] = float(ref[int(np.argmax(err))])
    return Found(tuple(int(v) for v in x), metrics, family, detail, p)


def _reciprocals(c, total: np.ndarray) -> np.ndarray:
    """``golden.reciprocal`` of many sums at once (spot-checked against it below)."""
    divisor = total >> c.divisor_shift
    quotient = (1 << c.numerator_log2) // np.maximum(divisor, 1)
    quotient = np.where(divisor == 0, (1 << c.qb) - 1, quotient)
    for s in np.unique(total)[:: max(1, len(np.unique(total)) // 16)]:
        assert quotient[total == s][0] == golden.reciprocal(c, int(s)), "screen != golden.reciprocal"
    return quotient


def _screen_two_level(cfg, c, n, k, gap, e_gap):
    """Errors of buffer-mode rows of ``k`` maxima and ``n - k`` elements ``gap`` LSBs lower
    (arrays, one row each): (max_err, max_err_unsaturated, p of the worst element)."""
    scale, top = 2.0 ** cfg.output.frac_bits, cfg.output.max_int
    e0 = int(e_gap[0])
    low = np.where(n > k, e_gap[gap], 0)
    r = _reciprocals(c, k * e0 + (n - k) * low)
    p_hi = golden._scale(c, np.full(len(n), e0, dtype=np.int64), r)
    p_lo = golden._scale(c, low, r)
    w = np.exp(-gap * cfg.input.lsb)
    ref_hi = 1.0 / (k + (n - k) * w)
    ref_lo = w * ref_hi
    err_hi = np.abs(p_hi - ref_hi * scale)
    err_lo = np.where(n > k, np.abs(p_lo - ref_lo * scale), 0.0)
    full = np.maximum(err_hi, err_lo)
    un_hi = np.where(ref_hi * scale <= top, err_hi, 0.0)
    un_lo = np.where(ref_lo * scale <= top, err_lo, 0.0)
    unsat = np.maximum(un_hi, un_lo)
    return full, unsat, np.where(un_hi >= un_lo, ref_hi, ref_lo)


def _k_grid(n_max: int, full: bool) -> list[int]:
    if full:
        return list(range(1, n_max + 1))
    grid = {1, 2, 3, n_max}
    k = 4
    while k < n_max:
        grid |= {k, k + k // 2}
        k *= 2
    return sorted(v for v in grid if v <= n_max)


def _buffer_families(cfg, c, keep: int, result: SearchResult) -> list[Found]:
    fmt = cfg.input
    span = fmt.max_int - fmt.min_int
    e_gap = golden.exponentials(c, np.arange(span + 1))
    full_k = cfg.n_max * cfg.n_max // 2 * span <= 3_000_000
    ks = _k_grid(cfg.n_max, full_k)
    result.notes.append(f"buffer: every gap 1..{span}, every length 1..{cfg.n_max}, "
                        f"k maxima for k in {'1..n - 1' if full_k else ks}, flat rows (k = n)")
    rows = []  # (n, k, gap) with k <= n; k == n: a flat row (gap unused)
    for n in range(1, cfg.n_max + 1):
        for k in ks:
            if k < n:
                rows.append(np.stack(np.broadcast_arrays(n, k, np.arange(1, span + 1)), 1))
        rows.append(np.array([[n, n, 0]]))
    grid = np.concatenate(rows)
    result.candidates += len(grid)
    best = []
    for start in range(0, len(grid), 1 << 20):
        n, k, gap = grid[start:start + (1 << 20)].T
        full, unsat, _ = _screen_two_level(cfg, c, n, k, gap, e_gap)
        for score in (unsat, full):
            for i in np.argsort(score)[::-1][:keep]:
                best.append((float(score[i]), int(n[i]), int(k[i]), int(gap[i])))
    found = []
    for _, n, k, gap in sorted(set(best), reverse=True)[: 4 * keep]:
        hi = fmt.max_int
        x = [hi] * k + [hi - gap] * (n - k)
        found.append(evaluate(cfg, x, *_family(cfg, n, k, gap, "first")))
    return found


def _family(cfg, n: int, k: int, gap: int, where: str) -> tuple[str, str]:
    lsb = cfg.input.lsb
    if k == n:
        return "flat row", f"n = {n}"
    name = "one dominant over a floor" if k == 1 else f"{k} equal maxima over a floor"
    return name, f"n = {n}, gap {gap} LSB ({gap * lsb:g}), {'dominant' if k == 1 else 'maxima'} {where}"


def _online_lengths(n_max: int) -> list[int]:
    lengths = set(range(1, min(8, n_max) + 1)) | {n_max - 1, n_max}
    n = 8
    while n < n_max:
        lengths |= {n, n + n // 2}
        n *= 2
    return sorted(v for v in lengths if 1 <= v <= n_max)


def _arrange(k: int, n: int, hi: int, lo: int, where: str) -> list[int]:
    if where == "first":
        return [hi] * k + [lo] * (n - k)
    if where == "last":
        return [lo] * (n - k) + [hi] * k
    before = (n - k) // 2
    return [lo] * before + [hi] * k + [lo] * (n - k - before)


def _online_families(cfg, c, keep: int, result: SearchResult) -> list[Found]:
    fmt = cfg.input
    window = math.ceil((1 << fmt.frac_bits) * math.log(2)) + 1  # one base-2 unit of the max
    levels = sorted({*range(fmt.max_int - window + 1, fmt.max_int + 1), *range(0, window)})
    lengths = _online_lengths(cfg.n_max)
    ks = [k for k in _k_grid(cfg.n_max, False) if k < cfg.n_max]
    result.notes.append(f"online: dominant levels {levels}, every gap down to {fmt.min_int}, lengths "
                        f"{lengths}, k maxima for k in {ks}, first / middle / last; flat rows of "
                        f"every length at those levels")
    scored = []

    def run(x, family, detail, params=()):
        f = evaluate(cfg, x, family, detail)
        result.candidates += 1
        scored.append(Found(f.x, f.metrics, f.family, f.detail, f.p, params))

    for hi in levels:
        for n in range(1, cfg.n_max + 1):
            run([hi] * n, "flat row", f"n = {n} at {hi * fmt.lsb:g}")
        for lo in range(fmt.min_int, hi):
            for n in lengths:
                for k in ks:
                    if k >= n or (k > 3 and lo != hi - 1 and (hi - lo) % 4):
                        continue  # larger k: every 4th gap
                    for where in ("first", "middle", "last") if n - k > 1 else ("first", "last"):
                        name, detail = _family(cfg, n, k, hi - lo, where)
                        run(_arrange(k, n, hi, lo, where), name, f"{detail}, max at {hi * fmt.lsb:g}",
                            (k, n, hi, lo, where))
        # keep memory flat: only the worst survive each level
        scored[:] = _worst(scored, keep * 4)
    # around the worst few: every length at their (level, gap, k, position), every level at
    # their (length, gap, k, position)
    seeds = [f for f in sorted(scored, key=lambda f: f.error(), reverse=True) if f.params][:3]
    for k, n, hi, lo, where in {f.params for f in seeds}:
        gap = hi - lo
        for m in range(k + 1, cfg.n_max + 1):
            name, detail = _family(cfg, m, k, gap, where)
            run(_arrange(k, m, hi, lo, where), name, f"{detail}, max at {hi * fmt.lsb:g}", (k, m, hi, lo, where))
        for h in range(fmt.min_int + gap, fmt.max_int + 1):
            name, detail = _family(cfg, n, k, gap, where)
            run(_arrange(k, n, h, h - gap, where), name, f"{detail}, max at {h * fmt.lsb:g}",
                (k, n, h, h - gap, where))
    result.notes.append("online, around the 3 worst: every length and every level of the max")
    return _worst(scored, keep * 4)


def _worst(found: list[Found], count: int) -> list[Found]:
    out = []
    for key in KEYS:
        out += sorted(found, key=lambda f: f.error(key), reverse=True)[:count]
    seen, unique = set(), []
    for f in out:
        if f.x not in seen:
            seen.add(f.x)
            unique.append(f)
    return unique


def refine(cfg, start: Found, key: str, steps: int, rng) -> Found:
    """Hill-climb from ``start``: random moves of one element (by 1..2**f LSBs or to a random
    code), or an element added / dropped; a move is kept when ``key`` does not drop."""
    fmt, best = cfg.input, start
    for _ in range(steps):
        x = list(best.x)
        move = rng.integers(0, 10)
        i = int(rng.integers(0, len(x)))
        if move < 6:
            x[i] += int(rng.choice([-1, 1]) * rng.integers(1, (1 << fmt.frac_bits) + 1))
        elif move < 8:
            x[i] = int(rng.integers(fmt.min_int, fmt.max_int + 1))
        elif move == 8 and len(x) < cfg.n_max:
            x.insert(int(rng.integers(0, len(x) + 1)), x[int(rng.integers(0, len(x)))])
        elif len(x) > 1:
            del x[i]
        x = [min(max(v, fmt.min_int), fmt.max_int) for v in x]
        trial = evaluate(cfg, x, "refined", "")
        if trial.error(key) >= best.error(key):
            best = trial
    if best.x == start.x:
        return start
    return Found(best.x, best.metrics, f"refined from {start.family}", f"{start.detail} -> {row_text(cfg, best.x)}",
                 best.p)


def row_text(cfg, x, limit: int = 10) -> str:
    """Row as ``value x count`` runs (input values, not codes)."""
    runs = []
    for v in x:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    text = [f"{v * cfg.input.lsb:g}" + (f" x{n}" if n > 1 else "") for v, n in runs]
    if len(text) > limit:
        text = text[:limit - 2] + [f"... {len(text) - limit + 1} runs ...", text[-1]]
    return f"n = {len(x)}: [{', '.join(text)}]"


def search(cfg, keep: int = 6, refine_starts: int = 3, refine_steps: int | None = None,
           seed: int = SEED, log=None) -> SearchResult:
    """Worst rows of softmax design ``cfg`` over the structured families and a refinement;
    ``result.worst[key]`` lists the worst rows by ``key`` (``max_err_unsaturated``: p < 1;
    ``max_err``: counting saturated 1.0s), worst first, with the golden model's metrics."""
    t0 = time.perf_counter()
    c = golden.constants_of(cfg)
    result = SearchResult()
    found = (_online_families if c.online else _buffer_families)(cfg, c, keep, result)
    rng = np.random.default_rng(seed)
    steps = refine_steps if refine_steps is not None else (300 if c.online else 1500)
    result.notes.append(f"refinement (p < 1 error): {steps} steps from each of the {refine_starts} "
                        f"worst rows, seed {seed}")
    for key in KEYS:  # max_err_unsaturated first: its refined rows count for max_err too
        ranked = sorted(found, key=lambda f: f.error(key), reverse=True)
        refined = []
        if key == "max_err_unsaturated":  # max_err's excess is the saturated 1.0 (<= 1 LSB)
            refined = [refine(cfg, f, key, steps, rng) for f in ranked[:refine_starts]]
            found = found + refined
        result.candidates += steps * len(refined)
        result.worst[key] = sorted(_worst(ranked + refined, keep), key=lambda f: f.error(key), reverse=True)
        if log:
            log(f"{cfg.name}: worst {key} {result.worst[key][0].error(key):.3f} LSB, "
                f"{result.worst[key][0].describe(key)}")
    result.seconds = time.perf_counter() - t0
    return result


def main() -> None:
    from lowbit.rtl_gen import families

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("designs", nargs="+")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for path in args.designs:
        cfg = families.load_design(path)
        result = search(cfg, seed=args.seed, log=print)
        print("\n".join(f"  {note}" for note in result.notes))
        for key in KEYS:
            for f in result.worst[key][:3]:
                print(f"  {key} {f.error(key):.4f}  {f.describe(key)}  x = {row_text(cfg, f.x)}")
        print(f"  {result.candidates} rows, {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
