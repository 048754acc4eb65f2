"""gpt2core's logits against transformers' GPT2LMHeadModel on the same directory, float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.compare import assert_close
from support.models import engine_model, hf_logits, hf_model, hf_positions
from gpt2core.verification.tolerances import LOGITS_TOL, scaled_atol

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it sleeps under the old oak tree."


def prompt_ids(model, prompt) -> np.ndarray:
    if prompt == "1 token":
        return np.array([[15496]])
    if prompt == "Hello.":
        ids = model.tokenizer.encode("Hello.")
        assert ids == [15496, 13], ids  # GPT-2's real vocabulary
        return np.array([ids])
    if prompt == "sentence":
        return np.array([model.tokenizer.encode(SENTENCE)])
    if prompt == "128 tokens":
        return np.random.default_rng(128).integers(0, model.config.vocab_size, (1, 128))
    raise AssertionError(prompt)


def check_logits(name, got, ref):
    return assert_close(name, got, ref, atol=scaled_atol(LOGITS_TOL, ref))


@pytest.mark.parametrize("prompt", ["1 token", "Hello.", "sentence", "128 tokens"])
def test_single_prompt(model_dir, dtype, prompt):
    model = engine_model(model_dir, dtype)
    ids = prompt_ids(model, prompt)
    check_logits(f"logits[{prompt}]", model(ids), hf_logits(model_dir, ids, dtype))


def left_padded_batch(vocab_size):
    rng = np.random.default_rng(7)
    lengths = [9, 3, 6, 1]
    T = max(lengths)
    ids = rng.integers(0, vocab_size, (len(lengths), T))
    mask = np.array([[0] * (T - n) + [1] * n for n in lengths])
    ids[mask == 0] = 50256  # padding token value, as a tokenizer would put there
    return ids, mask


def test_left_padded_batch(model_dir, dtype):
    model = engine_model(model_dir, dtype)
    ids, mask = left_padded_batch(model.config.vocab_size)
    got = model(ids, mask)
    ref = hf_logits(model_dir, ids, dtype, attention_mask=mask)
    # padded positions too: their attention is uniform in both engines (no key allowed)
    check_logits("logits[left-padded batch]", got, ref)


def test_padding_matches_unpadded_reference(model_dir, dtype):
    """Each row of a padded batch equals transformers on that row alone, without padding."""
    model = engine_model(model_dir, dtype)
    ids, mask = left_padded_batch(model.config.vocab_size)
    got = model(ids, mask)
    for b in range(len(ids)):
        n = int(mask[b].sum())
        ref = hf_logits(model_dir, ids[b : b + 1, -n:], dtype)
        check_logits(f"logits[row {b}, unpadded]", got[b : b + 1, -n:], ref)


@pytest.mark.parametrize("split", [1, 5, 11])
def test_cache_decoding_matches_full_forward(model_dir, dtype, split):
    """Prefill `split` tokens, then decode one token at a time from position split > 0."""
    model = engine_model(model_dir, dtype)
    ids = np.random.default_rng(split).integers(0, model.config.vocab_size, (2, 16))
    cache = model.new_cache(batch_size=2)
    steps = [model(ids[:, :split], cache=cache)]
    for t in range(split, ids.shape[1]):
        steps.append(model(ids[:, t : t + 1], cache=cache))
    assert cache.length == ids.shape[1]
    check_logits(f"logits[cache, split {split}]", np.concatenate(steps, axis=1), hf_logits(model_dir, ids, dtype))


def test_cache_decoding_with_left_padding(model_dir, dtype):
    model = engine_model(model_dir, dtype)
    ids, mask = left_padded_batch(model.config.vocab_size)
    extra = np.random.default_rng(3).integers(0, model.config.vocab_size, (len(ids), 4))
    full_ids = np.concatenate([ids, extra], axis=1)
    full_mask = np.concatenate([mask, np.ones_like(extra)], axis=1)
    cache = model.new_cache(batch_size=len(ids))
    steps = [model(ids, mask, cache=cache)]
    for t in range(extra.shape[1]):
        steps.append(model(extra[:, t : t + 1], full_mask[:, : ids.shape[1] + t + 1], cache=cache))
    ref = hf_logits(model_dir, full_ids, dtype, attention_mask=full_mask)
    got = np.concatenate(steps, axis=1)
    # Token positions only: a padding query attends uniformly to every key present in its call, and
    # the prefill sees fewer keys than transformers' one full pass, so padding rows legitimately differ.
    tokens = full_mask.astype(bool)
    check_logits("logits[cache, left padding, token positions]", got[tokens], ref[tokens])


def hf_greedy(model_dir, dtype, ids, mask, max_new_tokens):
    model = hf_model(model_dir, dtype)
    eos = model.config.eos_token_id
    with torch.no_grad():
        out = model.generate(
            torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=max_new_tokens,
            do_sample=False, pad_token_id=eos, eos_token_id=eos,
        )  # fmt: skip
    return out.numpy()


def test_greedy_generation_matches_transformers(model_dir, dtype):
    model = engine_model(model_dir, dtype)
    ids = prompt_ids(model, "Hello.")
    ref = hf_greedy(model_dir, dtype, ids, np.ones_like(ids), 20)
    got = model.generate(ids, 20)
    assert got.shape == ref.shape and got.tolist() == ref.tolist(), f"gpt2core {got.tolist()}\ntransformers {ref.tolist()}"


def test_greedy_generation_left_padded_batch(model_dir, dtype):
    model = engine_model(model_dir, dtype)
    ids, mask = left_padded_batch(model.config.vocab_size)
    ref = hf_greedy(model_dir, dtype, ids, mask, 12)
    got = model.generate(ids, 12, attention_mask=mask)
    assert got.shape == ref.shape and got.tolist() == ref.tolist(), f"gpt2core {got.tolist()}\ntransformers {ref.tolist()}"


def test_position_ids_follow_transformers_generate():
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    from gpt2core.engine.model import positions_from_mask

    assert positions_from_mask(mask, 4).tolist() == hf_positions(mask).tolist()
