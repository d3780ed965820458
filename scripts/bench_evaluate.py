"""Model accuracy of design points: all-MiniLM-L6-v2 with its linear layers, GELU and
softmax on the golden models of design points (``lowbit.scripts.evaluate``), against the
float model on the committed evaluation sentences.

    python scripts/bench_evaluate.py            # print the table
    python scripts/bench_evaluate.py --write    # and rewrite BENCHMARKS.md's section

About 3 minutes on 2 idle cores for the plain settings (one float model, then each
setting ~10 s), plus the rotated ones (GPTQ settings 1-3 minutes each).
"""
from __future__ import annotations

import argparse
import time

from lowbit.golden_models.quantize import Scheme
from lowbit.scripts import evaluate as ev
from lowbit.scripts.benchmarks_md import markdown_table, update_section

W8 = "bitserial_w8a8"
G32 = ["group_size=32"]
GELU_Q5_10 = ["input=Q5.10", "output=Q5.10"]

#: (label, linear design, its overrides, scheme, gelu design+overrides, softmax design)
SETTINGS = (
    ("float (reference)", None, None, None, None, None),
    ("W8A8 RTN g128", W8, None, Scheme(8, 128), None, None),
    ("W4A8 RTN g128", W8, None, Scheme(4, 128), None, None),
    ("W4A8 RTN g128 + zero points", W8, None, Scheme(4, 128, False), None, None),
    ("W4A8 RTN g32 + zero points", W8, G32, Scheme(4, 32, False), None, None),
    ("W4A8 RTN g32 + zero points, MSE clip", W8, G32, Scheme(4, 32, False, mse=True), None, None),
    ("W4A8 GPTQ g32 + zero points", W8, G32, Scheme(4, 32, False, method="gptq"), None, None),
    ("W3A8 GPTQ g32 + zero points", W8, G32, Scheme(3, 32, False, method="gptq"), None, None),
    ("W2A8 GPTQ g32 + zero points", W8, G32, Scheme(2, 32, False, method="gptq"), None, None),
    ("W2A8 RTN g128 symmetric (ternary design)", "bitserial_w2a8_gemm", None, Scheme(2, 128), None, None),
    ("GELU poly Q4.11 (shipped)", None, None, None, ("gelu_q4_11", None), None),
    ("GELU poly Q5.10", None, None, None, ("gelu_q4_11", GELU_Q5_10), None),
    ("GELU I-BERT Q4.11", None, None, None, ("gelu_ibert_q4_11", None), None),
    ("softmax Q6.9 -> UQ0.16", None, None, None, None, "softmax_q6_9_u16"),
    ("softmax Q5.2 -> UQ0.8", None, None, None, None, "softmax_q5_2_u8"),
    ("softmax Q5.2 -> UQ0.8 online max", None, None, None, None, "softmax_q5_2_u8_online"),
    ("W4A8 GPTQ g32 zp + GELU Q5.10 + softmax Q6.9", W8, G32, Scheme(4, 32, False, method="gptq"),
     ("gelu_q4_11", GELU_Q5_10), "softmax_q6_9_u16"),
)
#: the same linear settings with the Hadamard rotation units (``lowbit evaluate --rotate``)
ROTATED = (
    ("rotation only (Hadamard units, float linear layers)", None, None, None, None, None),
    ("W8A8 RTN g128 + rotation", W8, None, Scheme(8, 128), None, None),
    ("W4A8 RTN g32 + zero points + rotation", W8, G32, Scheme(4, 32, False), None, None),
    ("W4A8 GPTQ g32 + zero points + rotation", W8, G32, Scheme(4, 32, False, method="gptq"), None, None),
    ("W4A8 GPTQ g32 + zero points, MSE clip + rotation", W8, G32,
     Scheme(4, 32, False, mse=True, method="gptq"), None, None),
    ("W3A8 GPTQ g32 + zero points + rotation", W8, G32, Scheme(3, 32, False, method="gptq"), None, None),
    ("W3A8 GPTQ g32 + zero points, MSE clip + rotation", W8, G32,
     Scheme(3, 32, False, mse=True, method="gptq"), None, None),
    ("W2A8 GPTQ g32 + zero points + rotation", W8, G32, Scheme(2, 32, False, method="gptq"), None, None),
)


def setting(label, linear, params, scheme, gelu, softmax, rotate=False) -> ev.Setting:
    lin = ev.resolve(linear, params) if linear else None
    g = ev.resolve(gelu[0], gelu[1]) if gelu else None
    sm = ev.resolve(softmax) if softmax else None
    rotation = tuple(ev.resolve(d) for d in ev.ROTATION_DESIGNS) if rotate else ()
    return ev.Setting(label, lin, scheme, g, sm, rotation=rotation)


def saturation_note(result: dict) -> str:
    notes = []
    for key, u in result["units"].items():
        if key.startswith(("linear.", "rotate.")):
            continue
        peak = max(abs(u["range"][0]), abs(u["range"][1]))
        flag = "**saturates** " if u["saturated"] else ""
        notes.append(f"{key} {u['format']}: {flag}{u['saturated']:,} of {u['count']:,} "
                     f"(inputs to ±{peak:.1f})")
    sat = sum(u["saturated"] for k, u in result["units"].items() if k.startswith("linear."))
    if any(k.startswith("linear.") for k in result["units"]):
        notes.append(f"INT8 activations: {sat} saturated (per-token scales)")
    rotated = [u for k, u in result["units"].items() if k.startswith("rotate.")]
    if rotated:
        notes.append(f"rotation inputs ({rotated[0]['format']}, per-token scales): "
                     f"{sum(u['saturated'] for u in rotated)} saturated")
    return "; ".join(notes) or "—"


def goals(results: dict) -> str:
    """Issue 17's accuracy goals against the measured minimum cosines."""
    def best(*labels):
        return max(results[label]["cosine_min"] for label in labels if label in results)

    w4 = best("W4A8 GPTQ g32 + zero points + rotation", "W4A8 GPTQ g32 + zero points, MSE clip + rotation")
    w3 = best("W3A8 GPTQ g32 + zero points + rotation", "W3A8 GPTQ g32 + zero points, MSE clip + rotation")
    w2 = best("W2A8 GPTQ g32 + zero points + rotation")
    return (f"W4A8 with rotation + GPTQ + zero points >= 0.99: {w4:.4f} "
            f"({'met' if w4 >= 0.99 else 'not met'}); W3A8 >= 0.97: {w3:.4f} "
            f"({'met' if w3 >= 0.97 else 'not met'}); W2A8 (reported): {w2:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md's section")
    args = parser.parse_args()
    start = time.perf_counter()
    evaluator = ev.Evaluator()
    rows, results = [], {}
    for spec, rotate in [(spec, False) for spec in SETTINGS] + [(spec, True) for spec in ROTATED]:
        s = setting(*spec, rotate=rotate)
        r = evaluator.run(s)
        print(ev.format_result(r), flush=True)
        bits = "32 (float)" if s.linear is None else f"{r['bits_per_weight']:.3f}"
        results[spec[0]] = r
        rows.append([spec[0], s.design_points() if s.design_points() != "float" else "—", bits,
                     f"{r['cosine_min']:.4f}", f"{r['cosine_mean']:.4f}", f"{r['spearman']:.4f}",
                     saturation_note(r)])
    elapsed = time.perf_counter() - start
    table = markdown_table(["setting", "design points", "bits / weight", "cosine min",
                            "cosine mean", "Spearman", "units: saturated inputs"], rows)
    body = "\n".join([
        "## Model accuracy: all-MiniLM-L6-v2 on the golden models (`python scripts/bench_evaluate.py --write`)",
        "",
        f"Sentence embeddings of {len(evaluator.tokens)} evaluation sentences "
        "(`scripts/eval_data/eval.txt`) against the float model (NumPy float64, equal to "
        "sentence-transformers' embedding within 2e-7): cosine per sentence (min, mean) and "
        "the Spearman correlation of the pairwise similarities. Linear layers (Q, K, V, O, "
        "FFN1, FFN2 of all 6 layers) run on the bit-serial array's whole-layer golden model "
        "with INT8 activations scaled per token; weights as the unit stores them: integer "
        "weights, 8-bit integer group scales times a float16 base per row, zero points; "
        "bits / weight counts all of that. GPTQ (act-order, static groups) uses the float "
        "model's activations on the 40 calibration sentences (`scripts/eval_data/"
        "calibration.txt`). GELU and softmax inputs are narrowed to the unit's input format "
        "(round half to even, saturate). One setting: `lowbit evaluate --linear "
        "bitserial_w8a8 -p group_size=32 --wbits 4 --zero-point --method gptq --gelu "
        "gelu_q4_11 --softmax softmax_q6_9_u16`. "
        f"This table took {elapsed:.0f} s on 2 shared cores.",
        "",
        table,
        "",
        "*+ rotation*: `lowbit evaluate --rotate` (`golden_models/rotation.py`): the Hadamard "
        "rotation unit's golden model (hw/hadamard_minilm_n128 before Q/K/V/FFN1 on MiniLM's "
        "384 = 3 x 128, hw/hadamard_minilm_n512 before FFN2 on 1536 = 3 x 512; 12-bit inputs "
        "with per-token scales, exact transform, results / 8 and / 32) online, `W R` fused "
        "into those weights, values and output projection rotated per head (32) offline; GPTQ "
        "sees the rotated calibration inputs. Issue 17's goals: " + goals(results) + ".",
        "",
        "Not yet here: the LUT-GEMV units as the linear layers.",
    ])
    print(body)
    if args.write:
        update_section("evaluate", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
