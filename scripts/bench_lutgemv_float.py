"""Accuracy benchmark: FP16 / BF16 activations aligned to shared block exponents, then the
bit-exact integer LUT-GEMV (``golden_models.blockfloat``), against the float GEMV.

    python scripts/bench_lutgemv_float.py      # numpy only (golden models), rewrites BENCHMARKS.md

Activations: K = 256, standard normal with 1 % outliers scaled by 20 (LLM-like), rounded to
float16 or bfloat16 (round half to even); weights: random signed W-bit codes (zero point
``2**(W-1)``), M = 64 rows, 8 vectors, seed 1. The reference is the float64 GEMV of those same
float16 / bfloat16 values, so the error is the alignment's alone (every later step is exact).
"""
from __future__ import annotations


import numpy as np


from lowbit.golden_models import blockfloat
from lowbit.rtl_gen.families import parse_design
from lowbit.scripts.benchmarks_md import markdown_table, update_section

COMMAND = "python scripts/bench_lutgemv_float.py"
K, M, VECTORS, SEED = 256, 64, 8, 1


def activations(rng, fmt):
    x = rng.standard_normal(K)
    outliers = rng.random(K) < 0.01
    x[outliers] *= 20
    return x.astype(np.float16) if fmt == "float16" else blockfloat.to_bfloat16(x.astype(np.float32))


def errors(fmt, act_bits, block, bits):
    """``block``: activations per exponent, or ``("window", exp_bits)`` for per-group
    exponents in a window (the unit built with ``exp_bits``)."""
    window = block[1] if isinstance(block, tuple) else 0
    cfg = parse_design({"family": "lutgemv", "name": "acc", "params": dict(
        group=4, rows=1, bits_max=4, act_bits=act_bits, k_max=K, exp_bits=window)},
        "<bench_lutgemv_float>")
    rng = np.random.default_rng(SEED)
    zero = 1 << (bits - 1)
    got, want = [], []
    for _ in range(VECTORS):
        x = activations(rng, fmt)
        codes = rng.integers(0, 1 << bits, (M, K))
        if window:
            mantissa, exponent = blockfloat.window_gemv(cfg, codes, zero, x, fmt, bits)
        else:
            mantissa, exponent = blockfloat.block_gemv(cfg, codes, zero, x, fmt, block, bits)
        got.append(blockfloat.to_float(mantissa, exponent))
        want.append((codes - zero).astype(np.float64) @ np.asarray(x, dtype=np.float64))
    got, want = np.concatenate(got), np.concatenate(want)
    rel_rms = np.sqrt(np.mean((got - want) ** 2) / np.mean(want ** 2))
    rel_max = np.max(np.abs(got - want)) / np.sqrt(np.mean(want ** 2))
    return rel_rms, rel_max


def main() -> None:
    rows = []
    for fmt in ("float16", "bfloat16"):
        for bits in (2, 4):
            for act_bits in (8, 6, 4):
                for block in (4, 32, K, ("window", 2), ("window", 3)):
                    rms, worst = errors(fmt, act_bits, block, bits)
                    label = ("vector" if block == K else f"4, window {(1 << block[1]) - 1} octaves"
                             if isinstance(block, tuple) else block)
                    rows.append([fmt, f"W{bits}", f"A{act_bits}", label,
                                 f"{100 * rms:.3f} %", f"{100 * worst:.3f} %"])
    body = "\n".join([
        "## LUT-GEMV with FP16 / BF16 activations (block exponents), accuracy\n",
        f"Regenerate: `{COMMAND}` (golden models, bit-exact with the units; the FP16/BF16 decoder "
        "and aligner are host side, not in the RTL)\n",
        "Each block of activations (4 = one table group, 32, or the whole vector) is aligned to "
        "its largest element's exponent: integer mantissas of `act_bits` bits (round half to even, "
        "saturate), the exact integer LUT-GEMV per block, block exponents applied at the output "
        "(exact). K = 256, M = 64, 8 vectors of N(0,1) with 1 % outliers x20, seed 1. Errors "
        "relative to the RMS of the float64 GEMV of the same FP16/BF16 activations. A block of "
        "`vector` is what a plain unit runs (one exponent per vector, applied outside). "
        "`4, window w octaves` is what a unit built with `exp_bits` runs in hardware "
        "(`golden_models.blockfloat.align_window`): per-group exponents kept within w octaves "
        "of the vector's largest, sent as a per-group left shift applied exactly before the "
        "table build (lanes `act_bits + w` bits wide). Blocks of 4 and 32 without a window "
        "(exact per-block exponents of any range) are golden-model only.\n",
        markdown_table(["activations", "weights", "mantissa", "block", "relative RMS error",
                        "max error / RMS"], rows)])
    update_section("lutgemv_float", body)
    print(body)


if __name__ == "__main__":
    main()
