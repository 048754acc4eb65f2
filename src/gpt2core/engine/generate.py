"""Token generation: greedy or sampled (temperature, top-k, top-p) with a fresh KV cache per call.

Sampling follows transformers' `generate(do_sample=True)`: the last position's logits are cast to float32
(whatever the model's dtype), then TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper apply in
that order (`sampling_scores`); the token is drawn from the softmax of those processed scores.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops
from .errors import InputError
from .inputs import as_attention_mask, as_token_ids


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """[B, V] logits divided by the temperature."""
    return logits / np.asarray(temperature, dtype=logits.dtype)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """[B, V]: logits below the k-th largest of their row set to -inf (ties with it kept); k=0 keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """[B, V]: keep the smallest set of most probable tokens whose probability sum reaches p (at least one)."""
    if p >= 1.0:
        return logits
    order = np.argsort(logits, axis=-1, kind="stable")  # ascending, as transformers sorts
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    # accumulated in float64 and rounded to the logits' dtype, as torch's cumsum on the CPU does
    cum = np.cumsum(ops.softmax(sorted_logits), axis=-1, dtype=np.float64).astype(logits.dtype)
    remove_sorted = cum <= (1 - p)
    remove_sorted[:, -1] = False  # the most probable token always stays
    remove = np.zeros_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, -np.inf, logits)


def check_sampling_args(max_new_tokens, temperature, top_k, top_p) -> None:
    if type(max_new_tokens) is not int and not isinstance(max_new_tokens, np.integer) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    check_filter_args(temperature, top_k, top_p)


def check_filter_args(temperature, top_k, top_p) -> None:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
    if type(top_k) is not int or top_k < 0:
        raise InputError(f"top_k must be an integer >= 0 (0 disables it), got {top_k!r}")
    if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise InputError(f"top_p must lie in (0, 1], got {top_p!r}")


def sampling_scores(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """[B, V] logits of the last position -> [B, V] float32 processed scores, filtered tokens at -inf: what
    transformers' generate(do_sample=True) samples from (its `scores` with output_scores=True)."""
    return top_p_filter(top_k_filter(apply_temperature(logits.astype(np.float32), temperature), top_k), top_p)


def next_tokens(logits: np.ndarray, rng, do_sample: bool, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """[B, V] logits of the last position -> [B] chosen token ids."""
    if not do_sample:
        return logits.argmax(axis=-1)
    probs = ops.softmax(sampling_scores(logits, temperature, top_k, top_p).astype(np.float64))
    # inverse-CDF sampling: one uniform draw per row, reproducible for a seed
    u = rng.random((probs.shape[0], 1))
    return np.minimum((np.cumsum(probs, axis=-1) < u * probs.sum(-1, keepdims=True)).sum(-1), probs.shape[-1] - 1)


def generate(
    model,
    input_ids,
    max_new_tokens: int,
    *,
    attention_mask=None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    eos_token_id: int | None = None,
    stop_at_eos: bool = True,
) -> np.ndarray:
    """Append up to `max_new_tokens` tokens to each row of input_ids ([T] or [B, T]) and return the ids.

    Greedy unless do_sample. Rows that produced end-of-text are padded with it until every row has
    (as transformers does with pad_token_id = eos_token_id). Padding in attention_mask must be on the left.
    """
    cfg = model.config
    check_sampling_args(max_new_tokens, temperature, top_k, top_p)
    squeeze = np.ndim(input_ids) == 1
    ids = as_token_ids(input_ids, cfg.vocab_size)
    B, T = ids.shape
    if T + max_new_tokens > cfg.n_positions:
        raise InputError(
            f"prompt of {T} tokens + max_new_tokens={max_new_tokens} exceeds n_positions={cfg.n_positions}"
        )
    mask = np.ones((B, T), np.int64) if attention_mask is None else as_attention_mask(attention_mask, (B, T))
    if (np.diff(mask, axis=1) < 0).any():
        raise InputError("attention_mask has padding after a token; generate needs left padding")
    if not mask[:, -1].all():
        raise InputError("attention_mask: a row is all padding")
    eos = cfg.eos_token_id if eos_token_id is None else eos_token_id
    rng = np.random.default_rng(seed)
    cache = model.new_cache(B, capacity=T + max_new_tokens)
    done = np.zeros(B, dtype=bool)
    out = [ids]
    step_ids = ids
    for _ in range(max_new_tokens):
        logits = model.forward(step_ids, mask, cache=cache, last_only=True)[:, -1]
        new = next_tokens(logits, rng, do_sample, temperature, top_k, top_p)
        new = np.where(done, eos, new).astype(np.int64)
        out.append(new[:, None])
        if stop_at_eos:
            done |= new == eos
            if done.all():
                break
        step_ids = new[:, None]
        mask = np.concatenate([mask, np.ones((B, 1), np.int64)], axis=1)
    result = np.concatenate(out, axis=1)
    return result[0] if squeeze else result


def replay_scores(model, input_ids, path_ids, temperature: float, top_k: int, top_p: float, attention_mask=None) -> np.ndarray:
    """The processed scores ([n, B, V] float32, see `sampling_scores`) of each step of a sampled path forced
    through the model with a KV cache: step 0 scores the prompt input_ids [B, T]; step i scores after
    path_ids [B, T + n]'s first T + i tokens (path_ids starts with input_ids)."""
    check_filter_args(temperature, top_k, top_p)
    ids = as_token_ids(input_ids, model.config.vocab_size)
    path = as_token_ids(path_ids, model.config.vocab_size)
    B, T = ids.shape
    if path.shape[0] != B or path.shape[1] <= T or not np.array_equal(path[:, :T], ids):
        raise InputError(f"path_ids {list(path.shape)} must continue input_ids {list(ids.shape)} by at least one token")
    if path.shape[1] > model.config.n_positions:
        raise InputError(f"path of {path.shape[1]} tokens exceeds n_positions={model.config.n_positions}")
    mask = np.ones((B, T), np.int64) if attention_mask is None else as_attention_mask(attention_mask, (B, T))
    cache = model.new_cache(B, capacity=path.shape[1])
    steps, step_ids = [], ids
    for t in range(T, path.shape[1]):
        logits = model.forward(step_ids, mask, cache=cache, last_only=True)[:, -1]
        steps.append(sampling_scores(logits, temperature, top_k, top_p))
        step_ids = path[:, t : t + 1]
        mask = np.concatenate([mask, np.ones((B, 1), np.int64)], axis=1)
    return np.stack(steps)
