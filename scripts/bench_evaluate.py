"""Model accuracy of design points: all-MiniLM-L6-v2 with its linear layers, GELU and
softmax on the golden models of design points (``lowbit.scripts.evaluate``), against the
float model on the committed evaluation sentences.

    python scripts/bench_evaluate.py            # print the table
    python scripts/bench_evaluate.py --write    # and rewrite BENCHMARKS.md's section

About 3 minutes on 2 cores (one float model, then each setting ~10 s).
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


def setting(label, linear, params, scheme, gelu, softmax) -> ev.Setting:
    lin = ev.resolve(linear, params) if linear else None
    g = ev.resolve(gelu[0], gelu[1]) if gelu else None
    sm = ev.resolve(softmax) if softmax else None
    return ev.Setting(label, lin, scheme, g, sm)


def saturation_note(result: dict) -> str:
    notes = []
    for key, u in result["units"].items():
        if key.startswith("linear."):
            continue
        peak = max(abs(u["range"][0]), abs(u["range"][1]))
        flag = "**saturates** " if u["saturated"] else ""
        notes.append(f"{key} {u['format']}: {flag}{u['saturated']:,} of {u['count']:,} "
                     f"(inputs to ±{peak:.1f})")
    sat = sum(u["saturated"] for k, u in result["units"].items() if k.startswith("linear."))
    if any(k.startswith("linear.") for k in result["units"]):
        notes.append(f"INT8 activations: {sat} saturated (per-token scales)")
    return "; ".join(notes) or "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md's section")
    args = parser.parse_args()
    start = time.perf_counter()
    evaluator = ev.Evaluator()
    rows = []
    for spec in SETTINGS:
        s = setting(*spec)
        r = evaluator.run(s)
        print(ev.format_result(r), flush=True)
        bits = "32 (float)" if s.linear is None else f"{r['bits_per_weight']:.3f}"
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
        "Not yet here: the Hadamard rotation unit of issue 17 (a later step) and the LUT-GEMV "
        "units as the linear layers.",
    ])
    print(body)
    if args.write:
        update_section("evaluate", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
