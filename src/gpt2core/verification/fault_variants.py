"""The deliberately broken copies of engine functions that the fault catalogue (faults.py) injects.

Each is a realistic bug: a wrong scale, an off-by-one mask, a lost residual, a cache that forgets.
This module is not mutated by mutmut (setup.cfg says why): its functions are already wrong on purpose,
a mutant of one is just another wrong variant, and the factories below run at import, before mutmut
switches a mutant on, so their mutants could not be exercised anyway. What the catalogue claims of each
variant (caught, at which checkpoint, by which property module) is what tests/negative checks.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from ..engine import cache as cache_module
from ..engine import generate as generate_module
from ..engine import model as model_module
from ..engine import ops

OPS = {n: getattr(ops, n) for n in ("attention_scores", "causal_mask", "softmax", "layer_norm", "gelu", "linear", "split_heads", "merge_heads")}  # fmt: skip
MODEL = {n: getattr(model_module, n) for n in ("qkv_heads", "attention_projection", "embed", "positions_from_mask", "transformer_block", "final_layer_norm", "lm_head", "mha", "ffn")}  # fmt: skip
ADVANCE = cache_module.KVCache.advance
NEW_CACHE = model_module.GPT2.new_cache


def scores_variant(scale_of_d, fill=None):
    """attention_scores with another scale (a function of the head size D) or another masked value."""

    def attention_scores(q, k, allowed):
        scores = (q @ k.swapaxes(-1, -2)) * scale_of_d(q.shape[-1])
        if allowed is None:
            return scores
        return np.where(allowed, scores, np.finfo(scores.dtype).min if fill is None else scores.dtype.type(fill))

    return attention_scores


def layer_norm_variant(eps=None, ddof=0, swap=False):
    def layer_norm(x, g, b, e):
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True, ddof=ddof)
        g, b = (b, g) if swap else (g, b)
        return (x - mean) / np.sqrt(var + (e if eps is None else x.dtype.type(eps))) * g + b

    return layer_norm


def gelu_variant(c):
    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi).astype(x.dtype) * (x + c * x * x * x)))

    return gelu


def exact_gelu(x):
    erf = np.vectorize(math.erf, otypes=[x.dtype])
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0).astype(x.dtype)))


def softmax_no_max(x, axis=-1):
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def split_heads_wrong(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, C // n_head, n_head).transpose(0, 3, 1, 2)  # head h takes every H-th column


def merge_heads_wrong(x):
    B, H, T, D = x.shape
    return x.transpose(0, 2, 3, 1).reshape(B, T, H * D)  # columns ordered (d, h) instead of (h, d)


def qkv_wrong_order(x, p, n_head):
    q, k, v = MODEL["qkv_heads"](x, p, n_head)
    return k, q, v


def attention_projection_transposed(heads, p):
    return ops.linear(heads, p.attn_proj.w.T, p.attn_proj.b)


def positions_off_by_one(mask, n_new):
    return np.cumsum(mask, axis=1)[:, -n_new:]  # forgot the -1: positions start at 1


def positions_ignore_padding(mask, n_new):
    S = mask.shape[1]
    return np.broadcast_to(np.arange(S - n_new, S), (mask.shape[0], n_new))


def embed_no_positions(ids, pos, p):
    return p.wte[ids]


def block_variant(variant):
    """transformer_block with its residual wiring changed; records the same checkpoints."""

    def transformer_block(x, p, n_head, eps, allowed, cache, layer, rec):
        name = f"h{layer}"
        mha, ffn, ln = model_module.mha, model_module.ffn, ops.layer_norm
        if variant == "post_norm":  # x = LN(x + attn(x)); x = LN(x + mlp(x))
            mid = x + mha(x, p, n_head, allowed, cache, layer, rec, name)
            h1 = ln(mid, p.ln_1.g, p.ln_1.b, eps)
            m = ffn(h1, p, rec, name)
            h2 = out = ln(h1 + m, p.ln_2.g, p.ln_2.b, eps)
        else:
            h1 = ln(x, p.ln_1.g, p.ln_1.b, eps)
            a = mha(h1, p, n_head, allowed, cache, layer, rec, name)
            mid = a if variant == "no_attn_residual" else x + a
            h2 = ln(mid, p.ln_2.g, p.ln_2.b, eps)
            m = ffn(h2, p, rec, name)
            out = m if variant == "no_mlp_residual" else mid + m
        if rec is not None:
            rec.update({name + ".ln_1": h1, name + ".resid_mid": mid, name + ".ln_2": h2, name + ".mlp_out": m,
                        name + ".out": out})  # fmt: skip
        return out

    return transformer_block


def untied_head(x, p):
    rng = np.random.default_rng(0)  # a freshly initialised head, as if the tie to wte were lost
    return x @ (0.02 * rng.standard_normal(p.lm_head.shape)).astype(x.dtype).T


def append_without_storing(self, layer, k, v):
    return k, v


def advance_twice(self, new_mask):
    ADVANCE(self, new_mask)
    ADVANCE(self, new_mask)  # committed twice: a gap of unwritten positions follows every step


# model -> {(batch_size, capacity): cache}; weak keys, so that a later model given a dead one's id() never
# receives its cache (of another shape: a ValueError instead of the wrong values the fault is meant to give)
shared_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def new_cache_reused(self, batch_size=1, capacity=None):
    caches = shared_caches.setdefault(self, {})
    key = (batch_size, capacity)
    if key not in caches:  # one cache per model, never reset: the next request sees the last one's keys
        caches[key] = NEW_CACHE(self, batch_size, capacity)
    return caches[key]


# --- sampling: the processed scores transformers' generate(do_sample=True) samples from -------------------

GEN = {n: getattr(generate_module, n) for n in ("apply_temperature", "top_k_filter", "top_p_filter", "sampling_scores")}  # fmt: skip


def scores_top_p_before_temperature(logits, temperature, top_k, top_p):
    """top-p applied to the untempered distribution, temperature last (transformers tempers first)."""
    filtered = GEN["top_p_filter"](GEN["top_k_filter"](logits.astype(np.float32), top_k), top_p)
    return GEN["apply_temperature"](filtered, temperature)


def scores_in_float64(logits, temperature, top_k, top_p):
    """The filters run in the model's dtype (float64 for a float64 model); transformers casts to float32 first."""
    x = logits.astype(np.float64)
    return GEN["top_p_filter"](GEN["top_k_filter"](GEN["apply_temperature"](x, temperature), top_k), top_p)


def temperature_multiplied(logits, temperature):
    """Logits multiplied by the temperature instead of divided."""
    return logits * np.asarray(temperature, dtype=logits.dtype)


def top_k_keeps_one_more(logits, k):
    """top-k keeping k + 1 tokens (an off-by-one in the threshold's index)."""
    return GEN["top_k_filter"](logits, k + 1) if 0 < k < logits.shape[-1] - 1 else GEN["top_k_filter"](logits, k)


def top_p_drops_crossing_token(logits, p):
    """top-p from the most probable down, keeping tokens while the sum stays <= p: the token that carries the
    sum past p is dropped (transformers keeps it: the smallest set whose probability reaches p)."""
    if p >= 1.0:
        return logits
    order = np.argsort(-logits, axis=-1, kind="stable")
    probs = ops.softmax(np.take_along_axis(logits, order, axis=-1))
    remove_sorted = np.cumsum(probs, axis=-1) > p
    remove_sorted[:, 0] = False
    remove = np.zeros_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, -np.inf, logits)
