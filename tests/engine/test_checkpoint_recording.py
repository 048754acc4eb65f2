"""Named checkpoints: every name recorded with its documented shape, nothing recorded unless asked."""

from __future__ import annotations

import numpy as np

import gpt2core
from gpt2core import checkpoint_names


def test_every_checkpoint_recorded_with_its_shape(tiny_dir):
    model = gpt2core.load(tiny_dir)
    cfg = model.config
    B, T, C, H, D, V = 2, 5, cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.vocab_size
    rec = {}
    logits = model(np.arange(B * T).reshape(B, T), checkpoints=rec)
    assert sorted(rec) == sorted(checkpoint_names(cfg.n_layer))
    expected = {"embeddings": (B, T, C), "ln_f": (B, T, C), "logits": (B, T, V)}
    for i in range(cfg.n_layer):
        for name in ("ln_1", "attn_heads", "attn_out", "resid_mid", "ln_2", "mlp_out", "out"):
            expected[f"h{i}.{name}"] = (B, T, C)
        for name in ("mlp_fc", "mlp_act"):
            expected[f"h{i}.{name}"] = (B, T, 4 * C)
        for name in ("q", "k", "v"):
            expected[f"h{i}.{name}"] = (B, H, T, D)
        for name in ("attn_scores", "attn_probs"):
            expected[f"h{i}.{name}"] = (B, H, T, T)
    assert {k: v.shape for k, v in rec.items()} == expected
    assert rec["logits"] is logits
    np.testing.assert_allclose(rec["h0.attn_probs"].sum(-1), 1.0, rtol=1e-6)
    assert np.isneginf(rec["h0.attn_scores"]).sum() == 0  # masked with the finite minimum, not -inf


def test_cached_keys_cover_past_and_new_positions(tiny_dir):
    model = gpt2core.load(tiny_dir)
    cache = model.new_cache()
    model(np.array([[1, 2, 3]]), cache=cache)
    rec = {}
    model(np.array([[4]]), cache=cache, checkpoints=rec)
    assert rec["h1.k"].shape == (1, model.config.n_head, 4, model.config.head_dim)
    assert rec["h1.attn_scores"].shape == (1, model.config.n_head, 1, 4)
