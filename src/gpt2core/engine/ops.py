"""GPT-2's building blocks as pure NumPy functions, named after the paper's notation.

Shapes: B batch, T query positions, S key positions (cache + new), C width (n_embd),
H heads, D head size (C // H). Every function keeps the dtype of its input.
"""

from __future__ import annotations

import math

import numpy as np


GELU_CHUNK = 1 << 16  # elements; [512, 3072]: 1.69 ms in chunks of 2^16-2^17, 2.71 ms in one piece (6 MB > L2)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU in the tanh form GPT-2 was trained with (`gelu_new`), elementwise:
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Evaluated in place, GELU_CHUNK elements at a time so that all eight passes over a chunk run while it
    is in the L2 cache. The tanh's argument is written x (c + 0.044715 c x^2), with c = sqrt(2/pi).
    """
    c = math.sqrt(2.0 / math.pi)  # Python floats take x's dtype (NEP 50)
    out = np.empty_like(x, order="C")
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for i in range(0, flat_x.size, GELU_CHUNK):
        x_, t = flat_x[i : i + GELU_CHUNK], flat_out[i : i + GELU_CHUNK]
        np.multiply(x_, x_, out=t)  # x*x, not x**2: NumPy sends ** through the generic pow, 13x slower
        t *= 0.044715 * c
        t += c
        t *= x_
        np.tanh(t, out=t)
        t += 1.0
        t *= x_
        t *= 0.5
    return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis` (the row maximum is subtracted first)."""
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis with the biased variance: [..., C] -> [..., C].

    The mean is a sum divided by C and the variance a row-wise dot product (np.vecdot), which skips
    np.mean's Python wrapper and the squared copy: 6 passes over x's size instead of 7."""
    C = x.shape[-1]
    centred = x - np.add.reduce(x, axis=-1, keepdims=True) / C
    std = np.vecdot(centred, centred)[..., None]
    std /= C
    std += eps
    np.sqrt(std, out=std)
    centred /= std
    centred *= g
    centred += b
    return centred


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GPT-2's Conv1D: weight stored [in, out], so [..., in] @ [in, out] + [out] -> [..., out]."""
    y = x @ w
    y += b
    return y


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    """[B, T, C] -> [B, H, T, D]: head h takes the columns h*D .. (h+1)*D of C."""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """[B, H, T, D] -> [B, T, H*D], the inverse of `split_heads`."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)


def causal_mask(n_query: int, n_key: int) -> np.ndarray:
    """[T, S] booleans, True where query t (at absolute position S-T+t) may attend to key s (s <= S-T+t)."""
    return np.tri(n_query, n_key, k=n_key - n_query, dtype=bool)


def attention_scores(q: np.ndarray, k: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Scaled, masked scores q k^T / sqrt(D): [B, H, T, D], [B, H, S, D], [B|1, 1, T, S] -> [B, H, T, S].

    `allowed` is True where a query may attend to a key; None allows every pair (one query, no padding).
    Disallowed entries get the dtype's most negative finite value (as transformers' eager attention
    does), so a row with no allowed key (a padding query) gets uniform weights instead of NaN.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.swapaxes(-1, -2)  # scaling q, not the scores: S/D times fewer products
    if allowed is not None:
        hidden = ~allowed
        keys = np.flatnonzero(hidden.any(axis=(0, 1, 2)))  # the keys hidden from some query
        if keys.size:  # causal: only the diagonal band [first, last) is written, not all S columns
            first, last = keys[0], keys[-1] + 1
            np.copyto(scores[..., first:last], np.finfo(scores.dtype).min, where=hidden[..., first:last])
    return scores


QUERY_BLOCK = 128  # per-layer attention at T=512, 2 threads: 32..128 9.0-9.5 ms, 256 15 ms, no blocks 18 ms


def query_blocks(n_query: int, block: int) -> list[tuple[int, int]]:
    """[t0, t1) ranges of `block` consecutive queries covering 0 .. n_query (the last may be shorter)."""
    return [(t0, min(t0 + block, n_query)) for t0 in range(0, n_query, block)]


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, allowed: np.ndarray | None,
              block: int = QUERY_BLOCK, record: dict | None = None) -> np.ndarray:
    """softmax(q k^T / sqrt(D), masked) v: [B, H, T, D], [B, H, S, D] x 2, [B|1, 1, T, S] or None -> [B, H, T, D].

    Queries go `block` at a time. A block leaves out the keys after position S - T + t1 - 1 (its last
    query's) when `allowed` hides all of them from every query in the block and each of its queries
    keeps an allowed key: under the causal mask those keys would get weight exactly 0, and leaving
    them out skips 3/8 of the scores at T=512. A query with no allowed key (padding) attends uniformly
    to all S keys, as in transformers. The full [B, H, T, S] "scores" and "probs" go into `record` when
    given, left-out keys holding what masking gives them (the dtype's minimum, and 0).
    """
    B, H, T, _ = q.shape
    S = k.shape[2]
    out = np.empty((B, T, H, v.shape[-1]), dtype=v.dtype).transpose(0, 2, 1, 3)  # so merge_heads needs no copy
    if record is not None:
        record["scores"] = np.full((B, H, T, S), np.finfo(q.dtype).min, dtype=q.dtype)
        record["probs"] = np.zeros((B, H, T, S), dtype=q.dtype)
    for t0, t1 in query_blocks(T, block):
        keys, block_allowed = S, None
        if allowed is not None:
            block_allowed = allowed[..., t0:t1, :]
            last = S - T + t1  # keys [0, last) reach up to the block's last query
            if not block_allowed[..., last:].any() and block_allowed[..., :last].any(axis=-1).all():
                keys, block_allowed = last, block_allowed[..., :last]
        scores = attention_scores(q[:, :, t0:t1], k[:, :, :keys], block_allowed)
        probs = softmax(scores)
        np.matmul(probs, v[:, :, :keys], out=out[:, :, t0:t1])
        if record is not None:
            record["scores"][:, :, t0:t1, :keys] = scores
            record["probs"][:, :, t0:t1, :keys] = probs
    return out
