"""Generation options: sampling reproducibility, filters, end-of-text, no state shared between calls."""

from __future__ import annotations

import numpy as np
import pytest

import gpt2core
from gpt2core.generate import top_k_filter, top_p_filter


@pytest.fixture(scope="module")
def model(tiny_dir):
    return gpt2core.load(tiny_dir)


def test_same_seed_same_tokens_and_calls_do_not_share_state(model):
    ids = np.array([15496, 13])
    a = model.generate(ids, 15, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=4)
    model.generate(np.array([5, 6, 7, 8, 9]), 7)  # an unrelated request in between
    b = model.generate(ids, 15, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=4)
    c = model.generate(ids, 15, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=5)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    np.testing.assert_array_equal(model(ids), model(ids))  # bit-identical logits


def test_greedy_equals_argmax_of_full_forward(model):
    ids = np.array([15496, 13, 464])
    out = model.generate(ids, 6)
    for t in range(len(ids), len(out)):
        assert out[t] == model(out[:t])[0, -1].argmax()


def test_stops_at_end_of_text(model):
    ids = np.array([15496, 13])
    first = int(model(ids)[0, -1].argmax())
    out = model.generate(ids, 10, eos_token_id=first)
    assert out.tolist() == [15496, 13, first]
    assert len(model.generate(ids, 10, eos_token_id=first, stop_at_eos=False)) == 12


def test_zero_new_tokens_returns_prompt(model):
    assert model.generate(np.array([1, 2]), 0).tolist() == [1, 2]


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = np.log(np.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert np.isfinite(top_k_filter(logits, 2)).tolist() == [[True, True, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 0.6)).tolist() == [[True, True, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 0.3)).tolist() == [[True, False, False, False, False]]
    assert np.isfinite(top_p_filter(logits, 1.0)).all()
