"""The GPT-2 forward pass (embeddings, pre-norm blocks, final LayerNorm, tied head) with named checkpoints.

Every stage can be recorded under a stable name when the caller passes a `checkpoints` dict:
  embeddings                          [B, T, C]     token + position embeddings
  h{i}.ln_1                           [B, T, C]
  h{i}.q                              [B, H, T, D]
  h{i}.k, h{i}.v                      [B, H, S, D]  (S = cached + new positions)
  h{i}.attn_scores                    [B, H, T, S]  scaled and masked, before softmax
  h{i}.attn_probs                     [B, H, T, S]
  h{i}.attn_heads                     [B, T, C]     probs @ v with the heads merged, before c_proj
  h{i}.attn_out                       [B, T, C]     after c_proj
  h{i}.resid_mid                      [B, T, C]     x + attn_out, the input of ln_2
  h{i}.ln_2                           [B, T, C]
  h{i}.mlp_fc                         [B, T, 4C]    c_fc's output, before GELU
  h{i}.mlp_act                        [B, T, 4C]    after GELU
  h{i}.mlp_out                        [B, T, C]     after the MLP's c_proj
  h{i}.out                            [B, T, C]     the block's output (residual stream)
  ln_f                                [B, T, C]
  logits                              [B, T, V]
When no dict is passed nothing is recorded and nothing is copied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import ops
from .cache import KVCache
from .config import GPT2Config
from .errors import InputError, TokenizerError
from .generate import generate
from .inputs import as_attention_mask, as_token_ids
from .params import BlockParams, GPT2Params

CHECKPOINTS_PER_LAYER = (
    "ln_1", "q", "k", "v", "attn_scores", "attn_probs", "attn_heads", "attn_out", "resid_mid",
    "ln_2", "mlp_fc", "mlp_act", "mlp_out", "out",
)  # fmt: skip


def checkpoint_names(n_layer: int) -> list[str]:
    """Every checkpoint name the forward pass records, in the order it computes them."""
    names = ["embeddings"]
    for i in range(n_layer):
        names += [f"h{i}.{c}" for c in CHECKPOINTS_PER_LAYER]
    return names + ["ln_f", "logits"]


def embed(ids, pos, p: GPT2Params):
    """Token plus position embeddings: ids [B, T], pos [B, T] -> [B, T, C]."""
    return p.wte[ids] + p.wpe[pos]


def qkv_heads(x, p: BlockParams, n_head):
    """The attention's input projection split into queries, keys and values: [B, T, C] -> 3 x [B, H, T, D]."""
    qkv = ops.linear(x, p.c_attn.w, p.c_attn.b)
    C = qkv.shape[-1] // 3
    return tuple(ops.split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))


def attention_projection(heads, p: BlockParams):
    """The attention's output projection c_proj over the merged heads: [B, T, C] -> [B, T, C]."""
    return ops.linear(heads, p.attn_proj.w, p.attn_proj.b)


def mha(x, p: BlockParams, n_head, allowed, cache, layer, rec, name):
    """Causal multi-head self-attention: [B, T, C] -> [B, T, C]."""
    q, k, v = qkv_heads(x, p, n_head)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    attn = None if rec is None else {}
    heads = ops.merge_heads(ops.attention(q, k, v, allowed, record=attn))
    out = attention_projection(heads, p)
    if rec is not None:
        rec.update({name + ".q": q, name + ".k": k, name + ".v": v, name + ".attn_scores": attn["scores"],  # ty: ignore[not-subscriptable] (attn is a dict when rec is)
                    name + ".attn_probs": attn["probs"], name + ".attn_heads": heads, name + ".attn_out": out})  # fmt: skip  # ty: ignore[not-subscriptable]
    return out


def mlp_fc(x, p: BlockParams):
    """The MLP's input projection c_fc: [B, T, C] -> [B, T, 4C]."""
    return ops.linear(x, p.c_fc.w, p.c_fc.b)


def mlp_proj(a, p: BlockParams):
    """The MLP's output projection c_proj: [B, T, 4C] -> [B, T, C]."""
    return ops.linear(a, p.mlp_proj.w, p.mlp_proj.b)


def ffn(x, p: BlockParams, rec, name):
    """Position-wise MLP: [B, T, C] -> [B, T, 4C] -> GELU -> [B, T, C]; c_fc's output and GELU's go into
    rec (when not None) as `{name}.mlp_fc` and `{name}.mlp_act`."""
    fc = mlp_fc(x, p)
    act = ops.gelu(fc)
    if rec is not None:
        rec.update({name + ".mlp_fc": fc, name + ".mlp_act": act})
    return mlp_proj(act, p)


def transformer_block(x, p: BlockParams, n_head, eps, allowed, cache, layer, rec):
    """Pre-norm block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""
    name = f"h{layer}"
    h1 = ops.layer_norm(x, p.ln_1.g, p.ln_1.b, eps)
    x = x + mha(h1, p, n_head, allowed, cache, layer, rec, name)
    h2 = ops.layer_norm(x, p.ln_2.g, p.ln_2.b, eps)
    m = ffn(h2, p, rec, name)
    out = x + m
    if rec is not None:
        rec.update({name + ".ln_1": h1, name + ".resid_mid": x, name + ".ln_2": h2, name + ".mlp_out": m,
                    name + ".out": out})  # fmt: skip
    return out


def final_layer_norm(x, p: GPT2Params, eps: float):
    """ln_f, applied to the last block's output: [B, T, C] -> [B, T, C]."""
    return ops.layer_norm(x, p.ln_f.g, p.ln_f.b, eps)


def lm_head(x, p: GPT2Params):
    """Logits from the final LayerNorm's output: [B, T, C] -> [B, T, V]."""
    return x @ p.lm_head.T


def attention_allowed(n_new: int, n_keys: int, mask: np.ndarray | None):
    """allowed[b, 0, t, s]: query t may attend to key s (causal, and s is not padding); [B|1, 1, T, S] or None.

    The T = n_new queries are the last of the S = n_keys positions. mask is the [B, S] 0/1 mask over
    cached and new positions, or None when every position is a token. None means every pair is allowed.
    """
    allowed = None
    if n_new > 1:
        allowed = ops.causal_mask(n_new, n_keys)[None, None]
    if mask is not None and not mask.all():
        pad_ok = mask.astype(bool)[:, None, None, :]
        allowed = pad_ok if allowed is None else allowed & pad_ok
    return allowed


def positions_from_mask(mask: np.ndarray, n_new: int) -> np.ndarray:
    """Position ids of the last `n_new` columns of a [B, S] mask: padding is skipped, as transformers'
    generate does (cumsum - 1, and 1 at padding positions)."""
    pos = np.cumsum(mask, axis=1) - 1
    pos[mask == 0] = 1
    return pos[:, -n_new:]


class GPT2:
    """A GPT-2 language model. `model(input_ids, attention_mask)` -> logits [B, T, V]."""

    config: GPT2Config
    params: GPT2Params
    path: Path | None

    def __init__(self, config: GPT2Config, params: GPT2Params, tokenizer=None, path: Path | None = None):
        self.config = config
        self.params = params
        self._tokenizer = tokenizer
        self.path = path

    @property
    def dtype(self) -> np.dtype:
        return self.params.dtype

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            raise TokenizerError(f"no tokenizer: {self.path} has no vocab.json/merges.txt")
        return self._tokenizer

    def new_cache(self, batch_size: int = 1, capacity: int | None = None) -> KVCache:
        """An empty KV cache for `batch_size` sequences of up to `capacity` (default n_positions) positions."""
        cfg = self.config
        capacity = cfg.n_positions if capacity is None else capacity
        if not 0 < capacity <= cfg.n_positions:
            raise InputError(f"cache capacity must be in [1, n_positions={cfg.n_positions}], got {capacity}")
        return KVCache(cfg.n_layer, batch_size, cfg.n_head, cfg.head_dim, capacity, self.dtype)

    def __call__(self, input_ids, attention_mask=None, **kwargs) -> np.ndarray:
        return self.forward(input_ids, attention_mask, **kwargs)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        *,
        position_ids=None,
        cache: KVCache | None = None,
        checkpoints: dict | None = None,
        last_only: bool = False,
    ) -> np.ndarray:
        """Logits [B, T, V] (or [B, 1, V] with last_only) for token ids [B, T] or [T].

        attention_mask: [B, S] of 0/1 covering the cached and the new positions (S = cache.length + T);
          padding goes on the left. Without it every position is a token (the cache's mask is reused).
        position_ids: [B, T]; by default derived from the mask (padding does not advance the position).
        cache: a `KVCache` from `new_cache`; the new keys and values are appended to it.
        checkpoints: a dict to fill with every intermediate tensor (see the module docstring).
        """
        cfg, p = self.config, self.params
        ids = as_token_ids(input_ids, cfg.vocab_size)
        B, T = ids.shape
        past = 0
        if cache is not None:
            if cache.batch_size != B:
                raise InputError(f"cache is for batch size {cache.batch_size}, input_ids has {B} rows")
            if cache.keys.dtype != self.dtype:
                raise InputError(f"cache dtype {cache.keys.dtype} differs from the model's {self.dtype}")
            past = cache.length
            cache.check_room(T)
        S = past + T
        if S > cfg.n_positions:
            raise InputError(
                f"sequence length {S} (cached {past} + new {T}) exceeds n_positions={cfg.n_positions}"
            )
        if attention_mask is None:
            mask = None if cache is None or cache.mask[:, :past].all() else cache.mask[:, :past]
            if mask is not None:
                mask = np.concatenate([mask, np.ones((B, T), np.int64)], axis=1)
        else:
            mask = as_attention_mask(attention_mask, (B, S))
            if not mask.any(axis=1).all():
                raise InputError(f"attention_mask row {int(np.argmin(mask.any(axis=1)))} has no token (all padding)")
        if position_ids is None:
            pos = positions_from_mask(np.ones((B, S), np.int64) if mask is None else mask, T)
        else:
            pos = np.asarray(position_ids)
            if pos.shape != (B, T) or not np.issubdtype(pos.dtype, np.integer):
                raise InputError(f"position_ids must be integers of shape {[B, T]}, got {pos.dtype} {list(pos.shape)}")
            if ((pos < 0) | (pos >= cfg.n_positions)).any():
                raise InputError(f"position_ids must lie in [0, n_positions={cfg.n_positions})")

        allowed = attention_allowed(T, S, mask)

        rec = checkpoints
        x = embed(ids, pos, p)
        if rec is not None:
            rec["embeddings"] = x
        for layer, block in enumerate(p.blocks):
            x = transformer_block(x, block, cfg.n_head, cfg.layer_norm_epsilon, allowed, cache, layer, rec)
        if cache is not None:
            cache.advance(np.ones((B, T), np.int64) if mask is None else mask[:, past:])
        if last_only:
            x = x[:, -1:]
        x = final_layer_norm(x, p, cfg.layer_norm_epsilon)
        logits = lm_head(x, p)
        if rec is not None:
            rec.update(ln_f=x, logits=logits)
        return logits

    def generate(self, input_ids, max_new_tokens: int, **kwargs) -> np.ndarray:
        """Continue `input_ids`; see `gpt2core.engine.generate.generate` for the options."""
        return generate(self, input_ids, max_new_tokens, **kwargs)
