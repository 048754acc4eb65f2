"""Sampled generation on the tiny and 124M shapes, float32 and float64: transformers' generate(do_sample=True)
replayed through gpt2core, every step's processed scores compared (gpt2core.verification.sampling)."""

from __future__ import annotations

import numpy as np
import pytest
from support.models import engine_model, hf_model

from gpt2core.engine.generate import replay_scores
from gpt2core.verification.capture import sample_with_transformers
from gpt2core.verification.sampling import SamplingSettings, compare_scores

SETTINGS = [  # temperature below, at and above 1; each filter deciding alone and together
    SamplingSettings(temperature=0.7, top_k=0, top_p=0.9, seed=1, max_new_tokens=4),
    SamplingSettings(temperature=1.0, top_k=50, top_p=1.0, seed=2, max_new_tokens=4),
    SamplingSettings(temperature=1.6, top_k=20, top_p=0.5, seed=3, max_new_tokens=4),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"T{s.temperature}-k{s.top_k}-p{s.top_p}")
def test_sampled_scores_equal_transformers_generate(model_dir, dtype, settings):
    engine, hf = engine_model(model_dir, dtype), hf_model(model_dir, dtype)
    tok = engine.tokenizer
    rows = [tok.encode("The quick brown fox"), tok.encode("Hello.")]  # a left-padded batch of two prompts
    T = max(map(len, rows))
    ids = np.array([[tok.eos_token_id] * (T - len(r)) + r for r in rows])
    mask = np.array([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    path, scores, raw = sample_with_transformers(hf, ids, mask, settings)
    ours = replay_scores(engine, ids, path, settings.temperature, settings.top_k, settings.top_p, attention_mask=mask)
    assert ours.shape == scores.shape == (4, 2, engine.config.vocab_size) and ours.dtype == scores.dtype == np.float32
    for step in range(4):
        c = compare_scores(f"sample.scores@step={step}", ours[step], scores[step], raw[step], settings, dtype)
        assert c.ok, c.message()
        assert np.isfinite(scores[step]).sum() >= 2, "a filter left one token: the comparison would say little"
