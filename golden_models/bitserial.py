"""Bit-exact models of the bit-serial mixed-precision MAC array (and its bit-parallel baseline).

One *tile* computes ``Y = (W - Z) . A`` with per-group scales, for ``R`` rows of weights,
``C`` activation columns and ``K`` weights per row (``K`` a multiple of the group size ``G``)::

    Y[r, c] = sum_g  S[r, g] * sum_{k in group g} (W[r, k] - Z[r, g]) * A[k, c]

``W`` and ``Z`` are integers of the tile's run-time weight format (``wbits`` bits, two's
complement when ``wsigned``, else unsigned; ternary weights are ``wbits = 2`` signed with
values in {-1, 0, +1}), ``A`` integers of the activation format (``abits``, signed when
``asigned``), ``S`` unsigned scales of ``scale_bits`` bits (1 when the design has no scales),
``Z`` zero points (0 when the design has none). Everything is exact integer arithmetic: no
rounding and, because every register is sized from the bounds in :func:`plan`, no overflow.

How the hardware gets there (:func:`schedule`, :func:`horner_groups`): every group is swept
once per bit-plane step, ``G / L`` chunks of ``L`` lanes per step, one chunk per cycle:

* ``weight_serial``: steps are the weight planes ``i = wbits-1 .. 0`` (MSB first); a chunk's
  partial sum is ``sum_l b_i[l] * a[l]`` with ``b_i = bit i of W xor bit i of Z``, negated when
  plane ``i`` is the sign plane of a signed format xor bit ``i`` of ``Z`` is set (the zero point
  folds into the planes: ``w_i - z_i`` is ``b_i`` or ``-(1 - b_i)``).
* ``both_serial``: steps are the plane pairs ``(i, j)`` in descending diagonals ``s = i + j``
  (``i`` descending inside a diagonal); the partial sum is ``popcount(b_i & a_j)``, negated
  when exactly one of {weight sign plane xor ``z_i``, activation sign plane} holds (BISMO).
* ``parallel`` (the baseline): one step, ``sum_l (W - Z)[l] * A[l]`` with real multipliers.

A group accumulator follows Horner's rule: ``acc = psum`` on the group's first cycle,
``acc = 2 * acc + psum`` on the first chunk of a new plane (diagonal), ``acc += psum``
otherwise. The finished group value is multiplied by its scale and added to the tile total.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixedpoint import signed_width

MODES = ("weight_serial", "both_serial", "parallel")
#: Results are computed in int64; wider designs are rejected.
MAX_RESULT_BITS = 62


@dataclass(frozen=True)
class Plan:
    """Widths and schedule constants derived from a design point (every field an int)."""

    chunks: int            # G / L: cycles per step and group
    group_bound: int       # max |group value| (and of every Horner intermediate)
    acc_bits: int          # signed group accumulator width
    result_bits: int       # signed tile total width
    rescalers: int         # P: shared scale multipliers
    entries_per_rescaler: int  # m: cycles one rescale walk takes


def plan(cfg) -> Plan:
    """Sizes for ``cfg`` (a ``BitserialConfig`` or anything with the same fields)."""
    chunks = cfg.group_size // cfg.lanes
    wmax = (1 << cfg.wbits_max) - 1          # |W - Z| and |W| for any run-time format
    if cfg.mode == "both_serial":
        lane = wmax * ((1 << cfg.abits) - 1)  # any signed subset of 2^(i+j) terms
    else:
        amax = (1 << (cfg.abits - 1)) if cfg.asigned else (1 << cfg.abits) - 1
        lane = wmax * amax
    group_bound = cfg.group_size * lane
    smax = (1 << cfg.scale_bits) - 1 if cfg.scale_bits else 1
    result_bound = (cfg.k_max // cfg.group_size) * smax * group_bound
    entries = cfg.rows * cfg.cols
    # A walk of m entries and the copy of a tile's totals end m + 3 cycles after its
    # hand-off; at full rate a group lasts at least `chunks` cycles, so m <= chunks - 3
    # never stalls the array.
    rescalers = -(-entries // max(1, chunks - 3))
    m = -(-entries // rescalers)
    return Plan(chunks=chunks, group_bound=group_bound,
                acc_bits=signed_width(-group_bound, group_bound),
                result_bits=signed_width(-result_bound, result_bound),
                rescalers=rescalers, entries_per_rescaler=m)


def clamp_precision(cfg, wbits: int, abits: int | None = None) -> tuple[int, int]:
    """Run-time precisions as the hardware uses them: clamped into 1..max."""
    wbits = min(max(int(wbits), 1), cfg.wbits_max)
    abits = cfg.abits if abits is None or cfg.mode != "both_serial" else min(max(int(abits), 1), cfg.abits)
    return wbits, abits


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def schedule(mode: str, wbits: int, abits: int) -> list[tuple[int, int]]:
    """The bit-plane steps of one group, in order: ``(weight plane, activation plane)``.

    ``weight_serial`` uses activation plane 0 as a placeholder; ``parallel`` has one step.
    """
    if mode == "parallel":
        return [(0, 0)]
    if mode == "weight_serial":
        return [(i, 0) for i in range(wbits - 1, -1, -1)]
    steps = []
    for s in range(wbits + abits - 2, -1, -1):
        for i in range(min(s, wbits - 1), max(0, s - abits + 1) - 1, -1):
            steps.append((i, s - i))
    return steps


@dataclass(frozen=True)
class Tile:
    """One tile's operands and run-time precision (integer numpy arrays, values not codes).

    weights (R, K), acts (K, C), scales (R, K/G) unsigned, zeros (R, K/G) in the weight format.
    """

    weights: np.ndarray
    acts: np.ndarray
    scales: np.ndarray
    zeros: np.ndarray
    wbits: int
    wsigned: bool
    abits: int


def check_tile(cfg, tile: Tile) -> None:
    """Raise ValueError unless ``tile`` fits ``cfg`` (shapes, K, value ranges)."""
    wbits, abits = clamp_precision(cfg, tile.wbits, tile.abits)
    rows, k = tile.weights.shape
    groups = k // cfg.group_size
    problems = []
    if rows != cfg.rows or tile.acts.shape != (k, cfg.cols):
        problems.append(f"shapes {tile.weights.shape} x {tile.acts.shape} do not fit "
                        f"{cfg.rows} rows x {cfg.cols} columns")
    if k == 0 or k % cfg.group_size or k > cfg.k_max:
        problems.append(f"K = {k} must be a multiple of {cfg.group_size} up to {cfg.k_max}")
    if tile.scales.shape != (rows, groups) or tile.zeros.shape != (rows, groups):
        problems.append(f"scales/zeros must have shape {(rows, groups)}")
    for name, values, (lo, hi) in (
            ("weights", tile.weights, value_range(wbits, tile.wsigned)),
            ("zeros", tile.zeros, value_range(wbits, tile.wsigned) if cfg.zero_point else (0, 0)),
            ("acts", tile.acts, value_range(abits, cfg.asigned)),
            ("scales", tile.scales, (0, (1 << cfg.scale_bits) - 1) if cfg.scale_bits else (1, 1))):
        if values.size and (values.min() < lo or values.max() > hi):
            problems.append(f"{name} outside {lo}..{hi}")
    if problems:
        raise ValueError("; ".join(problems))


def model(cfg, tile: Tile) -> np.ndarray:
    """The tile result ``Y`` (R, C) as int64: the formula in the module docstring."""
    check_tile(cfg, tile)
    g = cfg.group_size
    w = tile.weights.astype(np.int64) - np.repeat(tile.zeros.astype(np.int64), g, axis=1)
    groups = w.reshape(cfg.rows, -1, g)                       # (R, groups, G)
    acts = tile.acts.astype(np.int64).reshape(-1, g, cfg.cols)  # (groups, G, C)
    group_values = np.einsum("rgk,gkc->rgc", groups, acts)
    return np.einsum("rg,rgc->rc", tile.scales.astype(np.int64), group_values)


def bit_plane(values: np.ndarray, plane: int) -> np.ndarray:
    """Bit ``plane`` of the two's-complement codes of ``values`` (0/1 int64)."""
    return (np.asarray(values, dtype=np.int64) >> plane) & 1


def horner_groups(cfg, tile: Tile) -> np.ndarray:
    """Group values (R, groups, C) computed cycle by cycle as the RTL does, checking that
    every accumulator value stays within ``plan(cfg).group_bound``."""
    check_tile(cfg, tile)
    wbits, abits = clamp_precision(cfg, tile.wbits, tile.abits)
    p, g, lanes = plan(cfg), cfg.group_size, cfg.lanes
    steps = schedule(cfg.mode, wbits, abits)
    groups = tile.weights.shape[1] // g
    out = np.zeros((cfg.rows, groups, cfg.cols), dtype=np.int64)
    for grp in range(groups):
        z = tile.zeros[:, grp].astype(np.int64)[:, None]                       # (R, 1)
        acc = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
        for n, (i, j) in enumerate(steps):
            for chunk in range(p.chunks):
                k = slice(grp * g + chunk * lanes, grp * g + (chunk + 1) * lanes)
                w, a = tile.weights[:, k].astype(np.int64), tile.acts[k].astype(np.int64)
                if cfg.mode == "parallel":
                    psum = (w - z) @ a
                else:
                    zbit = bit_plane(z, i)                                       # (R, 1)
                    bits = bit_plane(w, i) ^ zbit                                # (R, L)
                    neg = zbit[:, 0] ^ int(tile.wsigned and i == wbits - 1)      # (R,)
                    if cfg.mode == "weight_serial":
                        psum = bits @ a
                    else:
                        psum = bits @ bit_plane(a, j)
                        neg = neg ^ int(cfg.asigned and j == abits - 1)
                    psum = np.where(neg[:, None] == 1, -psum, psum)
                new_diagonal = n > 0 and chunk == 0 and sum(steps[n]) != sum(steps[n - 1])
                if n == 0 and chunk == 0:
                    acc = psum
                elif chunk == 0 and (cfg.mode == "weight_serial" or new_diagonal):
                    acc = 2 * acc + psum
                else:
                    acc = acc + psum
                if np.abs(acc).max() > p.group_bound:
                    raise AssertionError(f"accumulator {np.abs(acc).max()} exceeds the bound "
                                         f"{p.group_bound}")
        out[:, grp] = acc
    return out


def horner_model(cfg, tile: Tile) -> np.ndarray:
    """``model`` computed through :func:`horner_groups` (must equal :func:`model`)."""
    return np.einsum("rg,rgc->rc", tile.scales.astype(np.int64), horner_groups(cfg, tile))


def beats(cfg, tile: Tile) -> dict[str, list]:
    """The tile as the stream beats the RTL consumes, in order (values, not packed bits).

    ``cmd``: one ``dict(wbits, wsigned, abits)``. ``s``: per group ``dict(scale=(R,),
    zero=(R,))``. ``w``: per cycle an (R, L) array: bits of the step's weight plane, or the
    weight values themselves in ``parallel`` mode. ``x``: per cycle ``(data, last)``: a (C, L)
    array of activation values (bit-parallel modes) or of plane-``j`` bits (``both_serial``);
    ``last`` marks the tile's final beat.
    """
    check_tile(cfg, tile)
    wbits, abits = clamp_precision(cfg, tile.wbits, tile.abits)
    g, lanes, chunks = cfg.group_size, cfg.lanes, cfg.group_size // cfg.lanes
    groups = tile.weights.shape[1] // g
    steps = schedule(cfg.mode, wbits, abits)
    out = {"cmd": [dict(wbits=tile.wbits, wsigned=int(tile.wsigned), abits=tile.abits)],
           "s": [], "w": [], "x": []}
    for grp in range(groups):
        out["s"].append(dict(scale=tile.scales[:, grp], zero=tile.zeros[:, grp]))
        for i, j in steps:
            for chunk in range(chunks):
                k = slice(grp * g + chunk * lanes, grp * g + (chunk + 1) * lanes)
                w, a = tile.weights[:, k], tile.acts[k].T
                out["w"].append(w if cfg.mode == "parallel" else bit_plane(w, i))
                out["x"].append((bit_plane(a, j) if cfg.mode == "both_serial" else a, 0))
    out["x"][-1] = (out["x"][-1][0], 1)
    return out


def ideal_cycles(cfg, k: int, wbits: int, abits: int | None = None) -> int:
    """Cycles one tile occupies the array at full rate: ``ceil(K/L)`` chunks per step."""
    wbits, abits = clamp_precision(cfg, wbits, abits)
    return -(-k // cfg.lanes) * len(schedule(cfg.mode, wbits, abits))


def random_tile(cfg, rng: np.random.Generator, k: int, wbits: int, wsigned: bool,
                abits: int | None = None, kind: str = "random") -> Tile:
    """A tile of random (or extreme) operands that fits ``cfg``.

    ``kind``: ``random``; ``extreme`` (weights at their most negative / largest value,
    activations at min or max, zero points and scales at their ends); ``ternary``
    (weights in {-1, 0, 1}; needs ``wbits == 2`` signed).
    """
    wb, ab = clamp_precision(cfg, wbits, abits)
    groups = k // cfg.group_size
    wlo, whi = value_range(wb, wsigned)
    alo, ahi = value_range(ab, cfg.asigned)
    slo, shi = (0, (1 << cfg.scale_bits) - 1) if cfg.scale_bits else (1, 1)
    zlo, zhi = (wlo, whi) if cfg.zero_point else (0, 0)
    shape_w, shape_a, shape_g = (cfg.rows, k), (k, cfg.cols), (cfg.rows, groups)
    if kind == "extreme":
        far = wlo if wsigned else whi
        weights = np.where(rng.random(shape_w) < 0.9, far, rng.integers(wlo, whi + 1, shape_w))
        acts = rng.choice([alo, ahi], shape_a)
        scales = rng.choice([slo, shi], shape_g)
        zeros = rng.choice([zlo, zhi], shape_g)
    else:
        if kind == "ternary":
            if not (wb == 2 and wsigned):
                raise ValueError("ternary tiles are 2-bit signed")
            weights = rng.integers(-1, 2, shape_w)
        else:
            weights = rng.integers(wlo, whi + 1, shape_w)
        acts = rng.integers(alo, ahi + 1, shape_a)
        scales = rng.integers(slo, shi + 1, shape_g)
        zeros = rng.integers(zlo, zhi + 1, shape_g)
    return Tile(weights=weights.astype(np.int64), acts=acts.astype(np.int64),
                scales=scales.astype(np.int64), zeros=zeros.astype(np.int64),
                wbits=wbits, wsigned=bool(wsigned), abits=abits if abits is not None else ab)
