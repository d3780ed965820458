"""FP16 / BF16 activations pre-aligned to shared block exponents for the integer GEMV units.

LLM activations arrive in floating point; a LUT-GEMV wants integer table entries. This model
turns each block of ``block`` activations (a multiple of the table group ``g``; ``block = K``
is one exponent per vector) into signed ``act_bits``-bit integer mantissas sharing one
exponent, runs the bit-exact integer GEMV of ``golden_models.lutgemv`` on them, and applies
the exponents at the output. Only the alignment rounds; everything after it is exact.

Decoding (exact): every finite float16 / bfloat16 ``v`` is ``(-1)**s * m * 2**E`` with an
integer significand ``m`` (float16: 11 bits, ``m = 1024 + frac``, ``E = exp - 25``;
subnormal ``m = frac``, ``E = -24``. bfloat16: 8 bits, ``m = 128 + frac``, ``E = exp - 134``;
subnormal ``E = -133``). Inf and NaN are rejected. BF16 inputs are float32 arrays whose
values are bfloat16 numbers (:func:`to_bfloat16` rounds float32 to them, half to even).

Alignment of one block (the narrowing step):
  * the block's top bit position ``P = max(E_i + bitlength(m_i))`` over its non-zero
    elements (an all-zero block gets mantissas 0 and exponent 0);
  * the shared exponent ``S = P - (act_bits - 1)``;
  * each magnitude ``m_i * 2**(E_i - S)`` is rounded to an integer by an arithmetic right
    shift of ``S - E_i`` bits with **round half to even** (a non-positive shift is an exact
    left shift), then **saturated** to ``2**(act_bits-1) - 1`` (only the block maximum can
    round up to ``2**(act_bits-1)``); the sign is applied after: mantissas lie in
    ``[-(2**(a-1) - 1), 2**(a-1) - 1]``, a symmetric subset of the unit's ``signed(act_bits)``.

Output: with integer weights ``Q - z`` the result of row ``r`` is exactly
``sum_j P_rj * 2**S_j`` where ``P_rj`` is the integer GEMV of block ``j``. :func:`block_gemv`
returns it as an integer mantissa and one exponent ``S_min = min_j S_j`` (each block's partial
shifted left by ``S_j - S_min``: exact). With ``block = K`` there is one block and the
existing unit computes the mantissa unchanged: the exponent is applied outside it.

Per-group exponents in hardware (:func:`align_window`, units built with ``exp_bits``): group
exponents are kept within ``2**exp_bits - 1`` octaves below the vector's largest; each group
is sent as mantissas plus a small left shift, which the unit applies exactly before its table
build (``golden_models.lutgemv``), and the one exponent ``S_low`` is applied at the output.
The FP16/BF16 decoder and aligner themselves are not in the RTL (host side).
"""
from __future__ import annotations

import numpy as np

from . import lutgemv

FORMATS = {"float16": (10, 15), "bfloat16": (7, 127)}  # fraction bits, exponent bias


def to_bfloat16(values) -> np.ndarray:
    """float32 values rounded (half to even) to the nearest bfloat16, returned as float32."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype(np.uint32).view(np.float32)


def decode(values, fmt: str):
    """Exact ``(sign, m, E)`` integer arrays with ``value = (-1)**sign * m * 2**E``."""
    frac_bits, bias = FORMATS[fmt]
    if fmt == "float16":
        raw = np.asarray(values, dtype=np.float16).view(np.uint16).astype(np.int64)
        exp_bits = 5
    else:
        raw = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.int64)
        assert not (raw & 0xFFFF).any(), "bfloat16 values expected (see to_bfloat16)"
        raw >>= 16
        exp_bits = 8
    sign = raw >> (frac_bits + exp_bits)
    exp = (raw >> frac_bits) & ((1 << exp_bits) - 1)
    frac = raw & ((1 << frac_bits) - 1)
    assert (exp != (1 << exp_bits) - 1).all(), "Inf or NaN activation"
    normal = exp != 0
    m = np.where(normal, frac | (1 << frac_bits), frac)
    e = np.where(normal, exp, 1) - bias - frac_bits
    return sign, m, e


def top_exponent(m, e) -> int | None:
    """``max(E_i + bitlength(m_i))`` over the non-zero elements (None: all zero)."""
    tops = [int(ei) + int(mi).bit_length() for mi, ei in zip(m, e) if mi]
    return max(tops) if tops else None


def align_to(sign, m, e, shared: int, act_bits: int) -> list[int]:
    """Signed mantissas of ``m * 2**(E - shared)``: round half to even, saturate."""
    limit = (1 << (act_bits - 1)) - 1
    out = []
    for s, mi, ei in zip(sign.tolist(), m.tolist(), e.tolist()):
        shift = shared - ei
        if shift <= 0:
            mag = mi << -shift
        else:
            q, r, half = mi >> shift, mi & ((1 << shift) - 1), 1 << (shift - 1)
            mag = q + int(r > half or (r == half and q & 1))
        mag = min(mag, limit)
        out.append(-mag if s else mag)
    return out


def align_block(sign, m, e, act_bits: int) -> tuple[list[int], int]:
    """One block's signed mantissas and shared exponent (round half to even, saturate)."""
    top = top_exponent(m, e)
    if top is None:
        return [0] * len(m), 0
    shared = top - (act_bits - 1)
    return align_to(sign, m, e, shared, act_bits), shared


def align(values, fmt: str, act_bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Mantissas (K,) and one exponent per block (K/block,)."""
    sign, m, e = decode(values, fmt)
    assert len(m) % block == 0
    mantissas, exponents = [], []
    for j in range(0, len(m), block):
        q, s = align_block(sign[j:j + block], m[j:j + block], e[j:j + block], act_bits)
        mantissas += q
        exponents.append(s)
    return np.array(mantissas, dtype=np.int64), np.array(exponents, dtype=np.int64)


def block_gemv(cfg, codes, zero: int, values, fmt: str, block: int, bits: int):
    """Row results as exact ``(mantissa (object ints), exponent)``: ``y = mantissa * 2**exponent``.

    Each block's integer GEMV is the bit-exact unit model (``lutgemv.model`` on the block's
    columns); partials are combined exactly at the smallest block exponent."""
    assert block % cfg.group == 0
    x, exps = align(values, fmt, cfg.act_bits, block)
    codes = np.asarray(codes, dtype=np.int64)
    low = int(exps.min())
    mantissa = np.zeros(codes.shape[0], dtype=object)
    for j, s in enumerate(exps.tolist()):
        cols = slice(j * block, (j + 1) * block)
        part = lutgemv.model(cfg, codes[:, cols], zero, x[cols], bits)
        mantissa += np.array([int(p) << (s - low) for p in part.tolist()], dtype=object)
    return mantissa, low


def align_window(values, fmt: str, act_bits: int, g: int, exp_bits: int):
    """Per-group exponents within a window, the input of a unit built with ``exp_bits``.

    Group ``j`` wants ``S_j = top_j - (act_bits - 1)``; with ``S_max`` the largest over the
    vector and ``S_low = S_max - (2**exp_bits - 1)``, it is aligned to
    ``S'_j = max(S_j, S_low)`` (round half to even, saturate: groups far below the largest
    keep fewer significant bits) and sent with ``shift_j = S'_j - S_low``. Returns
    ``(mantissas (K,), shifts (K/g,), S_low)``; the unit's integer result times
    ``2**S_low`` is the GEMV of the aligned activations (exact)."""
    sign, m, e = decode(values, fmt)
    assert len(m) % g == 0
    parts = [slice(j, j + g) for j in range(0, len(m), g)]
    tops = [top_exponent(m[p], e[p]) for p in parts]
    wanted = [t - (act_bits - 1) for t in tops if t is not None]
    low = (max(wanted) if wanted else 0) - ((1 << exp_bits) - 1)
    mantissas, shifts = [], []
    for p, t in zip(parts, tops):
        shared = low if t is None else max(t - (act_bits - 1), low)
        mantissas += align_to(sign[p], m[p], e[p], shared, act_bits)
        shifts.append(shared - low)
    return np.array(mantissas, dtype=np.int64), np.array(shifts, dtype=np.int64), low


def window_gemv(cfg, codes, zero: int, values, fmt: str, bits: int):
    """The integer result of a unit with ``exp_bits`` (bit-exact ``lutgemv.model``) and the
    exponent to apply at its output: ``y = result * 2**exponent``."""
    x, shifts, low = align_window(values, fmt, cfg.act_bits, cfg.group, cfg.exp_bits)
    return lutgemv.model(cfg, codes, zero, x, bits, shifts=shifts), low


def to_float(mantissa, exponent: int) -> np.ndarray:
    """The float64 value of an exact result (rounded to nearest by the conversion)."""
    return np.array([float(int(v)) * 2.0 ** exponent for v in mantissa])
