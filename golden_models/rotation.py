"""QuaRot-style Hadamard rotations of a BERT encoder: the offline half (weights) and the
online half (activations, on the rotation unit's golden model).

A linear layer ``y = x W^T + b`` is unchanged when its input is rotated by an orthogonal
``R`` and its weight by the same ``R``: ``y = (x R) (W R)^T + b``. The rotated input has
its outliers spread over the block, which is what makes the weights' and activations'
low-bit quantisation cheaper. Here ``R = blockdiag(H_B / sqrt(B), ...)`` (B a power of
two dividing the input width; Sylvester ``H_B``, symmetric, ``R = R^T = R^-1``).

* **Online** (``online_sites``, the rotation unit): inputs that a LayerNorm or a GELU
  produces cannot be rotated offline in a post-LN BERT (LayerNorm subtracts the mean of the
  unrotated vector; GELU is elementwise), so the unit rotates them at run time: Q, K, V and
  FFN1 read the LayerNorm output (rotated once, shared), FFN2 reads the GELU output (where
  QuaRot puts its online Hadamard, before the down-projection); optionally the attention
  output projection's input too (site ``o``, on top of the per-head rotation below, as
  QuaRot's online Hadamard before ``W_o``). :func:`rotate_online`
  narrows each token to the unit's ``width``-bit integers with its own scale
  ``s_t = max|x_t| / (2**(width-1) - 1)`` (round half to even; this scale cannot
  saturate), runs the unit's exact golden model (``hadamard.model``: ``round_half_even(H_B
  x / 2**shift)``) on each block of ``B`` and scales back by ``s_t 2**shift / sqrt(B)``.
* **Offline** (:func:`fuse_heads`): the attention output projection's input is fused with
  no unit: rotating each head's value rows (``W_v <- R_h W_v``, ``b_v <- b_v R_h``, ``R_h``
  per head of ``head_dim``) rotates the attention context ``P V`` per head, which the output
  projection's columns undo (``W_o <- W_o R_h``). Exact in float.

:func:`fuse` returns the weights with every rotation folded in (``W <- W R`` at the online
sites); with float operators the rotated model computes the float model's embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import hadamard

#: sites whose input the unit rotates online -> which input (shared by q, k, v)
ONLINE_SITES = ("q", "k", "v", "ffn1", "ffn2")
#: the site whose input is rotated offline, per attention head (and optionally online too)
HEAD_SITE = "o"
#: every site a rotation unit can serve
ALL_SITES = ("q", "k", "v", "o", "ffn1", "ffn2")


def largest_block(dim: int, lengths) -> int:
    """The longest of ``lengths`` (powers of two) that divides ``dim``; ValueError if none."""
    fits = [n for n in lengths if dim % n == 0]
    if not fits:
        raise ValueError(f"no rotation length of {sorted(lengths)} divides {dim}")
    return max(fits)


def rotate_float(x: np.ndarray, block: int) -> np.ndarray:
    """``x R`` along the last axis, ``R = blockdiag(H_block / sqrt(block))`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    blocks = x.reshape(*shape[:-1], shape[-1] // block, block)
    return (blocks @ hadamard.orthonormal(block)).reshape(shape)


def fuse_input(w: np.ndarray, block: int) -> np.ndarray:
    """``W R``: the weight of a layer whose input arrives rotated by ``R``."""
    return rotate_float(w, block)


def fuse_heads(w_v, b_v, w_o, head_dim: int):
    """Per-head rotation of the values, undone by the output projection: ``(R_h W_v,
    b_v R_h, W_o R_h)`` with ``R_h = blockdiag(H_head_dim / sqrt(head_dim))``."""
    return (rotate_float(np.asarray(w_v).T, head_dim).T, rotate_float(b_v, head_dim),
            rotate_float(w_o, head_dim))


@dataclass(frozen=True)
class Plan:
    """Which inputs are rotated: ``online`` site -> block length (a rotation unit's
    ``length``), ``head_dim`` (0: the values / output projection stay unrotated)."""

    online: dict
    head_dim: int = 0

    def block(self, site_name: str) -> int:
        return self.online.get(site_name, 0)


def fuse(weights: dict, plan: Plan, layers: int, sites: tuple) -> dict:
    """``weights`` (Hugging Face BERT names) with the plan's rotations folded in for the
    first ``layers`` layers; ``sites`` is ``transformer.SITES`` ((name, weight prefix))."""
    out = dict(weights)
    prefixes = dict(sites)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        if plan.head_dim:
            v, o = p + prefixes["v"], p + prefixes[HEAD_SITE]
            out[v + ".weight"], out[v + ".bias"], out[o + ".weight"] = fuse_heads(
                np.asarray(weights[v + ".weight"], dtype=np.float64),
                np.asarray(weights[v + ".bias"], dtype=np.float64),
                np.asarray(weights[o + ".weight"], dtype=np.float64), plan.head_dim)
        for name, block in plan.online.items():   # after the heads: W_o R_h R at site o
            key = p + prefixes[name] + ".weight"
            out[key] = fuse_input(np.asarray(out[key], dtype=np.float64), block)
    return out


def rotate_calibration(inputs: np.ndarray, site_name: str, plan: Plan) -> np.ndarray:
    """A site's calibration inputs (of the float model) as the rotated model's layer sees
    them (float rotation: GPTQ's Hessian and static scales only need their statistics)."""
    if site_name == HEAD_SITE and plan.head_dim:
        inputs = rotate_float(inputs, plan.head_dim)
    if plan.block(site_name):
        inputs = rotate_float(inputs, plan.block(site_name))
    return inputs


def rotate_online(x: np.ndarray, unit) -> tuple[np.ndarray, int]:
    """``x R`` (T, K) on the rotation unit ``unit`` (a config with ``length``, ``width``,
    ``shift``), as the module docstring narrows it; returns (rotated float values, the
    number of saturated inputs, always 0 with the per-token scale)."""
    x = np.asarray(x, dtype=np.float64)
    t, k = x.shape
    n, top = unit.length, (1 << (unit.width - 1)) - 1
    scale = np.abs(x).max(axis=1) / top
    scale = np.where(scale > 0, scale, 1.0)
    raw = np.rint(x / scale[:, None])
    saturated = int(np.count_nonzero(np.abs(raw) > top))
    codes = np.clip(raw, -top - 1, top).astype(np.int64)
    y = hadamard.model(unit, codes.reshape(t * (k // n), n)).reshape(t, k)
    return y * (scale[:, None] * 2.0 ** unit.shift / np.sqrt(n)), saturated


def plan_for(lengths, hidden: int, ffn: int, head_dim: int, sites=ONLINE_SITES) -> Plan:
    """The rotations of a BERT layer of width ``hidden`` (FFN width ``ffn``) with rotation
    units of ``lengths``: each online site in ``sites`` gets the longest length dividing its
    input width (``ffn2``: ``ffn``; the others: ``hidden``), and the heads are fused
    offline when ``head_dim`` (a power of two) is given."""
    online = {s: largest_block(ffn if s == "ffn2" else hidden, lengths) for s in sites}
    return Plan(online, head_dim)


def rotate_model(weights: dict, lengths, layers: int, sites=ONLINE_SITES) -> tuple[dict, Plan]:
    """all-MiniLM-style ``weights`` with :func:`plan_for`'s rotations fused into the first
    ``layers`` layers (rotation units of ``lengths`` online before ``sites``), and the plan."""
    from .transformer import SITES, config_of

    unknown = set(sites) - set(ALL_SITES)
    if unknown:
        raise ValueError(f"rotation site {sorted(unknown)[0]!r}: expected names from {', '.join(ALL_SITES)}")
    cfg = config_of(weights)
    ffn = weights["encoder.layer.0.intermediate.dense.weight"].shape[0]
    plan = plan_for(lengths, cfg["hidden"], ffn, cfg["hidden"] // cfg["heads"], tuple(sites))
    return fuse(weights, plan, layers, SITES), plan
