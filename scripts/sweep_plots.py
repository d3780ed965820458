"""Plots of sweep results (matplotlib, Agg, PNG), drawn from the flat rows of
:func:`scripts.sweep_results.rows`:

* ``pareto_<family>.png``: resource (LUT4) against throughput (M results/s = results per cycle
  x Fmax), one colour per target, the Pareto front (fewest LUT4 for the most throughput) drawn;
* ``accuracy_cost.png``: worst and mean error (output LSBs, golden model = RTL) against LUT4
  for the approximator families;
* ``fmax_targets.png``: Fmax of every point, per target, one colour per family;
* ``model_accuracy.png``: minimum embedding cosine of all-MiniLM-L6-v2 (``evaluate:`` sweeps)
  against logic cells (iCE40; LUT-equivalents on ECP5) and against Fmax, one colour per
  family, one marker per target; points reported ``n/a`` (no role in the model) are left out.

Each function returns the path it wrote, or ``None`` when the rows hold nothing to plot.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _ok(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and r.get("lut4") is not None]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another (less or equal cost and more or equal value, one strictly)."""
    front, best = [], float("-inf")
    for cost, value in sorted(points, key=lambda p: (p[0], -p[1])):
        if value > best:
            front.append((cost, value))
            best = value
    return front


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(rows: list[dict], family: str, out: Path) -> Path | None:
    data = [r for r in _ok(rows) if r["family"] == family]
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, target in enumerate(sorted({r["target"] for r in data})):
        pts = [(r["lut4"], r["mitems_per_s"]) for r in data if r["target"] == target]
        colour = COLOURS[i % len(COLOURS)]
        ax.scatter(*zip(*pts), color=colour, alpha=0.6, label=target)
        front = pareto_front(pts)
        ax.step(*zip(*front), where="post", color=colour, linewidth=1.2)
        ax.scatter(*zip(*front), facecolors="none", edgecolors=colour, s=90, linewidths=1.2)
    ax.set_xlabel("LUT4 (incl. pin shell)")
    ax.set_ylabel("throughput, M results/s")
    ax.set_title(f"{family}: resources vs throughput (Pareto front per target)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out / f"pareto_{family}.png")


def plot_accuracy_cost(rows: list[dict], families: tuple, out: Path, target: str | None = None) -> Path | None:
    data = [r for r in _ok(rows) if r["family"] in families and r.get("max_err_lsb") is not None]
    if target is not None:
        data = [r for r in data if r["target"] == target]
    if not data:
        return None
    fams = sorted({r["family"] for r in data})
    fig, axes = plt.subplots(1, len(fams), figsize=(5.2 * len(fams), 4.0), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        sub = [r for r in data if r["family"] == fam]
        ax.scatter([r["lut4"] for r in sub], [r["max_err_lsb"] for r in sub], label="max error", marker="o")
        ax.scatter([r["lut4"] for r in sub], [r["mean_err_lsb"] for r in sub], label="mean error", marker="x")
        ax.set_xlabel(f"LUT4 on {target}" if target else "LUT4")
        ax.set_ylabel("error, output LSB (vs correctly rounded)")
        ax.set_title(f"{fam}: accuracy vs cost")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, out / "accuracy_cost.png")


def plot_fmax(rows: list[dict], out: Path) -> Path | None:
    data = _ok(rows)
    if not data:
        return None
    targets = sorted({r["target"] for r in data})
    fams = sorted({r["family"] for r in data})
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    width = 0.8 / len(fams)
    for j, fam in enumerate(fams):
        xs, ys = [], []
        for i, target in enumerate(targets):
            vals = [r["fmax_mhz"] for r in data if r["family"] == fam and r["target"] == target]
            xs += [i - 0.4 + width * (j + 0.5)] * len(vals)
            ys += vals
        ax.scatter(xs, ys, color=COLOURS[j % len(COLOURS)], alpha=0.7, label=fam)
    ax.set_xticks(range(len(targets)), targets)
    ax.set_ylabel("Fmax, MHz (nextpnr)")
    ax.set_title("Fmax per target")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, out / "fmax_targets.png")


def plot_model_accuracy(rows: list[dict], out: Path) -> Path | None:
    data = [r for r in _ok(rows) if isinstance(r.get("cosine_min"), float) and r.get("fmax_mhz")]
    if not data:
        return None
    fams, targets = sorted({r["family"] for r in data}), sorted({r["target"] for r in data})
    markers = "osD^v"
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.2), squeeze=False)
    for ax, key, label in ((axes[0][0], "area", "logic cells (iCE40) / LUT-eq (ECP5)"),
                           (axes[0][1], "fmax_mhz", "Fmax, MHz (median of nextpnr seeds)")):
        for j, fam in enumerate(fams):
            for i, target in enumerate(targets):
                sub = [r for r in data if r["family"] == fam and r["target"] == target]
                if sub:
                    ax.scatter([r.get(key) or r["lut4"] for r in sub], [r["cosine_min"] for r in sub],
                               color=COLOURS[j % len(COLOURS)], marker=markers[i % len(markers)],
                               alpha=0.75, label=f"{fam}, {target}")
        ax.set_xlabel(label)
        ax.set_ylabel("min embedding cosine to float (MiniLM)")
        ax.grid(alpha=0.3)
    axes[0][0].set_title("model accuracy vs size")
    axes[0][1].set_title("model accuracy vs clock")
    axes[0][1].legend(fontsize=7)
    return _save(fig, out / "model_accuracy.png")

