"""Sampling filters against transformers' logits processors: the same logits keep the same candidates."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from support.strategies import float_arrays
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from gpt2core.engine.generate import apply_temperature, top_k_filter, top_p_filter

logits_arrays = st.builds(lambda b, v: (b, v), st.integers(1, 4), st.integers(2, 200)).flatmap(
    lambda bv: float_arrays(bv, np.float64)
)


def hf(processor, logits):
    return processor(None, torch.from_numpy(logits.copy())).numpy()


@given(logits=logits_arrays, t=st.floats(0.05, 5.0))
def test_temperature_matches_transformers(logits, t):
    np.testing.assert_allclose(apply_temperature(logits, t), hf(TemperatureLogitsWarper(t), logits), rtol=1e-15)


@given(logits=logits_arrays, k=st.integers(1, 250))
def test_top_k_keeps_the_same_tokens_as_transformers(logits, k):
    got, ref = top_k_filter(logits, k), hf(TopKLogitsWarper(k), logits)
    assert (np.isfinite(got) == np.isfinite(ref)).all(), f"k={k} kept {np.isfinite(got).sum(-1)} vs {np.isfinite(ref).sum(-1)}"
    np.testing.assert_array_equal(got[np.isfinite(got)], logits[np.isfinite(got)])


@given(logits=logits_arrays, p=st.floats(0.01, 0.99))
def test_top_p_keeps_the_same_tokens_as_transformers(logits, p):
    got, ref = top_p_filter(logits, p), hf(TopPLogitsWarper(p), logits)
    assert (np.isfinite(got) == np.isfinite(ref)).all(), f"p={p} kept {np.isfinite(got).sum(-1)} vs {np.isfinite(ref).sum(-1)}"


# --- the whole pipeline: transformers' generate(do_sample=True) replayed through gpt2core -----------------

from gpt2core.engine.generate import next_tokens, replay_scores, sampling_scores  # noqa: E402
from gpt2core.verification.capture import sample_with_transformers  # noqa: E402
from gpt2core.verification.sampling import SamplingSettings, compare_scores  # noqa: E402
from support.random_models import engine_from_hf, hf_random_model  # noqa: E402
from support.strategies import DTYPES, INIT_STDS, SEEDS, gpt2_configs, left_padding_masks, token_ids  # noqa: E402


@st.composite
def sampling_settings(draw, vocab_size: int, max_new_tokens: int):
    """Temperatures below and above 1; top_k off, 1, small, at and beyond the vocabulary; top_p off, tiny, mid."""
    return SamplingSettings(
        temperature=draw(st.sampled_from([0.3, 0.7, 1.0, 1.3, 2.5])),
        top_k=draw(st.sampled_from([0, 1, 2, 5, vocab_size, vocab_size + 7])),
        top_p=draw(st.sampled_from([1.0, 0.95, 0.6, 0.2, 1e-3])),
        seed=draw(st.integers(0, 2**31 - 1)),
        max_new_tokens=max_new_tokens,
    )


def check_every_step(engine, hf, ids, mask, settings, dtype):
    """Sample with transformers, replay the path in gpt2core, compare every step's processed scores."""
    path, scores, raw = sample_with_transformers(hf, ids, mask, settings)
    ours = replay_scores(engine, ids, path, settings.temperature, settings.top_k, settings.top_p, attention_mask=mask)
    assert ours.shape == scores.shape and ours.dtype == scores.dtype, (ours.shape, ours.dtype, scores.shape, scores.dtype)
    for step in range(scores.shape[0]):
        c = compare_scores(f"sample.scores@step={step}", ours[step], scores[step], raw[step], settings, dtype)
        assert c.ok, f"{settings}, ids {ids.tolist()}, mask {None if mask is None else mask.tolist()}: {c.message()}"


@given(cfg=gpt2_configs(), dtype=DTYPES, seed=SEEDS, std=INIT_STDS, data=st.data())
def test_sampled_scores_match_transformers_generate_on_random_models(cfg, dtype, seed, std, data):
    hf = hf_random_model(cfg, seed % 2**31, std, dtype)
    engine = engine_from_hf(hf, dtype)
    n = data.draw(st.integers(1, 4), label="steps")
    B = data.draw(st.integers(1, 3), label="batch")
    T = data.draw(st.integers(1, min(6, cfg["n_positions"] - n)), label="prompt length")
    ids = data.draw(token_ids(cfg["vocab_size"], B, T), label="ids")
    mask = data.draw(st.none() | left_padding_masks(B, T), label="mask")
    check_every_step(engine, hf, ids, mask, data.draw(sampling_settings(cfg["vocab_size"], n), label="settings"), dtype)


@given(dtype=DTYPES, data=st.data())
def test_sampled_scores_match_transformers_generate_on_the_stress_model(stress_dir, dtype, data):
    """The stress model's sharp logits (outlier channels, scores in the hundreds) and GPT-2's real vocabulary."""
    from gpt2core.engine.loading import load
    from gpt2core.verification.hf import hf_model

    engine, hf = load(stress_dir, dtype=dtype), hf_model(stress_dir, dtype)
    B = data.draw(st.integers(1, 2), label="batch")
    ids = data.draw(token_ids(50257, B, data.draw(st.integers(1, 5), label="prompt length")), label="ids")
    mask = data.draw(st.none() | left_padding_masks(B, ids.shape[1]), label="mask")
    check_every_step(engine, hf, ids, mask, data.draw(sampling_settings(50257, 3), label="settings"), dtype)


# --- gpt2core's own draws follow the processed probabilities ---------------------------------------------

def test_draws_follow_the_processed_probabilities_chi_square():
    """Pearson's chi-square over 20,000 seeded draws at one step (temperature 0.7, top-k 12, top-p 0.9 on 64
    tokens): the frequencies agree with softmax(sampling_scores). False-alarm rate 1e-3 for a correct sampler
    (the seed is fixed, so the outcome is too); a sampler that ignores the filters or the temperature fails."""
    from scipy.stats import chisquare

    logits = np.random.default_rng(7).standard_normal((1, 64)).astype(np.float32) * 2
    settings = dict(temperature=0.7, top_k=12, top_p=0.9)
    probs = np.exp(sampling_scores(logits, **settings).astype(np.float64))[0]
    probs /= probs.sum()
    n = 20_000
    draws = next_tokens(np.repeat(logits, n, axis=0), np.random.default_rng(2026), True, **settings)
    counts = np.bincount(draws, minlength=64)
    kept = probs > 0
    assert counts[~kept].sum() == 0, f"drew filtered tokens {np.flatnonzero(counts * ~kept).tolist()}"
    p_value = chisquare(counts[kept], n * probs[kept]).pvalue
    assert p_value > 1e-3, f"chi-square p = {p_value:.2e}: counts {counts[kept].tolist()} vs expected {np.round(n * probs[kept]).tolist()}"
    # the test has power: the same counts are rejected against the same tokens without the temperature
    untempered = np.exp(logits[0, kept].astype(np.float64) - logits[0, kept].max())
    p_wrong = chisquare(counts[kept], n * untempered / untempered.sum()).pvalue
    assert p_wrong < 1e-3, f"chi-square cannot tell temperature 0.7 from 1.0 here (p = {p_wrong:.2e})"
