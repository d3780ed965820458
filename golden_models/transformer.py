"""A plain NumPy forward pass of a BERT sentence encoder (all-MiniLM-L6-v2 shapes) with
pluggable operators, so linear layers, GELU and softmax can be replaced by the golden
models of chosen design points (``lowbit.scripts.evaluate``).

``forward(weights, sentences, ops)``: word + position + token-type embeddings, LayerNorm;
per layer: self-attention (Q, K, V projections, per head ``softmax(Q K^T / sqrt(d))``, V,
output projection, residual, LayerNorm), feed-forward (``ffn1``, GELU, ``ffn2``, residual,
LayerNorm); mean pooling over the tokens and L2 normalisation. Every sentence is run
unpadded (no attention mask). Float arithmetic is float64 throughout; LayerNorm, the
residuals, the ``1/sqrt(d)`` score scale and the pooling always stay float.

``weights`` uses the Hugging Face BERT names (``encoder.layer.{i}.attention.self.query.weight``
...); ``ops`` is a :class:`FloatOps` or a subclass overriding ``linear``, ``gelu`` and
``softmax``. All tokens of all sentences go through each linear layer and each GELU as one
matrix (rows are independent there); attention runs per sentence.
"""
from __future__ import annotations

import numpy as np

from .activation import gelu_float

#: (site name, weight prefix) of the six linear layers of one BERT layer
SITES = (("q", "attention.self.query"), ("k", "attention.self.key"),
         ("v", "attention.self.value"), ("o", "attention.output.dense"),
         ("ffn1", "intermediate.dense"), ("ffn2", "output.dense"))


class FloatOps:
    """The float operators (the reference model). ``linear(site, x, w, b)`` with ``site``
    ``(layer, name)``; ``x`` (T, K) float64, ``w`` (N, K) -> (T, N)."""

    def linear(self, site, x, w, b):
        return x @ w.T + b

    def gelu(self, x):
        return gelu_float(x)

    def softmax(self, scores):
        """Row-wise softmax of ``scores`` (heads, n, n)."""
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


class RecordingOps(FloatOps):
    """Float operators that keep every linear layer's input (calibration activations)."""

    def __init__(self):
        self.inputs: dict = {}

    def linear(self, site, x, w, b):
        self.inputs.setdefault(site, []).append(np.array(x))
        return super().linear(site, x, w, b)


def config_of(weights: dict) -> dict:
    """Layers, hidden size and heads (heads: hidden / 32, MiniLM's head size)."""
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
    hidden = weights["embeddings.word_embeddings.weight"].shape[1]
    return {"layers": layers, "hidden": hidden, "heads": hidden // 32}


def layer_norm(x, gamma, beta, eps: float = 1e-12):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def forward(weights: dict, sentences: list, ops: FloatOps | None = None,
            layers: int | None = None) -> np.ndarray:
    """Sentence embeddings (S, hidden), L2-normalised, for ``sentences`` given as lists of
    token ids; ``layers`` truncates the encoder (tests)."""
    ops = ops or FloatOps()
    cfg = config_of(weights)
    n_layers = cfg["layers"] if layers is None else layers
    heads, hidden = cfg["heads"], cfg["hidden"]
    d = hidden // heads
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()
         if not k.endswith("position_ids")}
    lengths = [len(s) for s in sentences]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.concatenate([np.asarray(s, dtype=np.int64) for s in sentences])
    pos = np.concatenate([np.arange(n) for n in lengths])
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for i in range(n_layers):
        p = f"encoder.layer.{i}."

        def lin(name, inp, prefix):
            return ops.linear((i, name), inp, w[p + prefix + ".weight"], w[p + prefix + ".bias"])

        prefixes = dict(SITES)
        q, k, v = (lin(n, x, prefixes[n]) for n in ("q", "k", "v"))
        ctx = np.empty_like(x)
        for a, b in zip(bounds[:-1], bounds[1:]):
            qh, kh, vh = (t[a:b].reshape(b - a, heads, d).transpose(1, 0, 2) for t in (q, k, v))
            probs = ops.softmax(qh @ kh.transpose(0, 2, 1) / np.sqrt(d))
            ctx[a:b] = (probs @ vh).transpose(1, 0, 2).reshape(b - a, hidden)
        x = layer_norm(x + lin("o", ctx, prefixes["o"]), w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"])
        h = ops.gelu(lin("ffn1", x, prefixes["ffn1"]))
        x = layer_norm(x + lin("ffn2", h, prefixes["ffn2"]), w[p + "output.LayerNorm.weight"],
                       w[p + "output.LayerNorm.bias"])
    pooled = np.stack([x[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
